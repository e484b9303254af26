"""The keeper's point-in-time snapshots of a room's landing area, on keeper-owned inodes.

A snapshot is `<root>/<UTC name>/`, a full tree of the landing area as it was when taken.
It never shares an inode with the landing area: the writing account owns those inodes, and
any write that reached one (a chmod through rsync, an in-place write the rsyncd config forgot
to refuse) would rewrite history. A file unchanged since the previous snapshot is hard-linked
from that snapshot (a keeper-owned inode, written by nobody after it was made); a changed or
new file is copied into a new inode (reflink first where the filesystem has it). That is
`rsync -a --link-dest=prev landing/ new/`, done in-process.

The landing area is written by a host that may be owned by an attacker, so the walk trusts
nothing in it: every directory is opened relative to its parent's descriptor with
O_NOFOLLOW|O_DIRECTORY (a directory swapped for a symlink mid-walk fails to open instead of
leading out of the tree), names stay as the kernel gave them (surrogateescape str, so newlines,
invalid UTF-8 and leading dashes are just names), symlinks are recreated, never followed, and
FIFOs, devices and sockets are listed as skipped (opening a FIFO would block the keeper).

This module imports nothing from `sentinel`: it is a leaf the keeper calls through
`asyncio.to_thread`.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from backup.restore import dest_problem
from backup.retention import Retention, select_keep

TMP_PREFIX = ".tmp-"
DELETE_PREFIX = ".tmp-del-"
NAME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_NAME_RE = re.compile(r"\A\d{8}T\d{6}\.\d{6}Z\Z")
# rsync's own scratch space in the landing area: its per-directory --partial-dir (the room
# daemon uses ".rsync-partial", backup.target.PARTIAL_DIR; not imported to stay a leaf) and
# the --delay-updates staging dir.
_SCRATCH_DIRS = frozenset({".rsync-partial", ".~tmp~"})
# rsync's own temp files (".<name>.XXXXXX", renamed into place when complete) are NOT left
# out: ".env.backup" or ".notes.drafts" are real documents of the same shape, and a
# half-written temp file kept in one snapshot costs a few bytes, a document left out is lost.
FICLONE = 0x40049409
# A file changed this close before the start of a take may change again within the same
# timestamp tick right after we read it, unseen (git's "racy" files): it is copied, but not
# trusted as unchanged next time. The tick is the kernel's coarse clock (<= 10 ms) on
# filesystems with nanosecond times; a time with no sub-second part suggests a filesystem
# with whole-second (or FAT's 2 s) times.
RACY_NS = 100_000_000
RACY_COARSE_NS = 2_000_000_000

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# what the manifest remembers of a landing entry: a regular file's (st_ino, st_ctime_ns,
# st_size, st_mtime_ns, racy), or a symlink's target
_Key = tuple[int, int, int, int, bool] | str
_ABSENT = object()


class SnapshotError(Exception):
    """A snapshot could not be taken, read or restored (the message says why)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    name: str  # UTC "20261202T031500.123456Z"
    ts: float
    path: Path


