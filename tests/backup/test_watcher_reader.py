"""The watcher's reader (backup/watcher.py, issue 18): one reader callback on the inotify
descriptor for the watcher's life, at most EVENTS_PER_TURN events a turn. Nothing may stay
read and not dispatched when the kernel's queue is empty, and what the dispatch raises
ends `run()` with it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
from pathlib import Path

import pytest

import backup.watcher as watcher_mod
from backup.filters import Filters
from backup.watcher import SourceGone, Watcher
from tests.fixtures.poll import until


async def test_a_burst_larger_than_one_turn_is_reported_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More events than a turn takes, all read from the kernel at once: the rest of
    what was read is taken on the next turn, not left until the next event."""
    monkeypatch.setattr(watcher_mod, "EVENTS_PER_TURN", 7)
    src = tmp_path / "src"
    src.mkdir()
    seen: list[tuple[str, str]] = []
    watcher = Watcher(src, Filters(), lambda rel, kind: seen.append((rel, kind)), lambda: None)
    watcher.open()
    task = asyncio.create_task(watcher.run())
    try:
        for i in range(500):  # written while the loop does not run: one queue, many turns
            (src / f"f{i:03}").write_bytes(b"x")
        await until(
            lambda: sum(kind == "write" for _, kind in seen) == 500, 10, "every close-write"
        )
        assert [rel for rel, kind in seen if kind == "write"] == [f"f{i:03}" for i in range(500)]
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        tick = asyncio.create_task(ticker())
        for i in range(500, 1000):
            (src / f"f{i:03}").write_bytes(b"x")
        await until(lambda: len(seen) == 2000, 10, "the second burst")
        tick.cancel()
        assert ticks > 1000 // 7  # the loop ran other work between the turns
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        watcher.close()


async def test_the_reader_never_blocks_the_loop(tmp_path: Path) -> None:
    """A descriptor that reads blocking (asyncinotify's did, although it asked for
    IN_NONBLOCK; backup/inotify.py's must not): the reader's last read of a turn would
    then wait for the next event with the whole loop (the daemon's alarms too) frozen. A
    timer must fire while no event comes."""
    src = tmp_path / "src"
    src.mkdir()
    watcher = Watcher(src, Filters(), lambda rel, kind: None, lambda: None)
    watcher.open()
    task = asyncio.create_task(watcher.run())
    try:
        (src / "one").write_bytes(b"x")
        loop = asyncio.get_running_loop()
        fired = await asyncio.to_thread(_timer_fires_in_loop, loop, src / "unblock")
        assert fired
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        watcher.close()


def _timer_fires_in_loop(loop: asyncio.AbstractEventLoop, unblock: Path) -> bool:
    """From another thread: does a callback scheduled on `loop` run within 5 s? If not,
    an event (`unblock` written) frees a loop stuck in a read, so the test ends."""
    done = threading.Event()
    loop.call_soon_threadsafe(loop.call_later, 0.2, done.set)
    fired = done.wait(5)
    if not fired:
        unblock.write_bytes(b"x")
    return fired


async def test_the_source_deleted_ends_run_with_source_gone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    watcher = Watcher(src, Filters(), lambda rel, kind: None, lambda: None)
    watcher.open()
    try:
        task = asyncio.create_task(watcher.run())
        await asyncio.sleep(0.05)
        shutil.rmtree(src)
        with pytest.raises(SourceGone):
            await asyncio.wait_for(task, 10)
    finally:
        watcher.close()


async def test_a_flood_takes_at_most_one_turn_of_events_per_loop_iteration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One turn queued at a time: the reader callback, still registered while the kernel's
    queue is not empty, must not start a second chain of turns (the first version added one
    a loop iteration: 7, 14, 21 ... events an iteration; found by a review)."""
    monkeypatch.setattr(watcher_mod, "EVENTS_PER_TURN", 7)
    src = tmp_path / "src"
    src.mkdir()
    iteration = 0
    per_iteration: dict[int, int] = {}

    def seen(rel: str, kind: str) -> None:
        per_iteration[iteration] = per_iteration.get(iteration, 0) + 1

    watcher = Watcher(src, Filters(), seen, lambda: None)
    watcher.open()
    loop = asyncio.get_running_loop()
    stop = False

    def tick() -> None:
        nonlocal iteration
        iteration += 1
        if not stop:
            loop.call_soon(tick)

    task = asyncio.create_task(watcher.run())
    try:
        for i in range(3000):
            (src / f"f{i:04}").write_bytes(b"x")
        tick()
        await until(lambda: sum(per_iteration.values()) >= 6000, 20, "the flood")
        stop = True
        assert max(per_iteration.values()) <= 7, max(per_iteration.values())
    finally:
        stop = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        watcher.close()


async def test_a_directory_moved_into_a_new_one_before_the_events_are_read_stays_watched(
    tmp_path: Path,
) -> None:
    """`mkdir P; mv A P/B` while the loop is busy: P's scan watches P/B, and the kernel
    hands back A's watch for it; the queued MOVED_FROM of A must not remove that watch."""
    src = tmp_path / "src"
    (src / "A" / "sub").mkdir(parents=True)
    seen: list[tuple[str, str]] = []
    watcher = Watcher(src, Filters(), lambda rel, kind: seen.append((rel, kind)), lambda: None)
    watcher.open()
    (src / "P").mkdir()  # both before run() reads anything: one queue
    (src / "A").rename(src / "P" / "B")
    task = asyncio.create_task(watcher.run())
    try:
        await until(lambda: ("A", "move_from") in seen, 10, "the move read")
        (src / "P" / "B" / "f").write_bytes(b"x")
        (src / "P" / "B" / "sub" / "g").write_bytes(b"x")
        await until(
            lambda: {("P/B/f", "write"), ("P/B/sub/g", "write")} <= set(seen),
            10,
            "writes in the moved directory",
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        watcher.close()
