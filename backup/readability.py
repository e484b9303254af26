"""Whether this process may read a source path: what rsync's sender needs (read a file,
list and search a directory). Used for paths set aside as unreadable (are they readable
now?) and by check-config's walk as the service user (the first path that is not)."""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Iterator

# The watcher says "cannot watch: Permission denied" for a directory it may not read; the
# daemon's own look (readable_now) says "cannot read: ...". Only these reasons, written by
# us with no path in them, mean "unreadable": rsync's text quotes file names, which anyone
# who can write the store chooses (a file named "[sender] ... Permission denied (13)").
_DENIED = "Permission denied"
# The reason for a directory found unlistable or unsearchable by our own walk.
DIR_DENIED = "cannot read: Permission denied (this account may not list or enter it)"
# The reason for a file this account may not open.
FILE_DENIED = "cannot read: Permission denied (this account may not open it)"

# rsync's sender-side lines for a source path it may not read, checked against rsync 3.2.7
# and 3.5.0 (3.1 wrote them without "[sender] "): the prefix before the quoted path
# decides, never a substring of the line (the quoted path may hold anything, quotes and
# "[sender]" included).
_SENDER_DENIED = re.compile(
    r'rsync: (?:\[sender\] )?(?:send_files failed to open "(?P<open>.*)"'
    r'|opendir "(?P<opendir>.*)" failed'
    r'|link_stat "(?P<link>.*)" failed'
    r'|readlink_stat\("(?P<readlink>.*)"\) failed)'
    r": Permission denied \(13\)"
)
# rsync shows a byte it will not print (control characters, bytes that are not UTF-8, a
# backslash before "#") as \#NNN, in octal
_RSYNC_ESCAPE = re.compile(rb"\\#([0-7]{3})")


def unreadable_reason(reason: str) -> bool:
    """True when a set-aside reason says this account may not read the source path (one of
    the daemon's own reasons above, never rsync's text)."""
    return reason.startswith(("cannot watch: ", "cannot read: ")) and _DENIED in reason


def sender_denied(lines: Iterable[str]) -> list[str]:
    """The paths rsync's sender says it may not read ("Permission denied (13)"), as rsync
    named them (absolute, under the source), its escapes decoded. Other lines are ignored."""
    out = []
    for line in lines:
        m = _SENDER_DENIED.fullmatch(line.strip())
        if m is None:
            continue
        quoted = next(g for g in m.groups() if g is not None)
        raw = quoted.encode("utf-8", "surrogateescape")
        out.append(os.fsdecode(_RSYNC_ESCAPE.sub(lambda e: bytes([int(e[1], 8) & 0xFF]), raw)))
    return out


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
    root: str,
    excluded: Callable[[str, bool], bool],
    *,
    deadline: float | None = None,
) -> tuple[str | None, int, bool]:
    """Walks `root` (depth first, in name order: a directory's entries before the next
    name) for the first path (relative to root, "." for root itself) this process may not
    read. Returns it (None when there is none), how many paths were looked at, and whether
    the walk was complete: it stops at the first problem, or at `deadline`
    (time.monotonic()), which is checked at every path, directories included.
    `excluded(rel, is_dir)`: paths replication leaves out (not walked, not judged)."""
    if not _lists(root):
        return ".", 1, True
    seen = 1
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = []

    def enter(rel: str, full: str) -> None:
        try:
            with os.scandir(full) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            entries = []  # vanished meanwhile
        stack.append((rel, iter(entries)))

    enter(".", root)
    while stack:
        if deadline is not None and time.monotonic() > deadline:
            return None, seen, False
        rel, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        child = entry.name if rel == "." else f"{rel}/{entry.name}"
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            return child, seen, True  # cannot even stat it: no search on its directory
        if excluded(child, is_dir):
            continue
        seen += 1
        if not readable_now(entry.path):
            return child, seen, True
        if is_dir:
            enter(child, entry.path)
    return None, seen, True