@dataclass(slots=True)
class SnapshotResult:
    snapshot: Snapshot
    files: int = 0  # regular files and symlinks stored
    linked: int = 0  # hard-linked from the previous snapshot
    copied: int = 0  # written into new inodes
    bytes_copied: int = 0
    added: int = 0  # against the previous snapshot
    changed: int = 0
    removed: int = 0
    previous_files: int = 0
    skipped: list[str] = field(default_factory=list)  # "rel (reason)"
    # previous_files and removed by top-level name ("" for the landing root's own files),
    # when something was removed and the previous snapshot's manifest is in memory (not
    # right after a restart): the keeper judges a mass change without the room's own
    # version pruning in it
    previous_by_top: dict[str, int] = field(default_factory=dict)
    removed_by_top: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def snapshot_name(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(NAME_FORMAT)


def parse_name(name: str) -> float | None:
    if not _NAME_RE.match(name):
        return None
    try:
        moment = datetime.strptime(name, NAME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp()


@dataclass(slots=True)
class _Manifest:
    """What the landing area looked like at the newest snapshot (`name`), rel -> key."""

    name: str
    entries: dict[str, _Key]


@dataclass(slots=True)
class _Walk:
    result: SnapshotResult
    manifest: dict[str, _Key]
    old: _Manifest | None
    started_ns: int  # wall clock at the start of the take
    seen_previous: int = 0  # entries of the previous snapshot that are still in the landing


class SnapshotStore:
    """The snapshots of one room: `root` = `<snapshot_dir>/<room>`, keeper-owned, 0700."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.mkdir(mode=0o700, exist_ok=True)
        if stat.S_IMODE(self.root.stat().st_mode) != 0o700:
            os.chmod(self.root, 0o700)
        self._manifest: _Manifest | None = None
        self._lock = threading.Lock()  # one take or prune at a time per room

    # -- reading -----------------------------------------------------------------------------

    def list(self) -> list[Snapshot]:
        """Complete snapshots, oldest first (in-progress and half-deleted `.tmp-*` left out)."""
        out = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                ts = parse_name(entry.name)
                if ts is not None and entry.is_dir(follow_symlinks=False):
                    out.append(Snapshot(entry.name, ts, self.root / entry.name))
        out.sort(key=lambda s: s.name)  # the name sorts as the time does
        return out

    def newest(self) -> Snapshot | None:
        snaps = self.list()
        return snaps[-1] if snaps else None

    def at(self, as_of: float) -> Snapshot | None:
        """The newest snapshot taken at or before `as_of`, None if all are newer."""
        found = None
        for snap in self.list():
            if snap.ts <= as_of:
                found = snap
        return found

    def disk_usage(self) -> shutil._ntuple_diskusage:
        """(total, used, free) bytes of the filesystem holding the snapshots."""
        return shutil.disk_usage(self.root)

    # -- taking ------------------------------------------------------------------------------

    def take(self, landing: Path, *, now: float) -> SnapshotResult:
        """Snapshots `landing` as `<root>/<UTC name of now>/`; synchronous (run it in a thread).

        Built in `<root>/.tmp-<name>/`, synced, then renamed into place: a crash leaves only a
        `.tmp-` dir, which `list()` ignores and the next take removes.
        """
        with self._exclusive():
            return self._take(Path(landing), now)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One take or prune at a time on this root, across threads and processes (a second
        keeper started by mistake must not remove the first one's `.tmp-` dir mid-take)."""
        with self._lock:
            fd = os.open(self.root, _DIR_FLAGS)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _take(self, landing: Path, now: float) -> SnapshotResult:
        started = time.monotonic()
        started_ns = time.time_ns()
        self._remove_leftovers()
        snaps = self.list()
        prev = snaps[-1] if snaps else None
        names = {s.name for s in snaps}
        stamp = now
        while snapshot_name(stamp) in names or (prev is not None and stamp <= prev.ts):
            stamp = max(stamp, prev.ts if prev else stamp) + 1e-6  # names must grow
        name = snapshot_name(stamp)
        snap = Snapshot(name, parse_name(name) or stamp, self.root / name)
        result = SnapshotResult(snap)
        old = (
            self._manifest if prev and self._manifest and self._manifest.name == prev.name else None
        )
        walk = _Walk(result, {}, old, started_ns)

        try:
            src_fd = os.open(landing, _DIR_FLAGS)
        except OSError as e:
            raise SnapshotError(f"cannot open the landing area {landing}: {e.strerror}") from e
        root_fd = prev_fd = dst_fd = -1
        tmp_name = TMP_PREFIX + name
        try:
            root_fd = os.open(self.root, _DIR_FLAGS)
            if prev is not None:
                with contextlib.suppress(OSError):
                    prev_fd = os.open(prev.name, _DIR_FLAGS, dir_fd=root_fd)
            os.mkdir(tmp_name, 0o700, dir_fd=root_fd)
            dst_fd = os.open(tmp_name, _DIR_FLAGS, dir_fd=root_fd)
            self._walk_tree(src_fd, prev_fd, dst_fd, walk)
            top = os.fstat(src_fd)
            _finish_dir(dst_fd, top)
            _syncfs(dst_fd)
            os.rename(tmp_name, name, src_dir_fd=root_fd, dst_dir_fd=root_fd)
            os.fsync(root_fd)
        except OSError as e:
            raise SnapshotError(f"snapshot {name} of {landing} failed: {e}") from e
        finally:
            for fd in (src_fd, root_fd, prev_fd, dst_fd):
                if fd >= 0:
                    os.close(fd)
            if (self.root / tmp_name).exists():
                shutil.rmtree(self.root / tmp_name, ignore_errors=True)

        if prev is not None:
            if old is not None:
                result.previous_files = len(old.entries)
            else:
                result.previous_files = _count_entries(prev.path)
            result.removed = max(0, result.previous_files - walk.seen_previous)
            if old is not None and result.removed:
                # a pass over the previous manifest (~50 ms per 100,000 files): only when
                # something was removed, which is what the counts are for
                _count_by_top(old.entries, walk.manifest, result)
        self._manifest = _Manifest(name, walk.manifest)
        result.seconds = time.monotonic() - started
        return result

    def _remove_leftovers(self) -> None:
        with os.scandir(self.root) as entries:
            stale = [e.name for e in entries if e.name.startswith(TMP_PREFIX)]
        for name in stale:
            shutil.rmtree(self.root / name, ignore_errors=True)

    def _walk_tree(self, src_top: int, prev_top: int, dst_top: int, walk: _Walk) -> None:
        """Depth-first with an explicit stack (no recursion limit on a hostile deep tree);
        only the descriptors of the current path are open."""
        stack: list[tuple[int, int, int, str, Iterator[os.DirEntry[str]], os.stat_result]] = []

        def enter(src: int, prev: int, dst: int, rel: str, st: os.stat_result) -> None:
            with os.scandir(src) as it:
                entries = list(it)  # read whole, so the listing fd closes now
            stack.append((src, prev, dst, rel, iter(entries), st))

        old_entries = walk.old.entries if walk.old is not None else None
        manifest = walk.manifest
        link = os.link
        fast_linked = 0
        enter(src_top, prev_top, dst_top, "", os.fstat(src_top))
        try:
            while stack:
                src, prev, dst, rel_dir, entries, dir_st = stack[-1]
                entry = next(entries, None)
                if entry is None:
                    stack.pop()
                    if len(stack):  # the top dir's fds belong to _take
                        _finish_dir(dst, dir_st)
                        for fd in (src, prev, dst):
                            if fd >= 0:
                                os.close(fd)
                    continue
                name = entry.name
                rel = f"{rel_dir}/{name}" if rel_dir else name
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # gone since the listing: not part of this snapshot
                mode = st.st_mode
                if stat.S_ISDIR(mode):
                    if name in _SCRATCH_DIRS:
                        continue
                    opened = self._open_subdir(src, prev, dst, name, rel, walk)
                    if opened is not None:
                        enter(*opened, rel, st)
                elif stat.S_ISREG(mode):
                    # the common case inline (100,000 files, a few changed): same inode, ctime,
                    # size and mtime as at the last take, not racy then -> link, reuse the entry
                    was = old_entries.get(rel) if old_entries is not None else None
                    if (
                        type(was) is tuple
                        and not was[4]
                        and was[0] == st.st_ino
                        and was[1] == st.st_ctime_ns
                        and was[2] == st.st_size
                        and was[3] == st.st_mtime_ns
                        and prev >= 0
                    ):
                        try:
                            link(name, name, src_dir_fd=prev, dst_dir_fd=dst, follow_symlinks=False)
                        except OSError:
                            pass  # the slow path copies
                        else:
                            fast_linked += 1
                            manifest[rel] = was
                            continue
                    _store_file(src, prev, dst, name, rel, st, walk)
                elif stat.S_ISLNK(mode):
                    _store_symlink(src, prev, dst, name, rel, st, walk)
                else:
                    walk.result.skipped.append(f"{rel} ({_kind(mode)})")
        finally:
            for src, prev, dst, *_ in stack[1:]:  # an error mid-walk: close the path
                for fd in (src, prev, dst):
                    if fd >= 0:
                        os.close(fd)
            walk.result.linked += fast_linked
            walk.result.files += fast_linked
            walk.seen_previous += fast_linked

    @staticmethod
    def _open_subdir(
        src: int, prev: int, dst: int, name: str, rel: str, walk: _Walk
    ) -> tuple[int, int, int] | None:
        try:
            sub_src = os.open(name, _DIR_FLAGS, dir_fd=src)
        except FileNotFoundError:
            return None
        except OSError as e:  # ELOOP/ENOTDIR: swapped for a symlink or a file since listing
            walk.result.skipped.append(f"{rel}/ (changed while read: {e.strerror})")
            return None
        sub_prev = -1
        if prev >= 0:
            with contextlib.suppress(OSError):
                sub_prev = os.open(name, _DIR_FLAGS, dir_fd=prev)
        try:
            os.mkdir(name, 0o700, dir_fd=dst)
            sub_dst = os.open(name, _DIR_FLAGS, dir_fd=dst)
        except OSError:
            os.close(sub_src)
            if sub_prev >= 0:
                os.close(sub_prev)
            raise
        return sub_src, sub_prev, sub_dst

    # -- pruning -----------------------------------------------------------------------------

    def prune(self, policy: Retention, *, now: float) -> builtins.list[Snapshot]:
        """Removes the snapshots `policy` does not keep (never the newest); returns them.

        Each is renamed to `.tmp-del-<name>` before its tree is removed, so a prune cut short
        never leaves a half-empty snapshot that looks real.
        """
        with self._exclusive():
            snaps = self.list()
            keep = select_keep([s.ts for s in snaps], policy, now)
            if snaps:
                keep.add(snaps[-1].ts)
            removed = []
            for snap in snaps:
                if snap.ts in keep:
                    continue
                doomed = self.root / (DELETE_PREFIX + snap.name)
                try:
                    os.rename(snap.path, doomed)
                except OSError as e:
                    raise SnapshotError(f"cannot remove snapshot {snap.name}: {e}") from e
                shutil.rmtree(doomed, ignore_errors=True)
                removed.append(snap)
            return removed


# -- one entry ---------------------------------------------------------------------------------


def _count_by_top(previous: dict[str, _Key], now: dict[str, _Key], result: SnapshotResult) -> None:
    for rel in previous:
        top = rel.split("/", 1)[0] if "/" in rel else ""
        result.previous_by_top[top] = result.previous_by_top.get(top, 0) + 1
        if rel not in now:
            result.removed_by_top[top] = result.removed_by_top.get(top, 0) + 1


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "unknown type"


def _key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_ctime_ns, st.st_size, st.st_mtime_ns)


def _entry(st: os.stat_result, walk: _Walk) -> _Key:
    """The manifest entry of a regular file: its key, and whether it is racy (changed so
    recently that another write in the same timestamp tick could go unseen)."""
    return (*_key(st), _racy(st.st_ctime_ns, walk.started_ns))


def _racy(change_ns: int, read_ns: int) -> bool:
    window = RACY_COARSE_NS if change_ns % 1_000_000_000 == 0 else RACY_NS
    return change_ns >= read_ns - window


def _store_file(
    src: int, prev: int, dst: int, name: str, rel: str, st: os.stat_result, walk: _Walk
) -> None:
    result = walk.result
    in_previous = same = linkable = False
    if walk.old is not None:
        was = walk.old.entries.get(rel, _ABSENT)
        in_previous = was is not _ABSENT
        same = isinstance(was, tuple) and was[:4] == _key(st)
        linkable = same and not was[4]  # type: ignore[index]
    elif prev >= 0:
        # no manifest (the keeper restarted): rsync's quick check against the previous copy.
        # That copy's ctime is when the keeper made (or last linked) it: a landing mtime that
        # close to it may hide a second write in the same tick, so such a file is copied.
        try:
            old = os.stat(name, dir_fd=prev, follow_symlinks=False)
        except OSError:
            old = None
        if old is not None:
            in_previous = True
            same = (
                stat.S_ISREG(old.st_mode)
                and old.st_size == st.st_size
                and old.st_mtime_ns == st.st_mtime_ns
            )
            linkable = same and not _racy(st.st_mtime_ns, old.st_ctime_ns)
    if linkable:
        try:
            os.link(name, name, src_dir_fd=prev, dst_dir_fd=dst, follow_symlinks=False)
        except OSError:
            pass  # gone from the previous snapshot, or EMLINK: copy instead
        else:
            result.linked += 1
            result.files += 1
            walk.seen_previous += 1
            walk.manifest[rel] = _entry(st, walk)
            return
    copied = _copy_file(src, dst, name, rel, walk)
    if copied is None:
        return
    result.copied += 1
    result.files += 1
    result.bytes_copied += copied[0]
    walk.manifest[rel] = copied[1]
    if in_previous:
        walk.seen_previous += 1
        if not same or copied[1][:4] != _key(st):
            result.changed += 1
    else:
        result.added += 1


def _copy_file(src: int, dst: int, name: str, rel: str, walk: _Walk) -> tuple[int, _Key] | None:
    """Copies landing `name` into a new keeper-owned inode; (bytes, manifest key) or None."""
    try:
        fd_in = os.open(name, _READ_FLAGS, dir_fd=src)
    except FileNotFoundError:
        return None
    except OSError as e:  # ELOOP: swapped for a symlink since listed; EACCES etc.
        walk.result.skipped.append(f"{rel} (cannot open: {e.strerror})")
        return None
    try:
        st = os.fstat(fd_in)  # what we opened, not what was listed
        if not stat.S_ISREG(st.st_mode):
            walk.result.skipped.append(f"{rel} (changed while read: {_kind(st.st_mode)})")
            return None
        fd_out = os.open(name, _WRITE_FLAGS, 0o600, dir_fd=dst)
        try:
            size = _copy_bytes(fd_in, fd_out, st.st_size)
            os.fchmod(fd_out, stat.S_IMODE(st.st_mode) | 0o600)
            os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    # the key is what fstat said before the copy: a write during the copy changes ctime,
    # so the next take sees the file as changed and copies it again
    return size, _entry(st, walk)


def _copy_bytes(fd_in: int, fd_out: int, size_hint: int) -> int:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd_out, FICLONE, fd_in)  # reflink: shares extents, not the inode
        return os.fstat(fd_out).st_size
    total = 0
    chunk = max(size_hint, 1 << 20)
    try:
        while True:
            n = os.copy_file_range(fd_in, fd_out, chunk)
            if n == 0:
                return total
            total += n
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP) or total:
            raise
    while True:
        data = os.read(fd_in, 1 << 20)
        if not data:
            return total
        os.write(fd_out, data)  # regular file: full writes
        total += len(data)


