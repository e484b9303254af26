"""Which reports were generated, when and from which config (table `report`), so status can
warn that the printed security pack or runbook no longer matches the running config.

Its own owner in schema_version ("report")."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from common.db import WriteTx

OWNER = "report"
Kind = Literal["security", "runbook"]
KINDS: tuple[Kind, ...] = ("security", "runbook")

MIGRATIONS: tuple[str, ...] = (
    """
    -- `paths`: the files written, newline-separated (empty when written to stdout)
    CREATE TABLE report (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        ts REAL NOT NULL,
        config_hash TEXT NOT NULL,
        lang TEXT NOT NULL,
        paths TEXT NOT NULL
    );
    CREATE INDEX report_kind_ts ON report(kind, ts);
    """,
)


@dataclass(frozen=True, slots=True)
class ReportRow:
    kind: str
    ts: float
    config_hash: str
    lang: str
    paths: tuple[str, ...]


async def save_report(
    write: WriteTx, kind: Kind, ts: float, config_hash: str, lang: str, paths: list[str]
) -> None:
    async with write() as db:
        await db.execute(
            "INSERT INTO report(kind, ts, config_hash, lang, paths) VALUES (?, ?, ?, ?, ?)",
            (kind, ts, config_hash, lang, "\n".join(paths)),
        )


def last_report(conn: sqlite3.Connection, kind: str) -> ReportRow | None:
    """The newest report of `kind` (None: never generated, or no table yet)."""
    try:
        row = conn.execute(
            "SELECT kind, ts, config_hash, lang, paths FROM report WHERE kind = ? "
            "ORDER BY ts DESC, id DESC LIMIT 1",
            (kind,),
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None:
        return None
    kind_, ts, config_hash, lang, paths = tuple(row)
    return ReportRow(
        kind_, float(ts), str(config_hash), str(lang), tuple(filter(None, paths.split("\n")))
    )
