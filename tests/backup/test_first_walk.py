"""The first full pass starts with the watches instead of after them (issue 18): whatever
changed in a directory the pass had already read before its watch existed is found by its
ctime and shipped after the pass, so starting early loses nothing."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from backup import replicator as replicator_module
from backup.filters import Filters
from backup.rsync import RsyncResult
from backup.transport import parse_target
from backup.watcher import Watcher
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running


def _tick() -> None:
    """ctime comes from the kernel's coarse clock: step past one of its ticks."""
    time.sleep(0.05)


def test_the_first_walk_lists_what_changed_since_a_pass_began(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d in ("a", "b", "c/deep"):
        (src / d).mkdir(parents=True)
    for name in ("a/x.txt", "a/y.txt", "b/keep.txt", "c/deep/old.txt"):
        (src / name).write_text(name)
    _tick()
    since = time.time()
    _tick()
    (src / "a" / "x.txt").write_text("rewritten")  # written after the pass began
    (src / "a" / "y.txt").unlink()  # gone: only its directory can say so
    (src / "b" / "new.txt").write_text("new")  # new: the file and its directory
    os.chmod(src / "c" / "deep" / "old.txt", 0o600)  # metadata only

    watcher = Watcher(src, Filters(), lambda rel, kind: None, lambda: None)
    try:
        watcher.open()
        changed = watcher.changes_since(since)
    finally:
        watcher.close()
    assert sorted(changed) == [
        ("a", True),
        ("a/x.txt", False),
        ("b", True),
        ("b/new.txt", False),
        ("c/deep/old.txt", False),
    ]
    assert watcher.file_count == 4


def test_nothing_changed_since_lists_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.txt").write_text("x")
    _tick()
    since = time.time()
    watcher = Watcher(src, Filters(), lambda rel, kind: None, lambda: None)
    try:
        watcher.open()
        assert watcher.changes_since(since) == [] and watcher.file_count == 1
    finally:
        watcher.close()


async def test_a_change_behind_the_first_pass_before_its_watch_reaches_the_replica(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk is held at one directory until the first pass has copied it; then a file
    there is rewritten, one deleted and one created, and only then is the watch added. No
    event will ever say so: the replica must still end up equal to the source."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "late").mkdir(parents=True)
    for i in range(20):
        (src / f"early{i:02}.txt").write_text(f"early {i}\n")
    (src / "late" / "f.txt").write_text("old\n")
    (src / "late" / "gone.txt").write_text("to be deleted\n")
    seen: dict[str, bool] = {}
    original = Watcher._watch

    def held_watch(self: Watcher, rel: str, full: str) -> bool:
        if rel == "late" and "late" not in seen:
            copied = dst / "late" / "f.txt"
            deadline = time.monotonic() + 15
            while not copied.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            seen["late"] = copied.exists()  # the pass got there while the walk waited
            (src / "late" / "f.txt").write_text("rewritten after the pass read it\n")
            (src / "late" / "gone.txt").unlink()
            (src / "late" / "born.txt").write_text("created before the watch\n")
        return original(self, rel, full)

    monkeypatch.setattr(Watcher, "_watch", held_watch)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
    assert seen == {"late": True}  # the pass ran beside the walk, not after it
    assert (dst / "late" / "f.txt").read_text() == "rewritten after the pass read it\n"
    assert not (dst / "late" / "gone.txt").exists()
    assert (dst / "late" / "born.txt").read_text() == "created before the watch\n"


async def test_the_ctime_look_waits_for_the_pass_instead_of_slowing_it(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the ctime of every entry cost 0.4 s of CPU per 100,000 files, taken from
    rsync on a 2-core host while the pass ran (issue 18's first sync). It runs once the pass
    is over: none while the pass is held after the walk ended, and a file rewritten while
    the pass ran still arrives."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    for i in range(30):
        (src / "d" / f"f{i:02}.txt").write_text(f"{i}\n")
    _tick()
    stats: list[bool] = []  # one per ctime read: did the pass still run?
    walked, passing = threading.Event(), threading.Event()
    open_watcher, changed_since = Watcher.open, Watcher._changed_since
    real_sync = replicator_module.full_sync

    def opened(self: Watcher, *args: Any) -> None:
        assert passing.wait(15), "the pass did not start"  # the walk runs beside the pass
        open_watcher(self, *args)
        walked.set()

    def looked(entry: os.DirEntry[str], since: float) -> bool:
        stats.append(passing.is_set())
        return changed_since(entry, since)

    async def held_sync(*args: Any, **kw: Any) -> RsyncResult:
        passing.set()
        try:
            assert await asyncio.to_thread(walked.wait, 15), "the walk did not end"
            (src / "d" / "f07.txt").write_text("rewritten while the pass ran\n")
            await asyncio.sleep(0.2)  # the walk is over: a look beside the pass shows now
            return await real_sync(*args, **kw)
        finally:
            passing.clear()

    monkeypatch.setattr(Watcher, "open", opened)
    monkeypatch.setattr(Watcher, "_changed_since", staticmethod(looked))
    monkeypatch.setattr(replicator_module, "full_sync", held_sync)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
    assert stats and not any(stats)  # it looked, and only after the pass
    assert (dst / "d" / "f07.txt").read_text() == "rewritten while the pass ran\n"
