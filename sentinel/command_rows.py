"""How the CLI hands a command to the running daemon: a row in a command table.

One way for every command that acts on what the daemon runs (ack, silence, unsilence,
backup resume/discard/sync). The CLI writes the row with the identity of who asked; the
daemon applies it (within a second, or at its next start) and writes the result back into
the row; the CLI waits for that result and prints it. A row is durable: a command typed
while the daemon restarts is not lost. While a daemon runs, nothing but the daemon acts on
its state; only when none runs (its heartbeat stopped or stale) does the CLI run a backup
command itself.

Long commands (a full sync) are claimed first (`claimed`), so exactly one process runs
them: the daemon, or the CLI itself when no daemon runs (first seeding before the service
ever started). A row no runner took may be withdrawn (`withdraw`: claimed and finished in
one statement, "cancelled: ..."): the CLI gave up on it. While a command runs, its runner
writes its progress (0-100) into the row.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OWNER = "commands"

MIGRATIONS: tuple[str, ...] = (
    """
    -- written by the CLI (another process), applied by the daemon (sentinel/backup_commands.py);
    -- the shape of alarm_commands plus a claim and a progress for long commands
    CREATE TABLE backup_commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        command TEXT NOT NULL,
        args TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        applied REAL,
        result TEXT,
        claimed REAL,
        claimed_by INTEGER,
        progress REAL
    );
    CREATE INDEX backup_commands_pending ON backup_commands(id) WHERE applied IS NULL;
    """,
)

POLL = 0.2  # seconds between looks at a row the CLI waits on


@dataclass(frozen=True, slots=True)
class CommandTable:
    """A command table; `claims`: its rows are claimed before they run (and carry a
    progress), for commands that take long enough that two runners would matter."""

    name: str
    claims: bool = False

    @property
    def pending_sql(self) -> str:
        unclaimed = " AND claimed IS NULL" if self.claims else ""
        return (
            f"SELECT id, command, args, created FROM {self.name} "
            f"WHERE applied IS NULL{unclaimed} ORDER BY id"
        )

    @property
    def claim_sql(self) -> str:
        """Parameters: now, pid, id. Changes one row only when nobody claimed it yet."""
        return (
            f"UPDATE {self.name} SET claimed = ?, claimed_by = ? "
            "WHERE id = ? AND claimed IS NULL AND applied IS NULL"
        )

    @property
    def finish_sql(self) -> str:
        """Parameters: now, result, id."""
        return f"UPDATE {self.name} SET applied = ?, result = ? WHERE id = ?"

    @property
    def progress_sql(self) -> str:
        """Parameters: progress, id."""
        return f"UPDATE {self.name} SET progress = ? WHERE id = ?"


ALARM = CommandTable("alarm_commands")
BACKUP = CommandTable("backup_commands", claims=True)


@dataclass(frozen=True, slots=True)
class RowState:
    """What the CLI sees of its row while it waits."""

    claimed: bool
    progress: float | None
    result: str | None  # None: not applied yet


def add(
    conn: sqlite3.Connection,
    table: CommandTable,
    command: str,
    args: dict[str, Any],
    now: float | None = None,
) -> int:
    """Writes one command row; returns its id."""
    cur = conn.execute(
        f"INSERT INTO {table.name}(command, args, created) VALUES (?, ?, ?)",
        (command, json.dumps(args), time.time() if now is None else now),
    )
    return int(cur.lastrowid or 0)


def claim(conn: sqlite3.Connection, table: CommandTable, row_id: int) -> bool:
    """Takes the row for this process; False when someone (the daemon) already has it."""
    cur = conn.execute(table.claim_sql, (time.time(), os.getpid(), row_id))
    return cur.rowcount == 1


def finish(conn: sqlite3.Connection, table: CommandTable, row_id: int, result: str) -> None:
    conn.execute(table.finish_sql, (time.time(), result, row_id))


def withdraw(conn: sqlite3.Connection, table: CommandTable, row_id: int, result: str) -> bool:
    """Claims and finishes the row in one statement, so no runner can take it after; False
    when a runner already has it (it finishes it)."""
    assert table.claims, table  # rows without a claim are applied whole within a second
    now = time.time()
    cur = conn.execute(
        f"UPDATE {table.name} SET claimed = ?, claimed_by = ?, applied = ?, result = ? "
        "WHERE id = ? AND claimed IS NULL AND applied IS NULL",
        (now, os.getpid(), now, result, row_id),
    )
    return cur.rowcount == 1


def look(conn: sqlite3.Connection, table: CommandTable, row_id: int) -> RowState:
    extra = ", claimed, progress" if table.claims else ""
    row = conn.execute(
        f"SELECT applied, result{extra} FROM {table.name} WHERE id = ?", (row_id,)
    ).fetchone()
    if row is None:  # pruned: it was applied long ago
        return RowState(True, None, "")
    applied = row[0] is not None
    claimed = applied or (table.claims and row[2] is not None)
    progress = row[3] if table.claims else None
    return RowState(bool(claimed), progress, str(row[1] or "") if applied else None)


def wait_for(
    conn: sqlite3.Connection,
    table: CommandTable,
    row_id: int,
    *,
    until: Callable[[RowState], bool],
    still_worth_it: Callable[[], bool] = lambda: True,
    on_progress: Callable[[float], None] | None = None,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RowState:
    """Looks at the row every POLL seconds until `until(state)`, `timeout` passed, or
    `still_worth_it()` says the runner is gone (the daemon stopped); returns the last
    state seen. `on_progress` gets each new progress value."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: float | None = None
    while True:
        state = look(conn, table, row_id)
        if on_progress is not None and state.progress is not None and state.progress != seen:
            seen = state.progress
            on_progress(state.progress)
        if until(state) or not still_worth_it():
            return state
        if deadline is not None and time.monotonic() >= deadline:
            return state
        sleep(POLL)
