"""Two processes never write one replica at once: the per-target flock (backup/target_lock.py)
around every rsync that writes it, here with real rsync in two separate processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from backup.target import parse_target
from backup.target_lock import lock_path

# Another sentinel process (the daemon) in the middle of a transfer: it holds the lock,
# and only after a while does its rsync write the (older) bytes it is shipping.
HOLDER = textwrap.dedent(
    """
    import fcntl, os, subprocess, sys, time
    lock, stale, target, ready = sys.argv[1:]
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    open(ready, "w").close()
    time.sleep(1.5)
    subprocess.run(["rsync", "-a", stale + "/", target + "/"], check=True)
    os.close(fd)
    """
)


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
    ready = tmp_path / "ready"
    lock = lock_path(state, parse_target(str(dst)).url)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock), str(stale), str(dst), str(ready)]
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert time.monotonic() < deadline and holder.poll() is None, "holder did not start"
            time.sleep(0.02)
        began = time.monotonic()
        sync = subprocess.run(
            [sys.executable, "-m", "sentinel", "-c", str(cfg), "backup", "sync", "--full"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - began
    finally:
        holder.wait(timeout=30)
    assert holder.returncode == 0
    assert sync.returncode == 0, sync.stderr
    assert "busy: another sentinel process is writing it, waiting" in sync.stderr
    assert took > 1.0  # it waited for the holder's transfer
    # the sync ran after the other transfer: the replica holds the source's bytes
    assert (dst / "doc.txt").read_text() == "fresh!"
