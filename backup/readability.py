"""Whether this process may read a source path: what rsync's sender needs (read a file,
list and search a directory). Used for paths set aside as unreadable (are they readable
now?) and by check-config's walk as the service user (the first path that is not)."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable

# rsync's sender says "[sender] send_files failed to open ...", "opendir ... failed" or
# "link_stat ... failed" with this errno text; the watcher says "cannot watch: Permission
# denied" for a directory it may not read.
_DENIED = "Permission denied"
_DENIED_RSYNC = "Permission denied (13)"
# The reason for a directory found unlistable or unsearchable by our own walk.
DIR_DENIED = "cannot read: Permission denied (this account may not list or enter it)"


def unreadable_reason(reason: str) -> bool:
    """True when a set-aside reason says this account may not read the source path (not a
    full or refusing replica: those are the receiver's lines, never "[sender]")."""
    if reason.startswith(("cannot watch: ", "cannot read: ")) and _DENIED in reason:
        return True
    return any("[sender]" in line and _DENIED_RSYNC in line for line in reason.split(" | "))


def readable_now(path: str) -> bool:
    """True when this process can read `path` the way rsync's sender does (a vanished path
    counts as readable: trying it again ships its deletion). Opening, not `os.access`:
    access() judges by the real uid and ignores capabilities, the open is the truth."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return exc.errno in (errno.ENOENT, errno.ENOTDIR)
    if stat.S_ISLNK(st.st_mode):
        return True  # rsync copies the link itself; lstat working is all it needs
    if stat.S_ISDIR(st.st_mode):
        return _lists(path)
    if not stat.S_ISREG(st.st_mode):
        return True  # devices, FIFOs, sockets: rsync -a recreates them, never reads them
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW)
    except OSError as exc:
        return exc.errno not in (errno.EACCES, errno.EPERM)
    os.close(fd)
    return True


def _lists(path: str) -> bool:
    """A directory rsync can send: listed (read) and its entries reachable (search)."""
    try:
        with os.scandir(path) as it:
            first = next(it, None)
    except OSError as exc:
        return exc.errno not in (errno.EACCES, errno.EPERM)
    if first is None:
        return os.access(path, os.X_OK)  # nothing to stat: the mode bit is all we have
    try:
        os.lstat(first.path)
    except OSError as exc:
        return exc.errno not in (errno.EACCES, errno.EPERM)
    return True


def first_unreadable(
    root: str, excluded: Callable[[str, bool], bool], *, deadline: float | None = None,
) -> tuple[str | None, int, bool]:
    """Walks `root` (depth first, in name order) for the first path (relative to root, "."
    for root itself) this process may not read. Returns it (None when there is none), how
    many paths were looked at, and whether the walk was complete: it stops at the first
    problem, or at `deadline` (time.monotonic()). `excluded(rel, is_dir)`: paths
    replication leaves out (not walked, not judged)."""
    seen = 0
    stack = ["."]
    while stack:
        rel = stack.pop()
        full = root if rel == "." else os.path.join(root, rel)
        seen += 1
        if not _lists(full):
            return rel, seen, True
        try:
            with os.scandir(full) as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)
        except OSError:
            continue  # vanished meanwhile
        for entry in entries:
            child = entry.name if rel == "." else f"{rel}/{entry.name}"
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                return child, seen, True  # cannot even stat it: no search on its directory
            if excluded(child, is_dir):
                continue
            if is_dir:
                stack.append(child)
                continue
            seen += 1
            if not readable_now(entry.path):
                return child, seen, True
            if deadline is not None and seen % 1024 == 0 and time.monotonic() > deadline:
                return None, seen, False
    return None, seen, True
