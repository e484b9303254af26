"""The change journal: every changed path is in SQLite before it is shipped.

Paths are `str` in memory the way `os.fsdecode` gives them (a name that is not valid UTF-8
keeps its bytes as surrogates) and the file system's bytes in SQLite (BLOB): any name Linux
allows round-trips; a str with surrogates would not even bind to a TEXT parameter.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar, cast

import aiosqlite

# backup's modules take the write transactions' types from here
from common.db import WriteFn as WriteFn
from common.db import WriteTx as WriteTx

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    seq: int
    first_seen: float


class Journal:
    """Pending changes of one source, coalesced per path.

    `db` is for reads; `write` opens the daemon's serialised write transaction, and `run`
    (default: made from `write`) runs one in a single hop: `record` and `complete`, once
    per shipped batch, use it.
    """

    def __init__(
        self,
        source: str,
        db: aiosqlite.Connection,
        write: WriteTx,
        *,
        run: WriteFn | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self._db = db
        self._write = write
        self._run = run or run_in(write)
        self._clock = clock
        self._seq = 0
        # the first number of each record() whose rows are not committed yet
        self._recording: list[int] = []
        self.pending = 0
        self.oldest: float | None = None

    async def load(self) -> None:
        async with self._db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM backup_journal WHERE source = ?", (self.source,)
        ) as cur:
            row = await cur.fetchone()
        self._seq = int(row[0]) if row else 0
        await self.refresh()

    async def sync(self) -> None:
        """Takes in rows another process recorded (their numbers too, so a later change here
        is numbered after them)."""
        async with self._db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM backup_journal WHERE source = ?", (self.source,)
        ) as cur:
            row = await cur.fetchone()
        self._seq = max(self._seq, int(row[0]) if row else 0)
        await self.refresh()

    @property
    def seq(self) -> int:
        """The last sequence number handed out (rows up to it are 'seen so far')."""
        return self._seq

    @property
    def committed_below(self) -> int | None:
        """The number just below the oldest one handed out whose row is not committed yet
        (None: every number handed out is in a committed row or was shipped): until then,
        no row says that change is pending."""
        return min(self._recording) - 1 if self._recording else None

    def number_shipped(self, count: int) -> None:
        """Numbers `count` changes that shipped without a row (the replicator's direct run):
        the sequence the room's heartbeat reports as shipped moves on, which tells the
        keeper something landed."""
        self._seq += count

    async def record(self, paths: Iterable[str], *, ts: float | None = None) -> int:
        """Upserts the paths in one transaction, keeping each row's first-seen time."""
        now = self._clock() if ts is None else ts
        rows = []
        first = self._seq + 1
        for path in paths:
            self._seq += 1
            rows.append((self.source, os.fsencode(path), now, self._seq))
        if not rows:
            return 0

        def upsert(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO backup_journal(source, path, first_seen, seq) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(source, path) DO UPDATE SET seq = excluded.seq",
                rows,
            )

        self._recording.append(first)
        try:
            await self._run(upsert)
        finally:
            self._recording.remove(first)
        self.pending += len(rows)  # an upper bound until refresh(); cheap and monotone
        if self.oldest is None:
            self.oldest = now
        return len(rows)

    async def take(self, max_files: int) -> list[Entry]:
        """The oldest pending rows (by sequence), at most `max_files`."""
        # one hop to the database thread (a cursor's execute, fetch and close are three)
        rows = await self._db.execute_fetchall(
            "SELECT path, seq, first_seen FROM backup_journal WHERE source = ? "
            "ORDER BY seq LIMIT ?",
            (self.source, max_files),
        )
        return [Entry(os.fsdecode(r[0]), int(r[1]), float(r[2])) for r in rows]

    async def complete(
        self,
        batch: Iterable[Entry],
        started: float,
        *,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """After a successful transfer: drop rows whose seq is unchanged; rows changed during
        the transfer stay, with first_seen moved to the transfer start (the latest time their
        unshipped change can be older than). `also` runs in the same transaction (the
        replicator's success figures: one commit per shipped batch, not two).

        `pending`/`oldest` follow in memory: the count by the rows deleted, the oldest time
        read again only when this batch held it (rows are taken oldest first, so at a
        steady trickle a batch empties the journal and no read is needed)."""
        batch = list(batch)

        def drop(conn: sqlite3.Connection) -> int:
            gone = conn.executemany(
                "DELETE FROM backup_journal WHERE source = ? AND path = ? AND seq = ?",
                [(self.source, os.fsencode(e.path), e.seq) for e in batch],
            ).rowcount
            conn.executemany(
                "UPDATE backup_journal SET first_seen = MAX(first_seen, ?) "
                "WHERE source = ? AND path = ? AND seq > ?",
                [(started, self.source, os.fsencode(e.path), e.seq) for e in batch],
            )
            if also is not None:
                also(conn)
            return max(0, gone)

        gone = await self._run(drop)
        self.pending = max(0, self.pending - gone)
        if self.pending == 0:
            # an upper bound until now (record() counts an upsert of a pending path too):
            # the next take() finds the truth, and an empty take refreshes
            self.oldest = None
        elif self.oldest is not None and any(e.first_seen <= self.oldest for e in batch):
            await self.refresh()

    async def clear_upto(self, seq: int) -> None:
        """After a full reconcile that began when `seq` was the last number: those rows are
        covered; rows recorded during the reconcile stay."""
        async with self._write() as db:
            await db.execute(
                "DELETE FROM backup_journal WHERE source = ? AND seq <= ?", (self.source, seq)
            )
        await self.refresh()

    async def paths(self) -> set[str]:
        """Every pending path."""
        async with self._db.execute(
            "SELECT path FROM backup_journal WHERE source = ?", (self.source,)
        ) as cur:
            return {os.fsdecode(r[0]) async for r in cur}

    async def discard(self) -> int:
        async with self._write() as db:
            cur = await db.execute("DELETE FROM backup_journal WHERE source = ?", (self.source,))
            count = cur.rowcount
        await self.refresh()
        return count

    async def refresh(self) -> None:
        rows = list(
            await self._db.execute_fetchall(
                "SELECT COUNT(*), MIN(first_seen) FROM backup_journal WHERE source = ?",
                (self.source,),
            )
        )
        row = rows[0] if rows else None
        self.pending = int(row[0]) if row else 0
        self.oldest = float(row[1]) if row and row[1] is not None else None

    def rpo(self, now: float) -> float:
        """Age of the oldest pending change; 0 when caught up."""
        return max(0.0, now - self.oldest) if self.oldest is not None else 0.0


def run_in(write: WriteTx) -> WriteFn:
    """A `WriteFn` for a caller that has only a `WriteTx` (tests, admin commands): `fn` runs
    inside `write()`'s transaction, in the connection's thread, so the same code serves both;
    BEGIN and COMMIT are hops of their own here. The daemon hands the store's `run_write`."""

    async def run(fn: Callable[[sqlite3.Connection], _T]) -> _T:
        async with write() as db:
            # aiosqlite's own way to run a callable in its thread (see Store.run_write)
            return cast(_T, await db._execute(fn, db._conn))

    return run
