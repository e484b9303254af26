"""The room heartbeat's shipped sequence (sentinel/room_heartbeat.py `_shipped_seq`) never
counts a change that is in no committed row and not on the replica: it tells the keeper
that something landed since its last snapshot. Found by a review (issue 18's direct run)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiosqlite

from backup.journal import Journal
from sentinel.room_heartbeat import RoomHeartbeat


async def _journal_db(tmp_path: Path) -> aiosqlite.Connection:
    """A database with the journal's table, as backup/schema.py makes it (the columns the
    journal and the heartbeat use)."""
    db = await aiosqlite.connect(tmp_path / "j.db")
    await db.execute(
        "CREATE TABLE backup_journal(source TEXT, path BLOB, first_seen REAL, seq INTEGER,"
        " PRIMARY KEY(source, path))"
    )
    await db.commit()
    return db


async def test_rows_committed_while_the_query_runs_are_not_called_shipped(
    tmp_path: Path,
) -> None:
    """The heartbeat's query sees no rows; while its answer comes back, a batch's rows are
    committed and the journal loop lets go of it. The answer must not include them."""
    db = await _journal_db(tmp_path)
    try:

        async def run(fn: Any) -> None:
            await db._execute(fn, db._conn)  # the upsert on the connection's thread
            await db.commit()

        journal = Journal("docs", db, write=None, run=run)  # type: ignore[arg-type]
        rep = SimpleNamespace(journal=journal, in_hand_seq=None)
        hb = object.__new__(RoomHeartbeat)
        hb._replicator, hb.spec, hb._db = rep, SimpleNamespace(name="docs"), db

        async def journal_loop_records() -> None:
            rep.in_hand_seq = journal.seq
            try:
                await journal.record(["a", "b"], ts=1.0)
            finally:
                rep.in_hand_seq = None

        beat = asyncio.create_task(hb._shipped_seq())
        await asyncio.sleep(0)  # the heartbeat's SELECT is queued first
        await journal_loop_records()
        shipped = await beat
        rows = await db.execute_fetchall("SELECT MIN(seq) FROM backup_journal")
        assert rows[0][0] == 1  # rows 1 and 2 are in the journal: nothing shipped
        assert shipped == 0, shipped
    finally:
        await db.close()


async def test_a_record_in_flight_from_anywhere_holds_the_shipped_sequence(
    tmp_path: Path,
) -> None:
    """Not only the journal loop records: a full pass and the quarantine's releases do too,
    without holding a batch. Numbers handed out to rows not committed yet are not shipped."""
    db = await _journal_db(tmp_path)
    try:
        go = asyncio.Event()

        async def slow_run(fn: Any) -> None:
            await go.wait()  # the store's write lock is busy
            await db._execute(fn, db._conn)
            await db.commit()

        journal = Journal("docs", db, write=None, run=slow_run)  # type: ignore[arg-type]
        rep = SimpleNamespace(journal=journal, in_hand_seq=None)
        hb = object.__new__(RoomHeartbeat)
        hb._replicator, hb.spec, hb._db = rep, SimpleNamespace(name="docs"), db
        recording = asyncio.create_task(journal.record(["a", "b"], ts=1.0))
        await asyncio.sleep(0.05)
        assert journal.seq == 2
        assert await hb._shipped_seq() == 0
        go.set()
        await recording
        assert await hb._shipped_seq() == 0  # in rows now: pending, not shipped
    finally:
        await db.close()
