"""The direct run (issue 18): on a local replica, with the full pass at start on, sparse
writes ship from the journal loop by the in-process copy, without a journal row; anything
that is not the plain case goes through the journal as before."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import backup.local_copy as local_copy
import backup.replicator as replicator_mod
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
        # FIGURES_EVERY (1 s) after the first one not written, without another change
        await until(lambda: _db_figures(bstore)[1] >= shipped + n, 4, "figures in the db")
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


async def _arrival(path: Path, limit: float = 5.0) -> float:
    t0 = time.monotonic()
    await until(lambda: os.path.lexists(path), limit, str(path))
    return time.monotonic() - t0


@pytest.mark.parametrize("reconcile_at_start", [False, True])
async def test_what_the_copy_hands_back_after_a_quiet_period_ships_at_once(
    tmp_path: Path, bstore: Store, runtime: Path, reconcile_at_start: bool
) -> None:
    """A lone symlink after a quiet period: the direct run hands it back, and the ship loop
    must not take that run for one that just started (it waited a whole window, 0.8 s at
    this budget; found by a review)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(
        src,
        parse_target(str(dst)),
        runtime,
        latency_budget=1.0,
        reconcile_at_start=reconcile_at_start,
    )
    async with running(spec, bstore) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        await asyncio.sleep(1.2)  # quiet: more than a window since the last run
        runs = rep.transfers
        (src / "link").symlink_to("warm.txt")
        assert await _arrival(dst / "link") < 0.5
        await caught_up(rep, src, dst)
        assert rep.transfers - runs == 1  # rsync's; the direct run shipped nothing


async def test_a_handed_back_change_is_not_called_synced_while_it_is_recorded(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the copy hands back keeps the time its change was seen, while it is recorded
    and in its row (before: none while recorded, and the time of the record after)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    seen: list[float | None] = []
    async with running(make_spec(src, parse_target(str(dst)), runtime), bstore) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)

        def slow_hand_back(spec: Any, root: Any, paths: list[str], *a: Any) -> Any:
            time.sleep(0.5)  # a long copy that ends "written while copied"
            return local_copy.LocalShip(rest=list(paths))

        monkeypatch.setattr(local_copy, "_ship_all", slow_hand_back)
        record = rep.journal.record

        async def watched(paths: Any, **kw: Any) -> int:
            seen.append(rep.unshipped_since)
            n = int(await record(paths, **kw))
            seen.append(rep.unshipped_since)
            monkeypatch.undo()  # the real copy again
            return n

        rep.journal.record = watched  # type: ignore[method-assign]
        before = time.time()
        (src / "held.txt").write_text("held")
        await until(lambda: len(seen) >= 2, 10, "recorded")
        await caught_up(rep, src, dst)
    assert all(t is not None and t <= before + 0.2 for t in seen[:2]), (before, seen)


async def test_the_rsync_road_keeps_the_time_a_change_was_seen(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """A change waits a window before its row is written: the row keeps when it was seen,
    not when it was written (0.8 s later here), so "synced through" and the RPO do not
    run ahead of it."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, local_copy=False, latency_budget=1.0)
    seen: list[float | None] = []
    async with running(spec, bstore) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        record = rep.journal.record

        async def watched(paths: Any, **kw: Any) -> int:
            n = int(await record(paths, **kw))
            seen.append(rep.unshipped_since)
            return n

        rep.journal.record = watched  # type: ignore[method-assign]
        (src / "a.txt").write_text("a")
        await caught_up(rep, src, dst)
        before = time.time()
        (src / "b.txt").write_text("b")  # streaming: waits a window
        await caught_up(rep, src, dst)
    assert seen[-1] is not None and seen[-1] <= before + 0.1, (before, seen)


async def test_figures_written_meanwhile_do_not_undo_a_direct_run(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """A write of the figures that waits for the store's lock while a direct run succeeds
    must not put its older figures back in memory (found by a review)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()

    @contextlib.asynccontextmanager
    async def slow_write() -> Any:  # a busy store: the write waits for its lock
        await asyncio.sleep(0.2)
        async with bstore.fast_write() as db:
            yield db

    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore, journal_write=slow_write) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        base = rep.health()["shipped_files"]
        rep._figures_due = time.monotonic()
        write = asyncio.create_task(rep._write_figures())
        await asyncio.sleep(0.05)
        (src / "during.txt").write_text("during")  # a direct run lands meanwhile
        await until(lambda: rep.health()["shipped_files"] >= base + 1, 5, "counted")
        await write
        assert rep.health()["shipped_files"] >= base + 1


async def test_a_direct_run_that_raises_keeps_its_batch(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error in a direct run (here the copy's lock) ends the replicator as any error of
    the journal loop does, and the batch stays in memory: "synced through" stays before it
    until the restart's full pass ships it (found by a review)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime)
    with pytest.raises(BaseExceptionGroup) as raised:
        async with running(spec, bstore) as rep:
            (src / "warm.txt").write_text("first")
            await caught_up(rep, src, dst)

            async def broken(*a: Any, **kw: Any) -> Any:
                raise OSError(28, "No space left on device")

            monkeypatch.setattr(replicator_mod, "ship_plain", broken)
            before = time.time()
            (src / "kept.txt").write_text("kept")
            await until(lambda: rep.health()["phase"] == "stopped", 5, "the error")
            # asserted outside: the replicator's own error, raised when the block ends,
            # would hide an assertion error raised in it
            kept, since = set(rep._changes), rep.unshipped_since
    assert raised.group_contains(OSError)
    assert "kept.txt" in kept
    assert since is not None and since <= before + 0.2


async def test_the_database_figures_follow_a_stream_that_never_pauses(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The figures are written FIGURES_EVERY after the first unwritten one even while
    changes keep coming (the first version waited for a quiet second, so during a stream
    only the scheduler's round wrote them; here that round is an hour away)."""
    monkeypatch.setattr(replicator_mod, "STATE_POLL", 3600.0)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    async with running(make_spec(src, parse_target(str(dst)), runtime), bstore) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        base = _db_figures(bstore)[1]
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < 3.5:  # 20 writes a second, never a quiet second
            (src / f"s{i:03}").write_bytes(b"x" * 100)
            i += 1
            await asyncio.sleep(0.05)
        written_in_db = _db_figures(bstore)[1] - base
        assert written_in_db >= 20, (written_in_db, i)  # at most ~1.5 s behind the stream
        await caught_up(rep, src, dst)


async def test_a_batch_over_the_byte_cap_goes_the_journals_way_in_smaller_runs(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, batch_max_bytes=10_000)
    async with running(spec, bstore) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        records, runs = count_records(rep), rep.transfers
        for i in range(3):  # one batch: written before the loop runs again
            (src / f"big{i}").write_bytes(os.urandom(8000))
        await caught_up(rep, src, dst)
        assert records[0] >= 1
        assert rep.transfers - runs >= 2  # split by the cap: 8000 bytes fit, 16000 do not
