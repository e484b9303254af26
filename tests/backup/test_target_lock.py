"""Two processes never write one replica at once: the per-target flock (backup/target_lock.py)
around every rsync that writes it, here with real rsync in two separate processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from backup.target import VERSIONS_DIR
from backup.target_lock import lock_path, target_lock
from backup.transport import parse_target
from backup.versions import prune_versions, stamp
from sentinel.config.replication import KeeperLinkConfig
from sentinel.room_heartbeat import RoomHeartbeat
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, populate_docs, running
from tests.fixtures.remote import SshServer

# Another sentinel process (the daemon) in the middle of a transfer: it holds the lock until
# told to go on (so the test does not depend on how fast the second process starts), and
# only then does its rsync write the (older) bytes it is shipping.
HOLDER = textwrap.dedent(
    """
    import fcntl, os, subprocess, sys, time
    lock, stale, target, ready, go = sys.argv[1:]
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    open(ready, "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
    subprocess.run(["rsync", "-a", stale + "/", target + "/"], check=True)
    os.close(fd)
    """
)
WAITING = "busy: another sentinel process is writing it, waiting"


def test_a_by_hand_sync_waits_for_the_other_writer_of_its_replica(tmp_path: Path) -> None:
    src, stale, dst, state = (tmp_path / n for n in ("src", "stale", "dst", "state"))
    for d, text in ((src, "fresh!"), (stale, "stale!")):
        d.mkdir()
        (d / "doc.txt").write_text(text)
    state.mkdir()
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{state}"\n'
        f'[[replication]]\nname = "docs"\nsource = "{src}"\ntarget = "{dst}"\n'
    )
    ready, go, out_file = tmp_path / "ready", tmp_path / "go", tmp_path / "out"
    lock = lock_path(state, parse_target(str(dst)).url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(stale), str(dst), str(ready), str(go)]
    )
    sync: subprocess.Popen[str] | None = None
    err: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert time.monotonic() < deadline and holder.poll() is None, "holder did not start"
            time.sleep(0.02)
        sync = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "-c", str(cfg), "backup", "sync", "--full"],
            stdout=out_file.open("w"),
            stderr=subprocess.PIPE,
            text=True,
        )
        assert sync.stderr is not None
        said = threading.Event()

        def read_stderr(stream: object = sync.stderr) -> None:
            for line in stream:  # type: ignore[attr-defined]
                err.append(line)
                if WAITING in line:
                    said.set()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        # the second writer must say it waits, and must not finish, while the lock is held
        assert said.wait(60), f"the sync never waited: {''.join(err)}"
        assert sync.poll() is None
        go.touch()
        sync.wait(timeout=60)
        reader.join(10)
    finally:
        go.touch()
        holder.wait(timeout=60)
        if sync is not None and sync.poll() is None:
            sync.kill()
    assert holder.returncode == 0
    assert sync.returncode == 0, "".join(err)
    assert "docs: full reconcile done" in out_file.read_text()
    # the sync ran after the other transfer: the replica holds the source's bytes
    assert (dst / "doc.txt").read_text() == "fresh!"


async def test_a_lock_file_that_cannot_be_made_does_not_stop_replication(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")  # as good as a read-only disk
    ran = False
    async with target_lock(blocker, "/mnt/replica"):
        ran = True
    assert ran
    assert "writing /mnt/replica without the lock" in caplog.text


async def test_one_target_waits_another_does_not(tmp_path: Path) -> None:
    order: list[str] = []

    async def write(target: str, name: str, hold: float) -> None:
        async with target_lock(tmp_path, target):
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    first = asyncio.create_task(write("/mnt/a", "first", 0.3))
    await asyncio.sleep(0.05)
    # flock conflicts between two open file descriptions, even in one process
    await asyncio.gather(write("/mnt/a", "second", 0), write("/mnt/b", "other", 0), first)
    assert order.index("other out") < order.index("first out") < order.index("second in")


def test_the_lock_file_is_private_and_never_a_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def take(target: str) -> None:
        async with target_lock(tmp_path, target):
            pass

    asyncio.run(take("/mnt/new"))
    # readable by the state directory's group, a `sentinel status` user could flock it
    assert stat.S_IMODE(lock_path(tmp_path, "/mnt/new").stat().st_mode) == 0o600
    older = lock_path(tmp_path, "/mnt/older")
    older.touch(mode=0o644)
    older.chmod(0o644)  # as an older sentinel left it
    asyncio.run(take("/mnt/older"))
    assert stat.S_IMODE(older.stat().st_mode) == 0o600
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not a lock")
    elsewhere.chmod(0o644)
    lock_path(tmp_path, "/mnt/linked").symlink_to(elsewhere)
    asyncio.run(take("/mnt/linked"))
    assert "writing /mnt/linked without the lock" in caplog.text
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o644


async def test_the_wait_names_the_process_holding_the_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "backup.target_lock")
    async with target_lock(tmp_path, "/mnt/a"):
        second = asyncio.create_task(_enter(tmp_path, "/mnt/a"))
        await asyncio.sleep(0.3)
        assert not second.done()
    await asyncio.wait_for(second, 10)
    assert f"(pid {os.getpid()} took the lock)" in caplog.text


async def _enter(directory: Path, target: str) -> None:
    async with target_lock(directory, target):
        pass


async def test_pruning_versions_waits_for_the_other_writer(tmp_path: Path) -> None:
    replica, state, runtime = tmp_path / "replica", tmp_path / "state", tmp_path / "run"
    old = stamp(time.time() - 90 * 86400)
    (replica / VERSIONS_DIR / old).mkdir(parents=True)
    (replica / VERSIONS_DIR / old / "doc.hwp").write_text("as it was")
    runtime.mkdir()
    target = parse_target(str(replica))
    async with target_lock(state, target.url):
        prune = asyncio.create_task(
            prune_versions(target, runtime, older_than=time.time(), lock_dir=state)
        )
        await asyncio.sleep(1.0)
        # its --delete must not run while another process writes the replica
        assert not prune.done()
        assert (replica / VERSIONS_DIR / old).exists()
    assert await asyncio.wait_for(prune, 30) == [old]
    assert not (replica / VERSIONS_DIR / old).exists()


async def test_the_keeper_heartbeat_does_not_wait_for_a_long_transfer(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """The heartbeat's one file is excluded from every pass, so it does not take the
    target's lock: behind an hours-long full pass the keeper would page the room silent."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    populate_docs(src)
    spec = make_spec(src, parse_target(str(dst)), runtime, lock_dir=tmp_path / "state")
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        keeper = KeeperLinkConfig(receipt=str(tmp_path / "receipt.json"), heartbeat=1.0)
        room = RoomHeartbeat(spec, keeper, "main-office", rep, bstore.db)
        room._dir.mkdir(parents=True, exist_ok=True)
        async with target_lock(tmp_path / "state", spec.target.url):
            assert await asyncio.wait_for(room.beat(), 15)


# A sentinel process in the middle of a slow transfer, through the replicator's own path
# (transfer._write_target), killed -9 by the test once its rsync runs.
SLOW_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from backup.spec import ReplicationSpec
    from backup.transfer import _write_target
    from backup.transport import parse_target
    src, dst, run, state = sys.argv[1:]
    spec = ReplicationSpec(
        name="docs", source=Path(src), target=parse_target(dst), runtime_dir=Path(run),
        lock_dir=Path(state),
    )
    asyncio.run(_write_target(spec, ["-a", "--bwlimit=1000", src + "/", dst + "/"]))
    """
)


def _running(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in ("Z", "X")  # an orphan nobody reaped yet has exited


def test_a_killed_writers_rsync_keeps_the_lock_until_it_exits(tmp_path: Path) -> None:
    src, dst, run, state = (tmp_path / n for n in ("src", "dst", "run", "state"))
    for d in (src, dst, run):
        d.mkdir()
    body = os.urandom(4 * 1024 * 1024)
    (src / "big.bin").write_bytes(body)  # ~4 s at --bwlimit=1000
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(src), str(dst), str(run), str(state)]
    )
    children = Path(f"/proc/{writer.pid}/task/{writer.pid}/children")
    rsync_pid = 0
    try:
        deadline = time.monotonic() + 30
        while not (pids := children.read_text().split()):
            assert time.monotonic() < deadline and writer.poll() is None, "no rsync started"
            time.sleep(0.02)
        rsync_pid = int(pids[0])
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        assert _running(rsync_pid), "rsync finished before the test could kill its parent"

        async def next_writer() -> bytes | None:
            async with asyncio.timeout(60), target_lock(state, parse_target(str(dst)).url):
                shipped = dst / "big.bin"
                return shipped.read_bytes() if shipped.exists() else None

        # the orphaned rsync still writing would interleave with this writer: the lock
        # comes free only once its file is whole under its name. (Not "rsync no longer
        # runs": its files close a moment before /proc calls it a zombie.)
        assert asyncio.run(next_writer()) == body
    finally:
        if writer.poll() is None:
            writer.kill()
        if rsync_pid and _running(rsync_pid):
            os.kill(rsync_pid, signal.SIGKILL)


async def test_an_ssh_control_master_does_not_keep_the_lock(
    tmp_path: Path, bstore: Store, runtime: Path, sshd: SshServer
) -> None:
    """The rsync inherits the lock; the ssh it starts closes what it inherited, or the
    ControlPersist master left behind would hold every target's lock for ever."""
    src = tmp_path / "src"
    src.mkdir()
    populate_docs(src)
    target = parse_target(
        sshd.address(),
        ssh_port=sshd.port,
        identity_file=sshd.identity,
        known_hosts=sshd.known_hosts,
    )
    spec = make_spec(src, target, runtime, lock_dir=tmp_path / "state")
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, sshd.root_dir / "replica")
        # the next master is started by a batch's rsync, under the lock
        stop = [*target.ssh_command(runtime), "-O", "exit", "root@127.0.0.1"]
        proc = await asyncio.create_subprocess_exec(*stop, stderr=asyncio.subprocess.DEVNULL)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        (src / "docs" / "new.hwp").write_bytes(b"shipped after the master went")
        await caught_up(rep, src, sshd.root_dir / "replica")
        assert [p for p in runtime.iterdir() if p.name.startswith("cm-")], "no master"
        async with asyncio.timeout(5), target_lock(tmp_path / "state", target.url):
            pass
