"""Attacks on the first full pass beside the watch walk (issue 18): a change made after the
pass read a directory and before the walk watched it must still reach the replica, and the
ransomware guard must still see files overwritten in that window.

The trees here are made well before the pass begins (`CTIME_SLACK` is taken away and the
kernel's ctime clock is stepped past): inside the slack every entry counts as changed,
which hides what the walk would miss on a tree that is not brand new."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from backup import replicator as replicator_module
from backup.filters import Filters
from backup.replicator import Replicator
from backup.transport import parse_target
from backup.watcher import Watcher
from sentinel.store import Store
from tests.backup.helpers import DIR_GUARD, caught_up, make_spec, running, tree
from tests.fixtures.poll import until

NOBODY = 65534


def _tick() -> None:
    """ctime comes from the kernel's coarse clock: step past one of its ticks."""
    time.sleep(0.05)


def _walk(src: Path, since: float) -> list[tuple[str, bool]]:
    watcher = Watcher(src, Filters(), lambda rel, kind: None, lambda: None)
    try:
        watcher.open(changed_since=since)
    finally:
        watcher.close()
    return watcher.changed


def _hold_watch(monkeypatch: pytest.MonkeyPatch, at: str, act: object) -> None:
    """Runs `act()` once, just before the walk watches directory `at`."""
    original = Watcher._watch
    done: list[str] = []

    def held(self: Watcher, rel: str, full: str) -> bool:
        if rel == at and not done:
            done.append(rel)
            act()  # type: ignore[operator]
        return original(self, rel, full)

    monkeypatch.setattr(Watcher, "_watch", held)


def test_an_entry_removed_after_the_parent_was_read_lists_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`late` was listed by the root's scan before the deletion; its own watch comes later
    (a depth-first walk reaches the root's first child last). No event, no ctime of a file:
    only the directory's ctime, read once its watch exists, says an entry went."""
    src = tmp_path / "src"
    (src / "late").mkdir(parents=True)
    (src / "late" / "gone.txt").write_text("deleted after the pass read it\n")
    _tick()
    since = time.time()
    _tick()
    _hold_watch(monkeypatch, "late", lambda: (src / "late" / "gone.txt").unlink())
    assert ("late", True) in _walk(src, since)


def test_an_entry_removed_from_the_root_before_its_watch_lists_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "gone.txt").write_text("deleted after the pass read the root\n")
    _tick()
    since = time.time()
    _tick()
    _hold_watch(monkeypatch, "", lambda: (src / "gone.txt").unlink())
    assert (".", True) in _walk(src, since)


def test_a_directory_moved_in_lists_the_directories_below_it(
    tmp_path: Path,
) -> None:
    """A rename changes the ctime of the moved directory only, not of what is below it; a
    listed directory ships one level deep (`dir/` with -d), so each directory below must be
    listed too or its files never reach the replica."""
    src, away = tmp_path / "src", tmp_path / "away"
    (away / "x" / "sub" / "deeper").mkdir(parents=True)
    (away / "x" / "sub" / "deeper" / "f.txt").write_text("old file, moved in\n")
    src.mkdir()
    _tick()
    since = time.time()
    _tick()
    (away / "x").rename(src / "x")
    changed = _walk(src, since)
    assert ("x", True) in changed
    assert ("x/sub", True) in changed and ("x/sub/deeper", True) in changed


def test_excluded_paths_changed_in_the_window_are_not_listed(tmp_path: Path) -> None:
    """Neither an excluded file nor anything in an excluded directory (not even one below
    a listed directory) is shipped after the pass."""
    src = tmp_path / "src"
    (src / "docs" / "cache" / "deep").mkdir(parents=True)
    src_files = ("docs/keep.txt", "docs/x.tmp", "docs/cache/deep/c.txt")
    for name in src_files:
        (src / name).write_text("old\n")
    _tick()
    since = time.time()
    _tick()
    for name in src_files:
        (src / name).write_text("changed after the pass began\n")
    (src / "docs" / "new.tmp").write_text("new, excluded\n")
    watcher = Watcher(
        src, Filters(exclude=("*.tmp", "docs/cache")), lambda rel, kind: None, lambda: None
    )
    try:
        watcher.open(changed_since=since)
    finally:
        watcher.close()
    assert sorted(watcher.changed) == [("docs", True), ("docs/keep.txt", False)]


