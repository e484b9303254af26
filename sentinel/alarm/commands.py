"""The CLI's side of ack/silence/unsilence: rows in `alarm_commands` the engine applies.

A plain sqlite3 connection in another process; the daemon (or its next start) applies each
command in its tick, so the CLI never races the engine's in-memory state.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from sentinel.alarm.ids import normalize
from sentinel.store import BUSY_TIMEOUT_MS, DB_NAME


class NotInitialised(Exception):
    """The state database, or the alarm tables in it, do not exist yet."""


def connect(state_dir: Path) -> sqlite3.Connection:
    """A read-write connection for one command; raises NotInitialised without a database."""
    path = state_dir / DB_NAME
    if not path.exists():
        raise NotInitialised(f"{path} does not exist: start the daemon once first")
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        conn.execute("SELECT 1 FROM alarm_commands LIMIT 1")
    except sqlite3.OperationalError:
        conn.close()
        raise NotInitialised(
            f"{path} has no alarm tables yet: start the daemon once first"
        ) from None
    return conn


def find_alarm(conn: sqlite3.Connection, text: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT * FROM alarm_alarms WHERE id = ?", (normalize(text),)
    ).fetchone()


def add_command(conn: sqlite3.Connection, command: str, args: dict[str, Any],
                now: float | None = None) -> int:
    cur = conn.execute(
        "INSERT INTO alarm_commands(command, args, created) VALUES (?, ?, ?)",
        (command, json.dumps(args), time.time() if now is None else now),
    )
    return int(cur.lastrowid or 0)


def daemon_running(conn: sqlite3.Connection, now: float | None = None) -> bool:
    """True when the daemon's heartbeat is fresh (it will apply a command within a second)."""
    try:
        row = conn.execute("SELECT ts, stopped FROM heartbeat WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return False
    if row is None or row["stopped"] is not None:
        return False
    return (time.time() if now is None else now) - float(row["ts"]) < 60.0
