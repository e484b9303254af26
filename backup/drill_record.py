"""The file drills' record: one row per `sentinel backup drill` of a replication (a restore
from the replica, or from the keeper's newest snapshot, compared with the source), so the
runbook can print the RTO the last drill measured and when it ran, and status can warn when
the last successful drill is too old. The database drills keep their own table
(backup/database_drill_record.py): they carry a recovery target and a check query.

Its own owner in schema_version ("drill")."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from common.db import WriteTx

OWNER = "drill"
Kind = Literal["files", "keeper"]

MIGRATIONS: tuple[str, ...] = (
    """
    -- `rto`: seconds from the start of the restore until the restored tree was compared;
    -- `files`: how many files came back; `snapshot`: the keeper snapshot restored from
    CREATE TABLE drill (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        ts REAL NOT NULL,
        ok INTEGER NOT NULL,
        rto REAL,
        files INTEGER,
        error TEXT,
        snapshot TEXT
    );
    CREATE INDEX drill_source_ts ON drill(source, ts);
    """,
)


@dataclass(frozen=True, slots=True)
class FileDrill:
    source: str
    kind: Kind
    ts: float  # wall clock at the start of the drill
    ok: bool
    rto: float | None = None
    files: int | None = None
    error: str = ""
    snapshot: str | None = None


async def save_drill(write: WriteTx, drill: FileDrill) -> None:
    async with write() as db:
        await db.execute(
            "INSERT INTO drill(source, kind, ts, ok, rto, files, error, snapshot) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                drill.source,
                drill.kind,
                drill.ts,
                int(drill.ok),
                drill.rto,
                drill.files,
                drill.error or None,
                drill.snapshot,
            ),
        )


_COLUMNS = "source, kind, ts, ok, rto, files, error, snapshot"


def _drill(row: Any) -> FileDrill | None:
    if row is None:
        return None
    source, kind, ts, ok, rto, files, error, snapshot = tuple(row)
    return FileDrill(source, kind, float(ts), bool(ok), rto, files, error or "", snapshot)


def last_drill(conn: sqlite3.Connection, source: str, *, ok_only: bool = False) -> FileDrill | None:
    """The newest file drill of `source` (only successful ones with `ok_only`); None when
    there is none or no table yet."""
    where = "source = ? AND ok = 1" if ok_only else "source = ?"
    try:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM drill WHERE {where} ORDER BY ts DESC, id DESC LIMIT 1",
            (source,),
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    return _drill(row)
