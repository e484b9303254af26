"""backup/inotify.py, the libc bindings the watcher reads through."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from backup import inotify


def test_events_carry_the_raw_name_the_mask_and_the_watch(tmp_path: Path) -> None:
    ino = inotify.Inotify()
    try:
        with pytest.raises(BlockingIOError):  # nothing queued: never a blocking read
            ino.read()
        wd = ino.add_watch(str(tmp_path), inotify.CREATE | inotify.CLOSE_WRITE)
        mask = inotify.CREATE | inotify.CLOSE_WRITE
        assert ino.add_watch(str(tmp_path), mask) == wd  # the same watch
        odd = os.fsencode("문서") + b"\xff.hwp"  # not UTF-8: kept byte for byte
        with open(os.path.join(os.fsencode(tmp_path), odd), "wb") as f:
            f.write(b"x")
        (tmp_path / "sub").mkdir()
        events = ino.read()
        names = [(w, mask, name) for w, mask, name in events]
        assert (wd, inotify.CREATE, os.fsdecode(odd)) in names
        assert (wd, inotify.CLOSE_WRITE, os.fsdecode(odd)) in names
        assert (wd, inotify.CREATE | inotify.ISDIR, "sub") in names
        assert os.fsencode(os.fsdecode(odd)) == odd
        ino.rm_watch(wd)
        assert [(w, m & inotify.IGNORED, n) for w, m, n in ino.read()] == [
            (wd, inotify.IGNORED, None)
        ]
    finally:
        ino.close()
    with pytest.raises(ValueError):
        ino.fd  # noqa: B018 - closed


def test_a_refused_watch_says_why(tmp_path: Path) -> None:
    ino = inotify.Inotify()
    try:
        with pytest.raises(OSError) as caught:
            ino.add_watch(str(tmp_path / "missing"), inotify.CREATE)
        assert caught.value.errno == errno.ENOENT
        assert caught.value.filename == str(tmp_path / "missing")
        (tmp_path / "file").write_text("x")
        with pytest.raises(NotADirectoryError):
            ino.add_watch(str(tmp_path / "file"), inotify.CREATE | inotify.ONLYDIR)
    finally:
        ino.close()
