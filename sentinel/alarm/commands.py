"""The CLI's side of ack/silence/unsilence: rows in `alarm_commands` the engine applies.

A plain sqlite3 connection in another process; the daemon (or its next start) applies each
command in its tick, so the CLI never races the engine's in-memory state.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sentinel import command_rows
from sentinel.alarm.ids import normalize
from sentinel.store import BUSY_TIMEOUT_MS, DB_NAME


class NotInitialised(Exception):
    """The state database, or the alarm tables in it, do not exist yet."""


class StateDbError(Exception):
    """The state database cannot be used by this user or on this file system: one clear
    sentence for the person at the terminal, and the exit code the CLI uses for it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# who may change alarms after scripts/install.sh: the database is 0640 sentinel:sentinel
HOW_TO_WRITE = (
    "run the command with sudo (members of group sentinel may read status but not change alarms)"
)
EXIT_CANNOT_WRITE = 2
EXIT_DB_ERROR = 1
_NO_ACCESS = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")


def cannot_write(path: Path, why: str) -> StateDbError:
    if "read-only file system" in why:
        advice = "the file system holding it is mounted read-only"
    else:
        advice = HOW_TO_WRITE
    return StateDbError(
        f"cannot write the state database {path}: {why}; {advice}", EXIT_CANNOT_WRITE
    )


def explain(path: Path, exc: sqlite3.Error) -> StateDbError:
    """An sqlite3 error as what the person can do about it (never a traceback)."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    if name.startswith(_NO_ACCESS):
        return cannot_write(path, write_problem(path) or str(exc))
    return StateDbError(f"the state database {path} cannot be used: {exc}", EXIT_DB_ERROR)


def write_problem(path: Path) -> str | None:
    """Why this process may not write the database (None: it may), checked the way SQLite
    needs it: the file itself, and its directory for the -wal/-shm files it creates."""
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    directory = path.parent
    if os.access(directory, os.W_OK):
        return None
    side = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    if all(p.exists() and os.access(p, os.R_OK | os.W_OK) for p in side):
        return None  # the daemon's files exist and are writable: SQLite creates nothing
    try:
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return "read-only file system" if read_only else "permission denied"


def connect(state_dir: Path) -> sqlite3.Connection:
    """A read-write connection for one command; raises NotInitialised without a database
    and StateDbError when this user or file system cannot write it."""
    path = state_dir / DB_NAME
    if not path.exists():
        raise NotInitialised(f"{path} does not exist: start the daemon once first")
    problem = write_problem(path)
    if problem is not None:
        raise cannot_write(path, problem)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise explain(path, exc) from None
    conn.row_factory = sqlite3.Row
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("SELECT 1 FROM alarm_commands LIMIT 1")
    except sqlite3.Error as exc:
        conn.close()
        if "no such table" in str(exc):
            raise NotInitialised(
                f"{path} has no alarm tables yet: start the daemon once first"
            ) from None
        raise explain(path, exc) from None
    return conn


def find_alarm(conn: sqlite3.Connection, text: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM alarm_alarms WHERE id = ?", (normalize(text),)).fetchone()


def add_command(
    conn: sqlite3.Connection, command: str, args: dict[str, Any], now: float | None = None
) -> int:
    return command_rows.add(conn, command_rows.ALARM, command, args, now)


def daemon_running(conn: sqlite3.Connection, now: float | None = None) -> bool:
    """True when the daemon's heartbeat is fresh (it will apply a command within a second)."""
    try:
        row = conn.execute("SELECT ts, stopped FROM heartbeat WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return False
    if row is None or row["stopped"] is not None:
        return False
    return (time.time() if now is None else now) - float(row["ts"]) < 60.0
