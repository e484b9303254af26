"""The direct run (issue 18): on a local replica, with the full pass at start on, sparse
writes ship from the journal loop by the in-process copy, without a journal row; anything
that is not the plain case goes through the journal as before."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import backup.local_copy as local_copy
from backup.markers import TARGET_MARKER, target_text
from backup.spec import GuardSettings
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import caught_up, count_records, make_spec, running
from tests.fixtures.poll import until


def _db_figures(store: Store) -> tuple[float | None, int]:
    conn = sqlite3.connect(store.path, timeout=5)
    try:
        row = conn.execute(
            "SELECT last_success, shipped_files FROM backup_state WHERE source = 'docs'"
        ).fetchone()
    finally:
        conn.close()
    return (row[0], int(row[1] or 0)) if row else (None, 0)


async def test_sparse_writes_ship_without_a_journal_row_and_the_figures_follow(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GuardSettings())
    async with running(spec, bstore, journal_write=bstore.fast_write) as rep:
        (src / "d").mkdir()
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        records = count_records(rep)
        seq, shipped, runs = rep.journal.seq, rep.health()["shipped_files"], rep.transfers
        n = 30
        for i in range(n):
            where = src / "d" if i % 2 else src
            (where / f"f{i:03}").write_bytes(os.urandom(1000 + 37 * i))
            await asyncio.sleep(1 / 20)
        await caught_up(rep, src, dst)  # every file, byte for byte

        assert records[0] == 0
        assert rep.transfers - runs < 0.8 * n, rep.transfers - runs
        # the room's heartbeat reports this sequence as shipped: it moved on with the files
        assert rep.journal.seq >= seq + n
        assert rep.health()["shipped_files"] >= shipped + n
        # the database's figures (what `sentinel status` reads without the daemon) follow
        # within FIGURES_EVERY of a run, or at the scheduler's next round (STATE_POLL)
        await until(lambda: _db_figures(bstore)[1] >= shipped + n, 15, "figures in the db")
        assert (_db_figures(bstore)[0] or 0) >= time.time() - 30

        # a new directory is not a plain file: the journal carries it, rsync ships it
        (src / "e").mkdir()
        (src / "e" / "in.txt").write_text("in e")
        await caught_up(rep, src, dst)
        assert records[0] >= 1


async def test_what_the_copy_cannot_ship_goes_through_the_journal_to_rsync(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """A symlink, a hard-linked file with hardlinks on, a hostile name: the in-process copy
    hands them back, the journal keeps them, rsync ships them."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, hardlinks=True)
    async with running(spec, bstore) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        records = count_records(rep)
        (src / "plain.txt").write_text("plain")
        (src / "link").symlink_to("plain.txt")
        (src / "a").write_text("linked")
        os.link(src / "a", src / "b")
        (src / "-- --delete x\nname").write_text("hostile")
        await caught_up(rep, src, dst)
        assert records[0] >= 1
    assert os.readlink(dst / "link") == "plain.txt"
    assert os.stat(dst / "a").st_ino == os.stat(dst / "b").st_ino
    assert (dst / "-- --delete x\nname").read_text() == "hostile"


async def test_a_replica_unmounted_under_a_direct_run_is_not_written_into(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """The marker is read before every direct run: a replica whose disk went away (an empty
    mount point left) gets nothing, and the journal's run says the target is missing."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    async with running(make_spec(src, parse_target(str(dst)), runtime), bstore) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        gone = tmp_path / "unmounted"
        dst.rename(gone)
        dst.mkdir()  # the empty mount point
        (src / "after.txt").write_text("after")
        await until(lambda: rep.health()["target_missing"], 20, "target missing")
        assert list(dst.iterdir()) == []
        assert rep.health()["pending"] >= 1  # kept in the journal for the disk's return


async def test_the_heartbeat_does_not_call_a_file_in_a_direct_run_shipped(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a direct run copies, its files are in no journal row; "synced through" (what
    the room's heartbeat tells the keeper) stays before their change until they arrived."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    gate = threading.Event()
    ship_all = local_copy._ship_all

    def held(*args: Any) -> Any:
        gate.wait(20)
        return ship_all(*args)

    async with running(make_spec(src, parse_target(str(dst)), runtime), bstore) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        assert rep.unshipped_since is None
        monkeypatch.setattr(local_copy, "_ship_all", held)
        before = time.time()
        (src / "held.txt").write_text("held")
        try:
            await until(lambda: rep.health()["transfer_running"], 10, "a direct run")
            assert rep.journal.pending == 0  # in no row: only the run knows
            since = rep.unshipped_since
            assert since is not None and before - 0.05 <= since <= time.time()
        finally:
            gate.set()
        await caught_up(rep, src, dst)
        assert rep.unshipped_since is None


async def test_a_guard_near_its_limit_sends_the_changes_through_the_journal(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """The direct run only goes when the guard's verdict is a plain yes (here: up to 5
    files); half way to a trip the journal's run holds them, as before, and the trip (at
    11) ships nothing more. Writes far enough apart that each could have a run of its own."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(40):
        (src / f"f{i:02}").write_text("original")
    # older than the first pass's ctime slack: not listed as changed meanwhile (those
    # batches are measured by a dry run, and never go direct)
    await asyncio.sleep(1.5)
    guard = GuardSettings(enabled=True, max_files=10, max_share=1.0, window=60)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=guard)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        for i in range(20):
            (src / f"f{i:02}").write_text("encrypted")
            await asyncio.sleep(0.06)
        await until(lambda: rep.health()["guard_tripped"], 20, "guard trip")
        await asyncio.sleep(0.5)
    overwritten = sum((dst / f"f{i:02}").read_text() == "encrypted" for i in range(20))
    assert 1 <= overwritten <= 5, overwritten


async def test_a_marker_rewritten_to_name_another_replication_stops_the_direct_run(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """The marker is read again whenever its identity changed (here its content: size and
    ctime), not only once: a replica now claimed by another replication gets nothing."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    async with running(make_spec(src, parse_target(str(dst)), runtime), bstore) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        (src / "second.txt").write_text("second")  # a direct run: the marker is known now
        await caught_up(rep, src, dst)
        (dst / TARGET_MARKER).write_text(target_text("payroll"))
        (src / "after.txt").write_text("after")
        await until(lambda: rep.health()["target_missing"], 20, "target refused")
        assert "belongs to replication 'payroll'" in str(rep.health()["blocked"])
        assert not (dst / "after.txt").exists()
