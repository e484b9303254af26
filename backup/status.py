"""`read_status` for `sentinel status`: replication per source, from the state database."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from backup.archive_log import read_sequence
from backup.quarantine import read_quarantine


def read_status(conn: sqlite3.Connection, now: float) -> dict[str, Any]:
    """Per source: pending, RPO, last success, failures, last error, guard, verify, last
    full reconcile, quarantined paths. An empty dict when the backup tables do not exist yet."""
    try:
        states = conn.execute(
            "SELECT source, last_success, consecutive_failures, last_error, last_full, "
            "guard_tripped, guard_count, guard_ts, guard_reason FROM backup_state"
        ).fetchall()
        pending = {
            r[0]: (int(r[1]), r[2])
            for r in conn.execute(
                "SELECT source, COUNT(*), MIN(first_seen) FROM backup_journal GROUP BY source"
            )
        }
    except sqlite3.OperationalError:
        return {}
    out: dict[str, Any] = {}
    names = {r[0] for r in states} | set(pending)
    by_name = {r[0]: r for r in states}
    for name in sorted(names):
        r = by_name.get(name)
        count, oldest = pending.get(name, (0, None))
        verify = conn.execute(
            "SELECT ts, ok, differences, sample FROM backup_verify WHERE source = ? "
            "ORDER BY ts DESC LIMIT 1",
            (name,),
        ).fetchone()
        out[name] = {
            "pending": count,
            "rpo": round(max(0.0, now - oldest), 3) if oldest is not None else 0.0,
            "last_success": r[1] if r else None,
            "consecutive_failures": int(r[2] or 0) if r else 0,
            "last_error": r[3] if r else None,
            "last_full": r[4] if r else None,
            "guard": {
                "tripped": bool(r[5]) if r else False,
                "count": r[6] if r else None,
                "ts": r[7] if r else None,
                "reason": r[8] if r else None,
            },
            "last_verify": None
            if verify is None
            else {
                "ts": verify[0],
                "ok": bool(verify[1]),
                "differences": verify[2],
                "sample": json.loads(verify[3]),
            },
            "quarantine": read_quarantine(conn, name),
            # kind = "archive-log": data_rpo_seconds, log_head, log_gap (None otherwise)
            "log": read_sequence(conn, name, now),
        }
    return out
