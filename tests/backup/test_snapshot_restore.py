"""Restore from a keeper snapshot (issue 11): real rsync, never deletes, refuses a non-empty
destination unless asked, one file or dir with `subpath`."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from backup.snapshot import Snapshot, SnapshotError, SnapshotStore, restore


@pytest.fixture
def snap(tmp_path: Path) -> Snapshot:
    land = tmp_path / "landing"
    (land / "docs" / "sub").mkdir(parents=True)
    (land / "docs" / "a.txt").write_bytes(b"alpha")
    (land / "docs" / "sub" / "b.txt").write_bytes(b"bravo")
    os.chmod(land / "docs" / "a.txt", 0o640)
    os.utime(land / "docs" / "a.txt", (1_600_000_000, 1_600_000_000))
    (land / "-rf").write_bytes(b"dash")
    with open(os.fsencode(land) + b"/bad\n\xff", "wb") as f:
        f.write(b"hostile")
    os.symlink("/etc", land / "etc-link")
    os.symlink("sub/b.txt", land / "docs" / "rel-link")
    return SnapshotStore(tmp_path / "snaps" / "r").take(land, now=time.time()).snapshot


def test_restore_everything_into_new_dir(snap: Snapshot, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "new"
    assert restore(snap, dest) == 4
    assert (dest / "docs" / "a.txt").read_bytes() == b"alpha"
    assert (dest / "docs" / "sub" / "b.txt").read_bytes() == b"bravo"
    assert (dest / "-rf").read_bytes() == b"dash"
    with open(os.fsencode(dest) + b"/bad\n\xff", "rb") as f:
        assert f.read() == b"hostile"
    st = os.stat(dest / "docs" / "a.txt")
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == 1_600_000_000
    assert os.readlink(dest / "docs" / "rel-link") == "sub/b.txt"
    assert not os.path.lexists(dest / "etc-link")  # --safe-links: points out of the tree
    # the restored files are new inodes, not the snapshot's
    assert os.stat(dest / "docs" / "a.txt").st_ino != os.stat(snap.path / "docs" / "a.txt").st_ino


def test_refuses_non_empty_dest(snap: Snapshot, tmp_path: Path) -> None:
    dest = tmp_path / "live"
    dest.mkdir()
    (dest / "newer.txt").write_bytes(b"today's work")
    with pytest.raises(SnapshotError, match="not empty"):
        restore(snap, dest)
    assert sorted(os.listdir(dest)) == ["newer.txt"]
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(SnapshotError, match="not a directory"):
        restore(snap, tmp_path / "file")


def test_into_existing_never_deletes(snap: Snapshot, tmp_path: Path) -> None:
    dest = tmp_path / "live"
    (dest / "docs").mkdir(parents=True)
    (dest / "newer.txt").write_bytes(b"today's work")
    (dest / "docs" / "a.txt").write_bytes(b"damaged")
    (dest / "docs" / "other.txt").write_bytes(b"keep me")
    assert restore(snap, dest, into_existing=True) == 4
    assert (dest / "newer.txt").read_bytes() == b"today's work"
    assert (dest / "docs" / "other.txt").read_bytes() == b"keep me"
    assert (dest / "docs" / "a.txt").read_bytes() == b"alpha"


def test_subpath_file_and_dir(snap: Snapshot, tmp_path: Path) -> None:
    one = tmp_path / "one"
    assert restore(snap, one, subpath="docs/a.txt") == 1
    assert sorted(p.relative_to(one).as_posix() for p in one.rglob("*")) == ["docs", "docs/a.txt"]
    dirs = tmp_path / "dirs"
    assert restore(snap, dirs, subpath="docs/sub/") == 1
    assert (dirs / "docs" / "sub" / "b.txt").read_bytes() == b"bravo"
    assert not (dirs / "docs" / "a.txt").exists()


def test_subpath_cannot_leave_the_snapshot(snap: Snapshot, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for bad in ("../..", "/etc/passwd", "docs/../../x", "etc-link/passwd", "nope", "/"):
        with pytest.raises(SnapshotError):
            restore(snap, out, subpath=bad)
    assert not out.exists()