async def test_a_directory_moved_while_the_pass_runs_reaches_the_replica_whole(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass copies a/x/sub/f.txt; then, before any watch, `a/x` is moved to `b/x`. The
    walk lists `a` (an entry went: the replica's a/x is deleted) and `b`, `b/x`: the file
    below must arrive at b/x/sub/f.txt, or the replica has it nowhere."""
    monkeypatch.setattr(replicator_module, "CTIME_SLACK", 0.0)
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a" / "x" / "sub").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "a" / "x" / "sub" / "f.txt").write_text("moved with its directory\n")
    _tick()
    copied = dst / "a" / "x" / "sub" / "f.txt"
    seen: list[bool] = []

    def move() -> None:
        deadline = time.monotonic() + 15
        while not copied.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(copied.exists())
        (src / "a" / "x").rename(src / "b" / "x")

    _hold_watch(monkeypatch, "", move)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst, limit=10)
        # handed to the journal: the list is not kept for the daemon's life
        assert rep.watcher is not None and rep.watcher.changed == []
    assert seen == [True]  # the pass ran beside the walk and read `a` before the move
    assert (dst / "b" / "x" / "sub" / "f.txt").read_text() == "moved with its directory\n"


def _first_pass_done(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    done = threading.Event()
    original = Replicator._first_pass

    async def first_pass(self: Replicator, reason: str) -> None:
        try:
            await original(self, reason)
        finally:
            done.set()

    monkeypatch.setattr(Replicator, "_first_pass", first_pass)
    return done


async def _synced_docs(src: Path, dst: Path, runtime: Path, bstore: Store, n: int) -> None:
    (src / "docs").mkdir(parents=True)
    for i in range(n):
        (src / "docs" / f"doc{i:03}.txt").write_text(f"document {i}\n")
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
    _tick()


async def test_files_overwritten_before_their_watch_trip_the_guard(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ransomware running at start: 120 replicated documents are overwritten after the
    first pass passed them and before the walk watched them. Before the pass ran beside the
    walk, the pass's dry run measured them; now the walk finds them: the guard must still
    trip, and the replica keep the documents."""
    monkeypatch.setattr(replicator_module, "CTIME_SLACK", 0.0)
    src, dst = tmp_path / "src", tmp_path / "dst"
    await _synced_docs(src, dst, runtime, bstore, 120)
    before = tree(dst)
    done = _first_pass_done(monkeypatch)

    def encrypt() -> None:
        assert done.wait(15), "the first pass did not end while the walk waited"
        for f in sorted((src / "docs").iterdir()):
            f.write_bytes(b"\x8f encrypted " + f.read_bytes()[::-1])

    _hold_watch(monkeypatch, "docs", encrypt)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await until(
            lambda: rep.health()["guard_tripped"] or tree(dst) != before,
            15,
            "guard trip or a shipped change",
        )
        assert rep.health()["guard_tripped"]
        assert tree(dst) == before


async def test_files_added_before_their_watch_ship_without_a_trip(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 new files (archive logs put in place at start) in the same window are no damage:
    they ship, and the guard stays quiet."""
    monkeypatch.setattr(replicator_module, "CTIME_SLACK", 0.0)
    src, dst = tmp_path / "src", tmp_path / "dst"
    await _synced_docs(src, dst, runtime, bstore, 10)
    done = _first_pass_done(monkeypatch)

    def add() -> None:
        assert done.wait(15), "the first pass did not end while the walk waited"
        for i in range(60):
            (src / "docs" / f"log{i:03}.txt").write_text(f"log {i}\n")

    _hold_watch(monkeypatch, "docs", add)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst, limit=15)
        assert not rep.health()["guard_tripped"]
    assert len(os.listdir(dst / "docs")) == 70


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv to act as another user",
)
def test_a_directory_refused_while_the_first_pass_runs_is_retried_not_journaled_whole() -> None:
    """The walk sets aside a directory this account may not read, but the first pass beside
    it had started without skipping it and fails on it (rsync exit 23). Its retry skips it;
    the whole tree must not go through the journal path by path (a second pass's worth of
    batches, on a tree where the walk alone took seconds)."""
    base = Path(tempfile.mkdtemp(prefix="sntref"))  # not tmp_path: root's 0700 directory
    try:
        base.chmod(0o755)
        source, replica, state, runtime = (base / n for n in ("src", "replica", "state", "run"))
        for d in (source, source / "ok", replica, state, runtime):
            d.mkdir()
            os.chown(d, NOBODY, NOBODY)
        for i in range(20):
            (source / "ok" / f"doc{i}.txt").write_text(f"document {i}\n")
            os.chown(source / "ok" / f"doc{i}.txt", NOBODY, NOBODY)
        (source / "private").mkdir(mode=0o700)  # root's: EACCES for the watch and rsync
        (source / "private" / "secret.txt").write_text("not ours\n")
        proc = subprocess.run(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                sys.executable,
                "-m",
                "tests.backup.refused_first_probe",
                *(str(p) for p in (state, source, replica, runtime)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).parents[2],
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        assert report == {"passed": True, "whole_tree_journaled": False}
        assert (replica / "ok" / "doc19.txt").read_text() == "document 19\n"
        assert not (replica / "private" / "secret.txt").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
