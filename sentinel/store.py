"""The state database: one SQLite file in the state directory, one writer connection.

Every package owns its tables and hands its migrations to `Store.migrate`. Writes go through
`Store.write()`, which serialises transactions on the single connection (aiosqlite runs one
thread per connection; two tasks interleaving BEGINs on it would fail).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import aiosqlite

DB_NAME = "sentinel.db"
BUSY_TIMEOUT_MS = 5000

# The store's own tables. PRAGMA user_version counts these; each package's migrations are
# counted per owner in schema_version so packages can evolve independently.
CORE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE schema_version (owner TEXT PRIMARY KEY, version INTEGER NOT NULL);
    CREATE TABLE heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        ts REAL NOT NULL, started REAL NOT NULL, pid INTEGER NOT NULL,
        version TEXT NOT NULL, status TEXT NOT NULL, components TEXT NOT NULL,
        config TEXT NOT NULL DEFAULT '{}', stopped REAL
    );
    """,
)

WriteTx = Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]]


class Store:
    """Owns the daemon's one connection to the state database."""

    def __init__(self, path: Path, db: aiosqlite.Connection) -> None:
        self.path = path
        self.db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, state_dir: Path) -> Store:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / DB_NAME
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode=WAL")
            # FULL survives power loss; NORMAL may roll back the last commits. Volume is tiny.
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            store = cls(path, db)
            await store._migrate_core()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        async with self._lock:
            await self.db.close()

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """One `BEGIN IMMEDIATE` transaction; commits on success, rolls back on error.

        `durable=False` commits without fsync (WAL, synchronous=NORMAL): the transaction
        survives a crash of the process, not a power loss. For bookkeeping that something
        else rebuilds after a power loss (the replication journal: the full reconcile at
        start finds every change again), where an fsync per batch would cost latency.

        Safe against cancellation: a component cancelled mid-transaction (stop, reload) must
        not leave the shared connection inside a transaction for the next writer.
        """
        async with self._lock:
            if not durable:
                await self._execute_to_end("PRAGMA synchronous=NORMAL")
            try:
                try:
                    await self._execute_to_end("BEGIN IMMEDIATE")
                    yield self.db
                except BaseException:
                    if self.db.in_transaction:
                        await self._execute_to_end("ROLLBACK")
                    raise
                await self._execute_to_end("COMMIT")
            finally:
                if not durable:
                    await self._execute_to_end("PRAGMA synchronous=FULL")

    def fast_write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """`write(durable=False)`, in the shape leaves take as a write callable."""
        return self.write(durable=False)

    async def _execute_to_end(self, sql: str) -> None:
        """Run `sql` and wait until it has run even if we are cancelled meanwhile: aiosqlite
        executes it in its thread regardless, and the transaction state must be known before
        the lock is released."""
        statement = asyncio.ensure_future(self.db.execute(sql))
        try:
            await asyncio.shield(statement)
        except asyncio.CancelledError:
            await asyncio.wait([statement])
            raise

    async def _migrate_core(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for number, script in enumerate(CORE_MIGRATIONS[current:], start=current + 1):
            async with self.write() as db:
                for statement in _statements(script):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version={number}")

    async def migrate(self, owner: str, migrations: Sequence[str]) -> None:
        """Apply the owner's migrations not yet applied, each in its own transaction."""
        async with self.db.execute(
            "SELECT version FROM schema_version WHERE owner = ?", (owner,)
        ) as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        if current > len(migrations):
            raise RuntimeError(
                f"state database schema for {owner!r} is version {current}, newer than this "
                f"sentinel knows ({len(migrations)}): refusing to run an older release on it"
            )
        for number, script in enumerate(migrations[current:], start=current + 1):
            async with self.write() as db:
                for statement in _statements(script):
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_version(owner, version) VALUES (?, ?) "
                    "ON CONFLICT(owner) DO UPDATE SET version = excluded.version",
                    (owner, number),
                )


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (sqlite3 knows where one really ends, even
    with `;` inside strings or triggers)."""
    statements: list[str] = []
    start = 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            statements.append(script[start : index + 1].strip())
            start = index + 1
    if script[start:].strip():
        statements.append(script[start:].strip())
    return statements


def open_readonly(state_dir: Path) -> sqlite3.Connection | None:
    """A read-only connection for `sentinel status` and other admin commands.

    Returns None when no database exists yet (the daemon never ran here).
    """
    path = state_dir / DB_NAME
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    return conn
