"""The first full pass starts with the watches instead of after them (issue 18): whatever
changed in a directory the pass had already read before its watch existed is found by its
ctime and shipped after the pass, so starting early loses nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backup.filters import Filters
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
        watcher.open(changed_since=since)
    finally:
        watcher.close()
    assert sorted(watcher.changed) == [
        ("a", True),
        ("a/x.txt", False),
        ("b", True),
        ("b/new.txt", False),
        ("c/deep/old.txt", False),
    ]
    assert watcher.file_count == 4


def test_without_a_pass_beside_it_the_walk_lists_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "x.txt").write_text("x")
    watcher = Watcher(src, Filters(), lambda rel, kind: None, lambda: None)
    try:
        watcher.open()
    finally:
        watcher.close()
    assert watcher.changed == [] and watcher.file_count == 1


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
