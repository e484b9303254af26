"""Two processes never write one replica at once: the per-target flock (backup/target_lock.py)
around every rsync that writes it, here with real rsync in two separate processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from backup.target_lock import lock_path, target_lock
from backup.transport import parse_target

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
