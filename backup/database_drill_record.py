"""The database drills' record (issue 16): one row per `sentinel backup drill --database`,
so status can say when the database was last opened from the replica, with which RTO, and
warn when that is too long ago (or never), and the daemon can page a failed drill.

Its own owner in schema_version ("database_drill"), so its migrations never interleave with
the backup tables' own."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from common.db import WriteTx

OWNER = "database_drill"

MIGRATIONS: tuple[str, ...] = (
    """
    -- `rto`: seconds from the start of the restore to the check query's answer; `max_age`
    -- is the config's at the time (status judges "too old" without the config at hand).
    CREATE TABLE database_drill (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        ts REAL NOT NULL,
        ok INTEGER NOT NULL,
        rto REAL,
        newest_xact REAL,
        target_time REAL,
        check_result TEXT,
        error TEXT,
        base_backup TEXT,
        parts TEXT NOT NULL,
        max_age REAL NOT NULL
    );
    CREATE INDEX database_drill_source_ts ON database_drill(source, ts);
    """,
)


@dataclass(slots=True)
class DrillRecord:
    """What one drill found; `ok` is False with `error` saying why."""

    source: str
    ts: float  # wall clock at the start of the drill
    max_age: float
    ok: bool = False
    rto: float | None = None
    newest_xact: float | None = None  # the newest transaction the recovery replayed
    target_time: float | None = None  # None: as far as the shipped logs go
    check_result: str | None = None
    error: str = ""
    base_backup: str | None = None
    parts: dict[str, float] = field(default_factory=dict)  # step -> seconds


async def save_record(write: WriteTx, record: DrillRecord) -> None:
    async with write() as db:
        await db.execute(
            "INSERT INTO database_drill(source, ts, ok, rto, newest_xact, target_time, "
            "check_result, error, base_backup, parts, max_age) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.source,
                record.ts,
                int(record.ok),
                record.rto,
                record.newest_xact,
                record.target_time,
                record.check_result,
                record.error or None,
                record.base_backup,
                json.dumps(record.parts),
                record.max_age,
            ),
        )


_COLUMNS = "ts, ok, rto, newest_xact, target_time, check_result, error, base_backup, parts, max_age"


def _row(row: tuple[Any, ...] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    ts, ok, rto, newest, target, check, error, base, parts, max_age = row
    return {
        "ts": ts,
        "ok": bool(ok),
        "rto": rto,
        "newest_xact": newest,
        "target_time": target,
        "check_result": check,
        "error": error,
        "base_backup": base,
        "parts": json.loads(parts),
        "max_age": max_age,
    }


def drill_view(
    conn: sqlite3.Connection, source: str, now: float, max_age: float | None = None
) -> dict[str, Any]:
    """Status's view of one replication's database drills: the last one, the last
    successful one, and the problem a person must see (None when there is none).
    `max_age`: the config's (None: the one recorded with the last drill)."""
    try:
        last = _row(
            conn.execute(
                f"SELECT {_COLUMNS} FROM database_drill WHERE source = ? "
                "ORDER BY ts DESC, id DESC LIMIT 1",
                (source,),
            ).fetchone()
        )
        last_ok = _row(
            conn.execute(
                f"SELECT {_COLUMNS} FROM database_drill WHERE source = ? AND ok = 1 "
                "ORDER BY ts DESC, id DESC LIMIT 1",
                (source,),
            ).fetchone()
        )
    except sqlite3.OperationalError:  # the table does not exist yet: never drilled
        last = last_ok = None
    if max_age is None and last is not None:
        max_age = float(last["max_age"])
    problem, level = None, None
    if last is not None and not last["ok"]:
        problem, level = f"the last database drill failed: {last['error']}", "CRITICAL"
    elif last_ok is None:
        problem, level = "no successful database drill yet", "WARNING"
    elif max_age is not None and now - float(last_ok["ts"]) > max_age:
        problem = (
            f"the last successful database drill is {age_text(now - float(last_ok['ts']))} "
            f"old (drill.max_age {age_text(max_age)})"
        )
        level = "WARNING"
    return {
        "last": last,
        "last_ok": last_ok,
        "max_age": max_age,
        "summary": summary(last_ok, now),
        "problem": problem,
        "level": level,
    }


def drill_view_empty(now: float, max_age: float) -> dict[str, Any]:
    """The view before the state database exists: never drilled."""
    conn = sqlite3.connect(":memory:")
    try:
        return drill_view(conn, "", now, max_age)
    finally:
        conn.close()


def summary(last_ok: dict[str, Any] | None, now: float) -> str:
    """ "last successful database drill: 3 days ago, RTO 2m14s" (or "never")."""
    if last_ok is None:
        return "last successful database drill: never"
    rto = last_ok.get("rto")
    return (
        f"last successful database drill: {age_text(max(0.0, now - float(last_ok['ts'])))} "
        f"ago, RTO {'?' if rto is None else duration_text(float(rto))}"
    )


def age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 86400:.0f} days"


def duration_text(seconds: float) -> str:
    """2m14s, 41.3s, 1h02m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
