"""The state database: one SQLite file in the state directory, one writer connection.

Every package owns its tables and hands its migrations to `Store.migrate`. Writes go through
`Store.write()`, which serialises transactions on the single connection (aiosqlite runs one
thread per connection; two tasks interleaving BEGINs on it would fail).

The daemon opens the store `resilient`: a file that is not a sound database is moved aside
and a fresh one started, and when the file cannot be written (disk full, read-only, deleted
or replaced under us) the store carries on from an in-memory copy, so alarms still page, and
goes back to the file as soon as it can be written again. Nothing written meanwhile is
durable; `durable` and `problem` say so, and the daemon pages about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

log = logging.getLogger("sentinel.store")

_T = TypeVar("_T")

DB_NAME = "sentinel.db"
BUSY_TIMEOUT_MS = 5000
SIDE_FILES = ("-wal", "-shm")

# Primary result codes that say the file (not the statement) is the trouble: full, read-only,
# I/O error, damaged, not a database, cannot be opened.
_STORAGE_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CANTOPEN,
    }
)
_DAMAGED_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

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


def storage_problem(exc: BaseException) -> str | None:
    """Why the database file cannot be used, if `exc` says so; None for any other error."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _STORAGE_CODES:
            return str(exc)
        return None
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return None


def _damaged(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and (code & 0xFF in _DAMAGED_CODES)
    )


def _stamp(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def set_aside(path: Path, label: str, now: float, *, main: bool = True) -> Path:
    """Renames the database and its -wal/-shm to `<name>.<label>-<time>[-wal|-shm]`, keeping
    them for a person to look at; returns the new name of the main file. `main=False` moves
    only the -wal/-shm (left by a file that is gone: a new file must never read them)."""
    target = path.with_name(f"{path.name}.{label}-{_stamp(now)}")
    n = 1
    while any(target.with_name(target.name + s).exists() for s in ("", *SIDE_FILES)):
        n += 1
        target = path.with_name(f"{path.name}.{label}-{_stamp(now)}.{n}")
    for suffix in SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    if main:
        os.replace(path, target)
    return target


async def _damage(path: Path) -> str | None:
    """Why the file at `path` is not a sound database (None if it is): not a database, or
    damage `PRAGMA quick_check` finds."""
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error:
        return None  # cannot even be opened: a storage problem, not damage
    try:
        rows = await conn.execute_fetchall("PRAGMA quick_check")
    except sqlite3.Error as exc:
        return str(exc) if _damaged(exc) else None
    finally:
        await conn.close()
    found = [str(r[0]) for r in rows]
    return None if found == ["ok"] else "quick_check: " + "; ".join(found[:3])


class _CurrentConnection:
    """Stands for whichever connection the store uses now (the file, or memory while the file
    cannot be written), so a component that kept `store.db` follows a switch."""

    def __init__(self, store: Store) -> None:
        object.__setattr__(self, "_store", store)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._store._conn, name, value)