def _store_symlink(
    src: int, prev: int, dst: int, name: str, rel: str, st: os.stat_result, walk: _Walk
) -> None:
    result = walk.result
    try:
        target = os.readlink(name, dir_fd=src)
    except FileNotFoundError:
        return
    except OSError as e:  # EINVAL: replaced by a non-link since listed
        result.skipped.append(f"{rel} (changed while read: {e.strerror})")
        return
    os.symlink(target, name, dir_fd=dst)
    with contextlib.suppress(OSError):
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)
    result.files += 1
    walk.manifest[rel] = target
    if walk.old is not None:
        was = walk.old.entries.get(rel, _ABSENT)
        in_previous, same = was is not _ABSENT, was == target
    else:
        try:
            before: str | None = os.readlink(name, dir_fd=prev) if prev >= 0 else None
            in_previous = before is not None
        except OSError:
            before, in_previous = None, False
            with contextlib.suppress(OSError):
                os.stat(name, dir_fd=prev, follow_symlinks=False)
                in_previous = True
        same = before == target
    if in_previous:
        walk.seen_previous += 1
        result.changed += not same
    else:
        result.added += 1


def _finish_dir(dst: int, st: os.stat_result) -> None:
    """Mode (plus u+rwx, so the keeper can always read and prune) and mtime, after the
    children are in (adding them moved the mtime)."""
    os.fchmod(dst, stat.S_IMODE(st.st_mode) | 0o700)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _count_entries(path: Path) -> int:
    """Files and symlinks in a snapshot (what `files` counted when it was taken)."""
    count = 0
    stack = [str(path)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    count += 1
    return count


_libc: ctypes.CDLL | None = None


def _syncfs(fd: int) -> None:
    """Flushes the snapshot's filesystem once (syncfs), not 100,000 fsyncs; os.sync if the
    C library has no syncfs."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fn = getattr(_libc, "syncfs", None)
    if fn is None or fn(fd) != 0:
        os.sync()


# -- restore -----------------------------------------------------------------------------------


def restore(
    snapshot: Snapshot, dest: Path, *, into_existing: bool = False, subpath: str | None = None
) -> int:
    """Copies `snapshot` (or its `subpath`, a file or dir, kept at the same relative path)
    into `dest` with `rsync -a --safe-links`; returns the number of files written.

    Never deletes anything in `dest`. A non-empty `dest` is refused unless `into_existing`
    (files of the same name are then replaced, nothing else is touched).
    """
    dest = Path(dest)
    base = snapshot.path
    source = f"{base}/./"
    if subpath:
        parts = [p for p in subpath.split("/") if p not in ("", ".")]
        if not parts or ".." in parts or subpath.startswith("/"):
            raise SnapshotError(f"subpath {subpath!r} must be a path inside the snapshot")
        # rsync follows symlinks in the source path: a stored link "docs -> /etc" must not
        # turn "docs/shadow" into a read of the keeper host's /etc
        here = base
        for part in parts[:-1]:
            here = here / part
            if not stat.S_ISDIR(_lstat(here, subpath).st_mode):
                raise SnapshotError(f"{subpath!r}: {part!r} is not a directory in the snapshot")
        _lstat(here / parts[-1], subpath)
        source = f"{base}/./{'/'.join(parts)}"
    if dest.is_symlink():
        raise SnapshotError(f"{dest} is not a directory")
    problem = dest_problem(dest, into_existing=into_existing)
    if problem is not None:
        raise SnapshotError(problem)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [
        "rsync",
        "-a",
        "--safe-links",
        "--relative",
        "--stats",
        "--no-human-readable",
        "--",
        source,
        f"{dest}/",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    except OSError as e:  # no rsync on the keeper host
        raise SnapshotError(f"cannot run rsync to restore {snapshot.name}: {e}") from e
    if done.returncode != 0:
        raise SnapshotError(
            f"rsync exited {done.returncode} restoring {snapshot.name}: "
            f"{done.stderr.strip()[-500:]}"
        )
    match = re.search(r"Number of regular files transferred:\s*([\d,]+)", done.stdout)
    return int(match.group(1).replace(",", "")) if match else 0


def _lstat(path: Path, subpath: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except OSError as e:
        raise SnapshotError(f"{subpath!r} is not in the snapshot: {e.strerror}") from e
