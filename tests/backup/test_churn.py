"""Churn runs: the replica ends byte-for-byte equal to the source, also after kill -9 of the
replicating process, a target outage and an inotify queue overflow."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.churn import churn
from tests.backup.helpers import caught_up, make_spec, running, tree_diff
from tests.fixtures.poll import until
from tests.fixtures.remote import RsyncDaemon

ROOT = Path(__file__).resolve().parents[2]


async def test_churn_local_replica_equals_source(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    churn(src, 0.5, seed=7)  # some content before the start: the first reconcile ships it
    async with running(make_spec(src, parse_target(str(dst)), runtime), bstore) as rep:
        ops = await asyncio.to_thread(churn, src, 8.0, 11)
        assert ops > 100
        await caught_up(rep, src, dst, 60)
        assert rep.health()["overflows"] == 0
    assert not tree_diff(src, dst)


def _pending(state: Path) -> int:
    conn = sqlite3.connect(state / "sentinel.db", timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM backup_journal").fetchone()[0])
    except sqlite3.OperationalError:
        return -1
    finally:
        conn.close()


def _start_runner(state: Path, src: Path, dst: Path, runtime: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backup.runner", str(state), str(src), str(dst), str(runtime)],
        cwd=ROOT,
    )


async def test_kill_9_mid_churn_then_restart_catches_up(tmp_path: Path, runtime: Path) -> None:
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    src.mkdir()
    proc = _start_runner(state, src, dst, runtime)
    try:
        await until(lambda: dst.exists() and _pending(state) == 0, 30, "first reconcile")
        stop = [False]
        work = asyncio.create_task(asyncio.to_thread(churn, src, 6.0, 5, stop))
        await asyncio.sleep(3)
        os.kill(proc.pid, signal.SIGKILL)  # mid-churn: a transfer is running or about to
        proc.wait()
        await work  # the rest of the churn happens while nothing watches
        proc = _start_runner(state, src, dst, runtime)
        await until(
            lambda: _pending(state) == 0 and not tree_diff(src, dst), 60, "caught up after restart"
        )
    finally:
        proc.kill()
        proc.wait()
    assert not tree_diff(src, dst)


async def test_rsync_daemon_outage_then_catch_up(
    tmp_path: Path, bstore: Store, runtime: Path, rsyncd: RsyncDaemon
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    target = parse_target(rsyncd.url(), password_file=rsyncd.password_file)
    replica = rsyncd.module_dir / "replica"
    async with running(make_spec(src, target, runtime), bstore) as rep:
        await caught_up(rep, src, replica)
        rsyncd.stop()
        await asyncio.to_thread(churn, src, 2.0, 3)
        await until(lambda: rep.health()["consecutive_failures"] >= 2, 20, "failures")
        assert rep.health()["pending"] > 0
        assert rep.health()["rpo"] > 0
        await asyncio.to_thread(churn, src, 2.0, 4)  # the target stays down a few seconds
        rsyncd.start()
        await caught_up(rep, src, replica, 60)
        assert rep.health()["consecutive_failures"] == 0
        assert rep.health()["rpo"] == 0


async def test_queue_overflow_triggers_reconcile_and_nothing_is_lost(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    knob = Path("/proc/sys/fs/inotify/max_queued_events")
    old = knob.read_text().strip()
    spec = make_spec(src, parse_target(str(dst)), runtime)
    knob.write_text("16")  # only inotify instances created now get the small queue
    try:
        ctx = running(spec, bstore)
        rep = await ctx.__aenter__()
    finally:
        knob.write_text(old)
    try:
        await caught_up(rep, src, dst)
        # the loop is blocked while these are written, so the 16-event queue overflows
        for i in range(300):
            (src / f"burst{i}.txt").write_text(str(i))
        await until(lambda: rep.health()["overflows"] >= 1, 10, "an overflow")
        await caught_up(rep, src, dst, 60)
    finally:
        await ctx.__aexit__(None, None, None)
    assert not tree_diff(src, dst)