class Store:
    """Owns the daemon's one connection to the state database."""

    def __init__(
        self, path: Path, db: aiosqlite.Connection, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self._conn = db
        self.db = cast(aiosqlite.Connection, _CurrentConnection(self))
        self._lock = asyncio.Lock()
        # (connection, durable) as last set by `write`; None: not known
        self._synchronous: tuple[aiosqlite.Connection, bool] | None = None
        self._clock = clock
        self._ident = _ident(path)
        self._migrations: dict[str, Sequence[str]] = {}
        self.durable = True
        self.problem: str | None = None
        self.problem_since: float | None = None
        # set when a damaged file was moved aside at open: {"reason", "moved_to", "ts"}
        self.recovered: dict[str, Any] | None = None
        self._retry_error: str | None = None
        # how often the store had to leave the file, and why the last time: a file deleted
        # and restored within one heartbeat must still page
        self.degradations = 0
        self.last_problem: str | None = None
        # only the daemon's store degrades to memory; an admin command's write just fails
        self.resilient = False

    @classmethod
    async def open(
        cls, state_dir: Path, *, resilient: bool = False, clock: Callable[[], float] = time.time
    ) -> Store:
        """Opens (creates) `<state_dir>/sentinel.db`.

        `resilient` (the daemon): a damaged file is moved aside and a fresh one started
        (`recovered` says so), and a file that cannot be written leaves the store running
        from memory (`durable` False) instead of failing. Admin commands open it plainly.
        """
        path = state_dir / DB_NAME
        if not resilient:
            state_dir.mkdir(parents=True, exist_ok=True)
            return await cls._open_file(path, clock)
        recovered: dict[str, Any] | None = None
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            damage = await _damage(path) if path.exists() else None
            if damage is not None:
                now = clock()
                moved = set_aside(path, "corrupt", now)
                recovered = {"reason": damage, "moved_to": str(moved), "ts": now}
                log.critical(
                    "state database %s was corrupt (%s): moved aside to %s, started a fresh one",
                    path,
                    damage,
                    moved.name,
                )
            store = await cls._open_file(path, clock)
        except (sqlite3.Error, OSError) as exc:
            problem = storage_problem(exc)
            if problem is None:
                raise
            store = await cls._open_memory(path, problem, clock)
        store.recovered = recovered
        store.resilient = True
        return store

    @classmethod
    async def _open_file(cls, path: Path, clock: Callable[[], float]) -> Store:
        db = await _connect_file(path)
        try:
            store = cls(path, db, clock=clock)
            await store._migrate_core()
        except BaseException:
            await db.close()
            raise
        return store

    @classmethod
    async def _open_memory(cls, path: Path, problem: str, clock: Callable[[], float]) -> Store:
        """The file cannot be written at start: carry on from a copy of what it holds (if it
        can be read at all) in memory."""
        mem = await _connect_memory()
        if path.exists():
            with contextlib.suppress(sqlite3.Error):
                # immutable: a read-only filesystem cannot host the -shm file WAL wants
                source = await aiosqlite.connect(f"file:{path}?immutable=1", uri=True)
                try:
                    await source.backup(mem)
                finally:
                    await source.close()
        store = cls(path, mem, clock=clock)
        store._note_problem(problem)
        await store._migrate_core()
        return store

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

    # -- degraded mode ---------------------------------------------------------------------

    def _note_problem(self, raw: str) -> None:
        problem = _diagnose(self.path.parent, raw)
        self.durable = False
        self.problem = self.last_problem = problem
        self.degradations += 1
        self.problem_since = self._clock()
        self._retry_error = problem
        detail = problem if problem == raw else f"{problem}; sqlite: {raw}"
        log.critical(
            "state database %s not writable (%s): running from memory, NOT durable; "
            "alarms still page, nothing is kept across a restart until it can be written",
            self.path,
            detail,
        )

    async def _degrade(self, problem: str) -> None:
        """Switches to an in-memory copy of the database (call with the lock held)."""
        mem = await _connect_memory()
        try:
            await self._conn.backup(mem)
        except sqlite3.Error:
            # the file cannot even be read: start empty rather than stop paging
            await _run_script(mem, CORE_MIGRATIONS, "PRAGMA user_version={n}")
            for owner, migrations in self._migrations.items():
                await _apply(mem, owner, migrations, 0)
        old, self._conn = self._conn, mem
        with contextlib.suppress(Exception):
            await old.close()
        self._note_problem(problem)

    def file_problem(self) -> str | None:
        """Whether the file at the path is still the one we write (None if it is)."""
        if not self.durable:
            return None
        ident = _ident(self.path)
        if ident is None:
            return "file deleted while running"
        if ident != self._ident:
            return "file replaced by another while running"
        return None

    async def check(self) -> None:
        """Called every heartbeat: notices a file deleted or replaced under us (writes to a
        deleted file succeed, and are lost at the next start) and stops trusting it."""
        problem = self.file_problem()
        if problem is not None:
            async with self._lock:
                if self.durable:
                    await self._degrade(problem)

    async def try_durable(self) -> bool:
        """While running from memory: writes everything back to the file and uses it again,
        if it can be written now. True when the store is durable (again)."""
        if self.durable:
            return True
        async with self._lock:
            disk: aiosqlite.Connection | None = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                ident = _ident(self.path)
                if ident is None or ident != self._ident:
                    # -wal/-shm at the path are what our old file left: a new file (or the
                    # one that replaced ours) would read their pages as its own
                    set_aside(self.path, "stale", self._clock(), main=False)
                if ident is not None and self._ident is not None and ident != self._ident:
                    moved = set_aside(self.path, "replaced", self._clock())
                    log.warning(
                        "state database: the file that replaced ours was moved aside to %s",
                        moved.name,
                    )
                disk = await _connect_file(self.path)
                # from here the file at the path is ours, even if the copy fails half way
                self._ident = _ident(self.path)
                await self._conn.backup(disk)
            except (sqlite3.Error, OSError) as exc:
                if disk is not None:
                    with contextlib.suppress(Exception):
                        await disk.close()
                reason = _diagnose(self.path.parent, storage_problem(exc) or str(exc))
                if reason != self._retry_error:
                    log.warning("state database %s still not writable: %s", self.path, reason)
                    self._retry_error = reason
                return False
            old, self._conn = self._conn, disk
            self._ident = _ident(self.path)
            await old.close()
            log.warning(
                "state database %s writable again: durable again (was: %s, for %.0f s)",
                self.path,
                self.problem,
                self._clock() - (self.problem_since or 0),
            )
            self.durable = True
            self.problem = None
            self.problem_since = None
            self._retry_error = None
            return True

    # -- transactions ----------------------------------------------------------------------

    @asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """One `BEGIN IMMEDIATE` transaction; commits on success, rolls back on error.

        `durable=False` commits without fsync (WAL, synchronous=NORMAL): the transaction
        survives a crash of the process, not a power loss. For bookkeeping that something
        else rebuilds after a power loss (the replication journal: the full reconcile at
        start finds every change again), where an fsync per batch would cost latency.

        Safe against cancellation: a component cancelled mid-transaction (stop, reload) must
        not leave the shared connection inside a transaction for the next writer.

        When the file cannot be written, the error still reaches the caller (its work was
        not recorded; callers keep it and retry), and the store switches to memory so that
        the retry succeeds.
        """
        async with self._lock:
            # the mode is switched when it changes, not around every transaction: at one
            # journal commit per shipped batch the two extra statements were most of its
            # round trips. A new connection (moved to memory, back to the file) is set again.
            if self._synchronous != (self._conn, durable):
                self._synchronous = None  # unknown until the statement has run
                await self._execute_to_end(
                    "PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL"
                )
                self._synchronous = (self._conn, durable)
            try:
                try:
                    await self._execute_to_end("BEGIN IMMEDIATE")
                    yield self._conn
                    await self._execute_to_end("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            await self._execute_to_end("ROLLBACK")
                    raise
            except Exception as exc:
                await self._failed_write(exc)
                raise

    async def _failed_write(self, exc: Exception) -> None:
        """A write that failed because the file cannot be written moves the daemon's store to
        memory (the caller still gets the error: its work was not recorded, and it retries)."""
        problem = storage_problem(exc) if self.resilient else None
        if problem is not None and self.durable:
            await self._degrade(problem)

    def fast_write(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """`write(durable=False)`, in the shape leaves take as a write callable."""
        return self.write(durable=False)

    async def run_write(
        self, fn: Callable[[sqlite3.Connection], _T], *, durable: bool = True
    ) -> _T:
        """`write()` in one hop to the database thread: `fn(conn)` is the whole transaction,
        a plain function run there between BEGIN IMMEDIATE and COMMIT (ROLLBACK when it
        raises), together with the synchronous switch; returns what `fn` returns. Same lock,
        `durable`, cancellation safety and move to memory as `write()`. Each aiosqlite call
        is a hop to its thread and back through the loop; at one bookkeeping transaction per
        shipped file those hops, not SQLite, were the cost (issue 18).

        `fn` runs in another thread: it must only use `conn`, and must not await."""
        async with self._lock:
            aconn = self._conn
            conn = aconn._conn  # raises when closed, like any aiosqlite call
            switch = self._synchronous != (aconn, durable)
            if switch:
                self._synchronous = None  # unknown until the call has run

            def transaction() -> _T:
                if switch:
                    conn.execute(
                        "PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL"
                    )
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
                return result

            # aiosqlite (0.22) has no public call for "run this callable in the
            # connection's thread": `Connection._execute(fn)` is what its own execute(),
            # commit() and backup() use, and the only way to keep BEGIN..COMMIT in one hop.
            # sqlite3 objects must stay in that thread, so a to_thread() of our own is no
            # substitute. tests/core/test_store.py fails if an upgrade changes it.
            call = asyncio.ensure_future(aconn._execute(transaction))
            try:
                try:
                    # shielded: cancelled mid-call, the thread still runs the whole
                    # transaction; its outcome is known before the lock is released
                    result = await asyncio.shield(call)
                except asyncio.CancelledError:
                    await asyncio.wait([call])
                    call.exception()  # retrieved: the caller is told it was cancelled
                    raise
            except Exception as exc:
                await self._failed_write(exc)
                raise
            if switch:
                self._synchronous = (aconn, durable)
            return cast(_T, result)

    def fast_run(self, fn: Callable[[sqlite3.Connection], _T]) -> Awaitable[_T]:
        """`run_write(fn, durable=False)`, in the shape leaves take (`common.db.WriteFn`)."""
        return self.run_write(fn, durable=False)

    async def _execute_to_end(self, sql: str) -> None:
        """Run `sql` and wait until it has run even if we are cancelled meanwhile: aiosqlite
        executes it in its thread regardless, and the transaction state must be known before
        the lock is released."""
        statement = asyncio.ensure_future(self._conn.execute(sql))
        try:
            await asyncio.shield(statement)
        except asyncio.CancelledError:
            await asyncio.wait([statement])
            raise

    async def _migrate_core(self) -> None:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for number, script in enumerate(CORE_MIGRATIONS[current:], start=current + 1):

            async def apply(
                db: aiosqlite.Connection, script: str = script, number: int = number
            ) -> None:
                for statement in _statements(script):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version={number}")

            await self._write_at_start(apply)

    async def migrate(self, owner: str, migrations: Sequence[str]) -> None:
        """Apply the owner's migrations not yet applied, each in its own transaction."""
        self._migrations[owner] = migrations
        async with self._conn.execute(
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

            async def apply(
                db: aiosqlite.Connection, script: str = script, number: int = number
            ) -> None:
                await _apply_one(db, owner, number, script)

            await self._write_at_start(apply)

    async def _write_at_start(
        self, apply: Callable[[aiosqlite.Connection], Awaitable[None]]
    ) -> None:
        """A migration, once more when its first attempt moved the store to memory: an
        upgrade that starts on a full or read-only state disk must come up and page, not
        crash in a restart loop (other writers retry on their own; migrations run once)."""
        durable = self.durable
        try:
            async with self.write() as db:
                await apply(db)
        except Exception:
            if not durable or self.durable:
                raise
            async with self.write() as db:
                await apply(db)


def _diagnose(directory: Path, problem: str) -> str:
    """SQLite says "unable to open database file" or "disk I/O error" for a read-only or
    full filesystem; the filesystem itself says which."""
    try:
        fs = os.statvfs(directory)
    except OSError as exc:
        return f"{problem} ({exc.strerror})"
    if fs.f_flag & os.ST_RDONLY:
        return "read-only file system"
    if fs.f_bavail == 0 and "full" not in problem:
        return "no space left on device"
    return problem


async def _connect_file(path: Path) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        db.row_factory = aiosqlite.Row
        await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA journal_mode=WAL")
        # FULL survives power loss; NORMAL may roll back the last commits. Volume is tiny.
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute("PRAGMA foreign_keys=ON")
        # the first write proves the file can be written (journal_mode may not write)
        await db.execute("BEGIN IMMEDIATE")
        await db.execute("COMMIT")
    except BaseException:
        await db.close()
        raise
    return db


async def _connect_memory() -> aiosqlite.Connection:
    db = await aiosqlite.connect(":memory:", isolation_level=None)
    db.row_factory = aiosqlite.Row
    await db.execute("PRAGMA foreign_keys=ON")
    return db


async def _run_script(db: aiosqlite.Connection, scripts: Sequence[str], mark: str) -> None:
    for number, script in enumerate(scripts, start=1):
        await db.execute("BEGIN")
        for statement in _statements(script):
            await db.execute(statement)
        await db.execute(mark.format(n=number))
        await db.execute("COMMIT")


async def _apply(
    db: aiosqlite.Connection, owner: str, migrations: Sequence[str], current: int
) -> None:
    for number, script in enumerate(migrations[current:], start=current + 1):
        await db.execute("BEGIN")
        await _apply_one(db, owner, number, script)
        await db.execute("COMMIT")


async def _apply_one(db: aiosqlite.Connection, owner: str, number: int, script: str) -> None:
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
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.OperationalError:
        # A WAL database needs its -shm file even to be read. When the daemon is stopped
        # SQLite has removed it, and a reader who may not write the directory (an admin in
        # group sentinel) cannot create it. Without a -wal file every commit is in the main
        # file, so reading it as immutable is exact.
        if Path(f"{path}-wal").exists():
            raise
        conn.close()
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    conn.row_factory = sqlite3.Row
    return conn
