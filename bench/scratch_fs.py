"""A fresh filesystem per measurement, so no system pays for the one measured before it.

On this VM `/` is ext4 without a journal: creating inodes freed in the last minutes runs
ext4's `recently_deleted()` scan, and an `rsync -a` of 20k files went from 4 s to 14-17 s
after other trees had been deleted (issue 18 analysis, section 3). A benchmark that deletes a
100k-file tree after each system therefore slows whatever runs next. Each measurement here
gets its own filesystem:

- `loop` (default): a sparse image on /tmp, `mkfs.ext4 -O ^has_journal` (the same kind of
  filesystem as `/`, so ext4's allocation costs stay in the numbers) with its inode tables
  written at mkfs time (no lazy-init thread writing during the run), mounted through a loop
  device with direct I/O (one page cache, not two). Thrown away whole: one big file deleted,
  no inode churn.
- `tmpfs`: no disk at all; the numbers then leave out what the disk costs.
- `none`: a directory on `/` as before (to compare with the old bench); not controlled.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KINDS = ("loop", "tmpfs", "none")


@dataclass
class Scratch:
    path: Path
    kind: str
    device: str | None = None  # /dev/loopN for `loop`

    def written_kb(self) -> int | None:
        """KiB the filesystem has written since mkfs (ext4's own counter), after a sync."""
        if self.device is None:
            return None
        os.sync()
        stat = Path(f"/sys/fs/ext4/{Path(self.device).name}/lifetime_write_kbytes")
        try:
            return int(stat.read_text())
        except (OSError, ValueError):
            return None


def describe(kind: str, size_gb: int) -> str:
    return {
        "loop": f"a fresh {size_gb} GiB ext4 (no journal, like `/`) on a loop device "
        "(direct I/O, image on `/`) per system and measurement",
        "tmpfs": "a fresh tmpfs per system and measurement (no disk cost in the numbers)",
        "none": "directories on `/` (ext4, no journal), not controlled for freed inodes",
    }[kind]


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def scratch(base: Path, name: str, kind: str, size_gb: int) -> Iterator[Scratch]:
    """A new empty filesystem mounted at base/name, gone (with all it holds) afterwards."""
    mnt = base / name
    mnt.mkdir()
    if kind == "none":
        try:
            yield Scratch(mnt, kind)
        finally:
            shutil.rmtree(mnt, ignore_errors=True)
        return
    image = base / f"{name}.img"
    device = None
    try:
        if kind == "tmpfs":
            _run("mount", "-t", "tmpfs", "-o", f"size={size_gb}g,mode=0755", "tmpfs", str(mnt))
        else:
            with open(image, "wb") as f:
                f.truncate(size_gb << 30)
            _run(
                "mkfs.ext4",
                "-q",
                "-F",
                "-O",
                "^has_journal",
                "-E",
                "lazy_itable_init=0,nodiscard",
                str(image),
            )
            device = _run("losetup", "--find", "--show", "--direct-io=on", str(image))
            _run("mount", device, str(mnt))
        yield Scratch(mnt, kind, device)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("umount", "-l", str(mnt))
        if device is not None:
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("losetup", "-d", device)
        image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            mnt.rmdir()
