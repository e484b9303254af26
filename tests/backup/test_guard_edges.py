"""Edges of the ransomware guard: a trip while a batch waited for the transfer lock, a
deleted directory still pending across a restart, and dry runs that fail on one path (exit
23) still measure and still let the full pass's fallback run."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backup.journal import Journal
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import DIR_GUARD, big_dir, caught_up, make_spec, running, tree
from tests.fixtures.poll import until

NOBODY = 65534


async def test_a_full_pass_trip_stops_the_batch_that_waited_for_it(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a.txt").write_text("old\n")
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        # replica files the full pass would delete: its dry run trips the guard
        big_dir(dst / "junk")
        lock = rep._transfer
        async with lock:  # a transfer is running: both the pass and the batch wait for it
            full = asyncio.create_task(rep.reconcile("test"))
            await until(lambda: len(lock._waiters or ()) == 1, 10, "full pass waiting")
            (src / "a.txt").write_text("new\n")
            await until(lambda: len(lock._waiters or ()) == 2, 10, "batch waiting")
            rounds = rep.ship_rounds
        assert await full is None and rep.health()["guard_tripped"]
        await until(lambda: rep.ship_rounds > rounds, 10, "the shipper looked")
        assert (dst / "a.txt").read_text() == "old\n"
        assert rep.journal.pending == 1


async def test_a_directory_deleted_before_a_restart_is_still_measured(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    big_dir(src)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
    spec = make_spec(
        src, parse_target(str(dst)), runtime, guard=DIR_GUARD, reconcile_at_start=False
    )
    # recorded, then the daemon stopped before shipping it
    shutil.rmtree(src / "big")
    await Journal("docs", bstore.db, bstore.write).record(["big"])
    before = tree(dst)
    async with running(spec, bstore) as rep:
        await until(lambda: rep.health()["guard_tripped"], 20, "guard trip")
        assert "a directory deleted or moved away" in rep.health()["guard_reason"]
        assert tree(dst) == before
        assert len(list((dst / "big").iterdir())) == 120


# -- rsync as the daemon's unprivileged user: a replica directory it may not read ---------


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory nobody can reach."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as another user")
    d = Path(tempfile.mkdtemp(prefix="sntedge"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def rsync_as_nobody(base: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Calling it puts an `rsync` on PATH that runs the real rsync as nobody (the daemon
    runs as User=sentinel; root would read anything). The first sync runs as root: markers
    are written from root's 0700 temp directories."""
    (base / "bin").mkdir()
    wrapper = base / "bin" / "rsync"
    wrapper.write_text(
        f"#!/bin/sh\nexec setpriv --reuid={NOBODY} --regid={NOBODY} "
        f'--clear-groups {shutil.which("rsync")} "$@"\n'
    )
    wrapper.chmod(0o755)
    return lambda: monkeypatch.setenv("PATH", f"{base / 'bin'}:{os.environ['PATH']}")


def _give_to_nobody(*roots: Path) -> None:
    for root in roots:
        os.chown(root, NOBODY, NOBODY)
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                os.chown(os.path.join(dirpath, name), NOBODY, NOBODY, follow_symlinks=False)


def _lock(directory: Path) -> None:
    """Another user's private directory on the replica: nobody's rsync cannot open it."""
    os.chown(directory, 0, 0)
    directory.chmod(0o700)


async def test_a_measured_batch_with_one_refused_path_is_still_measured(
    base: Path, rsync_as_nobody: Callable[[], None], bstore: Store, runtime: Path
) -> None:
    src, dst = base / "src", base / "dst"
    big_dir(src)
    (src / "locked").mkdir()
    (src / "locked" / "x.txt").write_text("x\n")
    dst.mkdir()
    _give_to_nobody(src, dst)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        rsync_as_nobody()
        _lock(dst / "locked")
        before = tree(dst)
        # one batch: a directory moved away (one event for 120 replica files), and a path
        # the dry run fails on (exit 23)
        (src / "big").rename(base / "away")
        (src / "locked" / "x.txt").write_text("x again\n")
        await until(lambda: rep.health()["guard_tripped"], 20, "guard trip")
        assert "a directory deleted or moved away" in rep.health()["guard_reason"]
        assert tree(dst) == before
        assert len(list((dst / "big").iterdir())) == 120


async def test_a_full_pass_that_fails_on_one_path_still_ships_offline_changes(
    base: Path, rsync_as_nobody: Callable[[], None], bstore: Store, runtime: Path
) -> None:
    src, dst = base / "src", base / "dst"
    (src / "locked").mkdir(parents=True)
    (src / "locked" / "x.txt").write_text("x\n")
    (src / "a.txt").write_text("a\n")
    dst.mkdir()
    _give_to_nobody(src, dst)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
    # while sentinel is stopped: a document written, a replica directory locked away
    rsync_as_nobody()
    (src / "offline.txt").write_text("written offline\n")
    os.chown(src / "offline.txt", NOBODY, NOBODY)
    _lock(dst / "locked")
    async with running(spec, bstore) as rep:
        await until(lambda: (dst / "offline.txt").exists(), 20, "the offline change")
        assert (dst / "offline.txt").read_text() == "written offline\n"
        assert not rep.health()["guard_tripped"]
