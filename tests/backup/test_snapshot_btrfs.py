"""The keeper's snapshots on btrfs (issue 11): copies are reflinks (shared extents, own
inode) and an in-place write to the landing file still never reaches the snapshot.

Needs root, mkfs.btrfs and a loop mount; skipped otherwise (the hardlink path on the test
machine's own filesystem is tested in test_snapshot.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import backup.snapshot as snapshot_mod
from backup.snapshot import SnapshotStore


@pytest.fixture
def btrfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or not shutil.which("mkfs.btrfs") or not shutil.which("filefrag"):
        pytest.skip("needs root, mkfs.btrfs and filefrag")
    img, mnt = tmp_path / "img", tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["truncate", "-s", "200M", str(img)], check=True)
    subprocess.run(["mkfs.btrfs", "-q", str(img)], check=True, capture_output=True)
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(img), str(mnt)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount btrfs here: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_copies_are_reflinks_and_in_place_writes_do_not_reach_them(btrfs: Path) -> None:
    landing = btrfs / "landing"
    landing.mkdir()
    original = os.urandom(256 * 1024)
    (landing / "doc.bin").write_bytes(original)
    os.sync()
    store = SnapshotStore(btrfs / "snapshots" / "room")
    first = store.take(landing, now=time.time())
    copy = first.snapshot.path / "doc.bin"
    assert first.copied == 1 and first.bytes_copied == len(original)
    assert os.stat(copy).st_ino != os.stat(landing / "doc.bin").st_ino
    frag = subprocess.run(
        ["filefrag", "-v", str(copy)], capture_output=True, text=True, check=True
    ).stdout
    assert "shared" in frag, frag  # FICLONE worked: extents shared, not bytes copied
    with open(landing / "doc.bin", "r+b") as f:  # the writer's own inode, in place
        f.write(b"\0" * 4096)
    time.sleep(snapshot_mod.RACY_NS / 1e9 + 0.05)
    second = store.take(landing, now=time.time())
    assert copy.read_bytes() == original
    assert (second.snapshot.path / "doc.bin").read_bytes()[:4096] == b"\0" * 4096
    assert second.changed == 1
