"""Recursive inotify watcher of one source tree (backup/inotify.py; IN_Q_OVERFLOW is passed on).

A new directory gets its watch first and is scanned afterwards, so a file created in it
before the watch existed is still reported. Paths are relative to the source root.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from backup import inotify as IN
from backup.filters import Filters
from backup.inotify import Inotify

log = logging.getLogger("backup.watcher")

WATCH_MASK = (
    IN.CLOSE_WRITE
    | IN.ATTRIB
    | IN.CREATE
    | IN.DELETE
    | IN.MOVED_FROM
    | IN.MOVED_TO
    | IN.DELETE_SELF
    | IN.MOVE_SELF
    | IN.DONT_FOLLOW
    | IN.ONLYDIR
    | IN.EXCL_UNLINK
)

# Change kinds handed to `on_change`. "created" is a new regular file still being written:
# it is not shipped until its close-write, but the guard needs to know it is new.
CREATED_OPEN = "created"


# events dispatched in one turn of the event loop before it does anything else
EVENTS_PER_TURN = 1000

PATH_MAX = os.pathconf("/", "PC_PATH_MAX")
_TOO_LONG = "longer than Linux and rsync allow"


def too_long(size: int) -> str:
    """Why a directory whose absolute path is `size` bytes is set aside."""
    return f"path is {size} bytes, {_TOO_LONG} ({PATH_MAX}): nothing below it is replicated"


def too_long_reason(reason: str | None) -> bool:
    """A quarantine reason given by `too_long`."""
    return reason is not None and _TOO_LONG in reason


def unwatchable(root: Path, rel: str, base: int | None = None) -> str | None:
    """`too_long` for a directory the kernel cannot watch by its absolute name (None for a
    shorter path, a file, or one gone). rsync, which works relative to the source, may ship
    the directory itself; nothing below it would ever be seen change. `base`: the bytes of
    `root` and its "/", when the caller asks for many paths."""
    if base is None:
        base = len(os.fsencode(root)) + 1
    size = base + len(os.fsencode(rel))
    if size < PATH_MAX:
        return None
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        mode = os.lstat(rel, dir_fd=fd).st_mode  # relative: shorter than the whole path
    except OSError:
        return None
    finally:
        os.close(fd)
    return too_long(size) if stat.S_ISDIR(mode) else None


class SourceGone(RuntimeError):
    """The watched source directory itself was deleted or moved away."""


class Watcher:
    """Watches `root` recursively and calls `on_change(rel, kind)` for every change,
    `on_overflow()` when the kernel dropped events (then only a full pass is safe) and
    `on_refused(rel, reason)` for a directory the kernel will not watch (a path longer than
    PATH_MAX): it cannot be replicated either, and must not stop the rest. `on_dir_gone(rel)`
    for a directory deleted or moved away: one event that can stand for many replica files."""

    def __init__(
        self,
        root: Path,
        filters: Filters,
        on_change: Callable[[str, str], None],
        on_overflow: Callable[[], None],
        on_refused: Callable[[str, str], None] | None = None,
        on_dir_gone: Callable[[str], None] | None = None,
    ) -> None:
        self.root = str(Path(root).absolute())
        self.filters = filters
        self._on_change = on_change
        self._on_overflow = on_overflow
        self._on_refused = on_refused
        self._on_dir_gone = on_dir_gone
        self._inotify: Inotify | None = None
        self._dirs: dict[int, str] = {}  # wd -> relative dir ("" = root)
        self._by_rel: dict[str, int] = {}
        # read from the kernel and not dispatched yet: kept here, so a run() called again
        # after one that was cancelled or raised starts with them
        self._pending: list[IN.Event] = []
        self._at = 0
        self.file_count = 0
        self.watch_limit = False
        self.watch_limit_error: str | None = None
        self.overflows = 0
        # paths changed while the first walk ran beside a full pass (open(changed_since))
        self.changed: list[tuple[str, bool]] = []  # (path, is a directory)
        self._since: float | None = None

    @property
    def watches(self) -> int:
        return len(self._dirs)

    def open(self, changed_since: float | None = None) -> None:
        """Creates the inotify instance and watches the whole tree (no events reported).

        `changed_since` (a wall-clock time): a full pass started then and runs beside this
        walk, so it may have read a directory before its watch existed. Every entry whose
        ctime is at or after that time (anything written, renamed, chmod-ed or, for a
        directory, gained or lost an entry) is listed in `changed` for the caller to ship
        after the pass; what changes after its directory's watch is an event as usual."""
        if not os.path.isdir(self.root):
            raise SourceGone(f"source {self.root} is not a directory")
        self._inotify = Inotify()
        self.changed = []
        self._since = changed_since
        try:
            self._add_tree("", scan=False)
        finally:
            self._since = None

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    async def run(self) -> None:
        """Dispatches events until cancelled, or until the dispatch raises (SourceGone).
        Close the watcher only after this ended: a descriptor closed under it is never
        readable again, and this would wait for ever.

        The reading is a reader callback on the (non-blocking) inotify descriptor,
        registered once: adding and removing a reader around every read and waking a task
        for it cost ~0.1 ms a read, and a shipped file is one or two reads (issue 18). At
        most EVENTS_PER_TURN events a turn of the loop, the rest (read from the kernel and
        not dispatched, or still in its queue) in the next turn, one turn queued at a time
        (the reader does nothing while one is): in a flood the loop's other work goes on
        between."""
        ino = self._inotify
        assert ino is not None, "call open() first"
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        fd = ino.fd
        queued = False  # a turn is queued (call_soon) for what is left

        def turn() -> None:
            nonlocal queued
            queued = False
            if ended.done():
                return
            try:
                for _ in range(EVENTS_PER_TURN):
                    if self._at == len(self._pending):
                        try:
                            self._pending, self._at = ino.read(), 0
                        except BlockingIOError:
                            self._pending, self._at = [], 0
                            return
                        if not self._pending:
                            return
                    wd, mask, name = self._pending[self._at]
                    self._at += 1
                    self._dispatch(mask, wd, name)
                queued = True  # events may be left in `pending` or the kernel's queue
                loop.call_soon(turn)
            except BaseException as exc:  # handed to run()'s caller
                if not ended.done():
                    ended.set_exception(exc)

        def readable() -> None:
            if not queued:
                turn()

        loop.add_reader(fd, readable)
        try:
            await ended
        finally:
            with contextlib.suppress(ValueError, OSError):  # closed meanwhile
                loop.remove_reader(fd)

    # -- event handling ------------------------------------------------------------------

    def _dispatch(self, mask: int, wd: int | None, name: str | None) -> None:
        if mask & IN.Q_OVERFLOW:
            self.overflows += 1
            log.warning("inotify queue overflow on %s: a full reconcile follows", self.root)
            self._on_overflow()
            return
        if wd is None or wd not in self._dirs:
            return
        parent = self._dirs[wd]
        if mask & IN.IGNORED:
            self._forget(wd)
            return
        if mask & (IN.DELETE_SELF | IN.MOVE_SELF):
            if parent == "":
                raise SourceGone(f"source {self.root} was deleted or moved away")
            return
        if name is None:
            return
        rel = f"{parent}/{name}" if parent else name
        is_dir = bool(mask & IN.ISDIR)
        if self.filters.excluded(rel, is_dir=is_dir):
            return
        if is_dir:
            self._dir_event(mask, rel)
        else:
            self._file_event(mask, rel)

    def _dir_event(self, mask: int, rel: str) -> None:
        if mask & (IN.CREATE | IN.MOVED_TO):
            self._on_change(rel, "create" if mask & IN.CREATE else "move_to")
            self._add_tree(rel, scan=True)
        elif mask & (IN.MOVED_FROM | IN.DELETE):
            if mask & IN.MOVED_FROM:
                self._drop_tree(rel)
            if self._on_dir_gone is not None:
                self._on_dir_gone(rel)
            self._on_change(rel, "move_from" if mask & IN.MOVED_FROM else "delete")
        elif mask & IN.ATTRIB:
            self.watch_again(rel)  # a chmod or setfacl may let us read it now
            self._on_change(rel, "attrib")

    def watch_again(self, rel: str) -> None:
        """A directory refused before (we may not read it) gets its watches, and what is
        in it is reported, once it can be read; one already watched is left alone."""
        full = os.path.join(self.root, rel)
        if (
            rel in ("", ".")
            or rel in self._by_rel
            or not os.path.isdir(full)
            or os.path.islink(full)
        ):
            return
        self._add_tree(rel, scan=True)

    def _file_event(self, mask: int, rel: str) -> None:
        if mask & IN.CLOSE_WRITE:
            self._on_change(rel, "write")
        elif mask & IN.CREATE:
            self.file_count += 1
            try:
                st = os.lstat(os.path.join(self.root, rel))
            except OSError:
                # renamed or deleted already (an archive command's temporary name): still a
                # new file, so the guard does not take its move or deletion for damage
                self._on_change(rel, CREATED_OPEN)
                return
            # a hard link or a symlink gets no close-write: ship it now
            if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                self._on_change(rel, "create")
            else:
                self._on_change(rel, CREATED_OPEN)
        elif mask & IN.MOVED_TO:
            self.file_count += 1
            self._on_change(rel, "move_to")
        elif mask & IN.MOVED_FROM:
            self.file_count = max(0, self.file_count - 1)
            self._on_change(rel, "move_from")
        elif mask & IN.DELETE:
            self.file_count = max(0, self.file_count - 1)
            self._on_change(rel, "delete")
        elif mask & IN.ATTRIB:
            self._on_change(rel, "attrib")

    # -- watches -------------------------------------------------------------------------

    def _add_tree(self, top: str, *, scan: bool) -> None:
        """Watch `top` and every directory below it; with `scan`, report what is in them
        (the watch comes first, so nothing created meanwhile slips through)."""
        # (directory, below a directory listed as changed)
        stack: list[tuple[str, bool]] = [(top, False)]
        since = self._since
        while stack:
            rel, below_listed = stack.pop()
            full = os.path.join(self.root, rel) if rel else self.root
            if not self._watch(rel, full):
                continue
            listed = False
            if since is not None:
                # read after its watch exists: an entry added or removed before that is in
                # its ctime, one after is an event (read at the parent's scan, a deletion
                # between the two was neither)
                listed = below_listed or self._dir_changed_since(full, since)
                if listed:
                    self.changed.append((rel or ".", True))
            # a listed directory may have been moved in, and a rename leaves the ctime of
            # what is below it alone; it ships one level deep (`dir/`), so every directory
            # below is listed too (the root cannot have been moved in)
            list_below = listed and rel != ""
            try:
                entries = list(os.scandir(full))
            except OSError:
                continue  # vanished meanwhile; its deletion is reported by the parent
            filtered = self.filters.active
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if not (is_dir or scan or filtered or since is not None):
                    # the first walk of a big tree is mostly this: count and go on (the
                    # path string and the filter call were a third of its time)
                    self.file_count += 1
                    continue
                child = f"{rel}/{entry.name}" if rel else entry.name
                if filtered and self.filters.excluded(child, is_dir=is_dir):
                    continue
                if since is not None and not is_dir and self._changed_since(entry, since):
                    self.changed.append((child, False))
                if is_dir:
                    stack.append((child, list_below))
                    if scan:
                        self._on_change(child, "create")
                else:
                    self.file_count += 1
                    if scan:
                        self._on_change(child, "create")

    @staticmethod
    def _dir_changed_since(full: str, since: float) -> bool:
        try:
            return os.lstat(full).st_ctime >= since
        except OSError:
            return False  # gone already: its parent changed, and that is listed

    @staticmethod
    def _changed_since(entry: os.DirEntry[str], since: float) -> bool:
        try:
            return entry.stat(follow_symlinks=False).st_ctime >= since
        except OSError:
            return False  # gone already: its directory changed, and that is listed

    def _watch(self, rel: str, full: str) -> bool:
        """False for a directory that is not to be walked (refused by the kernel)."""
        if self._inotify is None:
            return True
        try:
            wd = self._inotify.add_watch(full, WATCH_MASK)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self._out_of_watches()
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                # refused (a directory we may not read, a name too long, ...): that
                # directory is set aside and listed, the rest of the tree goes on
                if exc.errno == errno.ENAMETOOLONG:
                    reason = too_long(len(os.fsencode(full)))
                else:
                    reason = f"cannot watch: {exc.strerror}"
                if self._on_refused is not None:
                    self._on_refused(rel, reason)
                else:
                    log.error("cannot watch %r: %s", full[:200], reason)
                return False
            return True
        old = self._by_rel.get(rel)
        if old is not None and old != wd:
            self._dirs.pop(old, None)
        self._dirs[wd] = rel
        self._by_rel[rel] = wd
        return True

    def _drop_tree(self, rel: str) -> None:
        """A directory moved away: its watches would report paths under the old name."""
        prefix = rel + "/"
        gone = [(r, wd) for r, wd in self._by_rel.items() if r == rel or r.startswith(prefix)]
        for r, wd in gone:
            if self._dirs.get(wd) != r:
                # `mkdir P; mv A P/B` before these events were read: P's scan watched P/B
                # and the kernel handed back A's watch, which is live there now; only the
                # old name goes (removing the watch left P/B unwatched)
                del self._by_rel[r]
                continue
            self._forget(wd)
            if self._inotify is not None:
                with contextlib.suppress(OSError):  # already gone with its directory
                    self._inotify.rm_watch(wd)

    def _forget(self, wd: int) -> None:
        rel = self._dirs.pop(wd, None)
        if rel is not None and self._by_rel.get(rel) == wd:
            del self._by_rel[rel]

    def _out_of_watches(self) -> None:
        if self.watch_limit:
            return
        self.watch_limit = True
        needed = sum(1 for _ in os.walk(self.root))
        self.watch_limit_error = (
            f"out of inotify watches on {self.root}: it has {needed} directories to watch; "
            f"raise fs.inotify.max_user_watches (e.g. sysctl fs.inotify.max_user_watches="
            f"{max(needed * 2, 65536)}); meanwhile a full reconcile runs periodically"
        )
        log.error("%s", self.watch_limit_error)
