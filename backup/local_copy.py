"""In-process shipping of a batch's plain files to a local replica, without an rsync run.

One rsync run costs ~10 ms of CPU in process start-up alone, and its parent sleeps 20-40 ms
before it exits while holding the target lock (docs: issue 18). For a local replica the
common case (a regular file written or deleted) is copied here instead, with what rsync
-a --backup --backup-dir --delete-missing-args does for it:

* the new content goes to a temporary file inside the replica root's protected partial dir
  (`.rsync-partial/.sentinel-copy/`: excluded from every full pass, compare and restore;
  a kill -9 leaves it there harmlessly and the next batch clears it), gets the source's
  mode, nanosecond mtime and (as root) owner, and is renamed into place;
* the replica file it replaces, or that a deletion removes, is first renamed to
  `.sentinel-versions/<stamp>/<path>`, the directories there made like rsync makes them
  (the replica directory's mode and owner);
* the implied directories above the file get the source's mode, mtime and owner, as
  `rsync -R` sends them;
* the itemized lines are rsync's (`>f+++++++++`, `>f.st......`, `*deleting`).

Everything else is left to rsync, path by path: directories, symlinks, hard-linked files
(with -H), specials, sparse files (with --sparse), files over COPY_MAX, paths under a
quarantined, excluded or protected name, paths whose directory is missing on either side,
a file that changed while it was copied, and any OSError (permission denied, no space,
read-only replica, a vanished file): rsync then fails, quarantines and reports exactly as
it did before this module existed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import itertools
import os
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backup.rsync import Outcome, RsyncResult, parse_itemized
from backup.spec import ReplicationSpec
from backup.target import PARTIAL_DIR, VERSIONS_DIR
from backup.target_lock import target_lock
from backup.transfer import PROTECTED
from backup.versions import stamp

# Bigger files go through rsync: its --partial-dir resumes an interrupted transfer, and a
# copy this size no longer costs mostly process start-up.
COPY_MAX = 64 << 20
TEMP_NAME = ".sentinel-copy"
TEMP_DIR = f"{PARTIAL_DIR}/{TEMP_NAME}"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 8 << 20
_counter = itertools.count()


class Fallback(Exception):
    """This path is not a plain case: rsync ships it."""


@dataclass(slots=True)
class LocalShip:
    """What the in-process copy did: `done` paths are on the replica (or needed nothing),
    `rest` are for rsync; `output` holds rsync's itemized lines for the done ones."""

    done: list[str] = field(default_factory=list)
    rest: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    kept_versions: bool = False  # a replaced or deleted file went to the versions

    def merged(self, rsync: RsyncResult | None) -> RsyncResult:
        """One result for the batch: rsync's (for the rest), with these lines added."""
        result = rsync if rsync is not None else RsyncResult(0, Outcome.OK)
        mine = RsyncResult(0, Outcome.OK)
        parse_itemized(self.output, mine)
        result.output[:0] = self.output
        result.transferred[:0] = mine.transferred
        result.deleted[:0] = mine.deleted
        result.other[:0] = mine.other
        return result


def usable(spec: ReplicationSpec) -> bool:
    return spec.local_copy and spec.target.local_root is not None


async def ship_local(
    spec: ReplicationSpec, paths: Sequence[str], now: float, *, skip: Iterable[str] = ()
) -> LocalShip:
    """Ships the plain cases of `paths` under the target's lock; see the module doc."""
    root = spec.target.local_root
    if root is None:
        return LocalShip(rest=list(paths))
    stop = threading.Event()
    async with target_lock(spec.lock_dir or spec.runtime_dir, spec.target.url):
        # a future of the executor, not a task around to_thread: a task costs the loop
        # turns of its own steps, at every run (issue 18)
        work = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(_ship_all, spec, root, list(paths), now, frozenset(skip), stop)
        )
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # the lock must outlive the thread that writes the replica: it stops at the next
            # path, and the paths it did not reach are simply shipped again later
            stop.set()
            while not work.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({work})
            raise


def _ship_all(
    spec: ReplicationSpec,
    root: Path,
    paths: list[str],
    now: float,
    skip: frozenset[str],
    stop: threading.Event,
) -> LocalShip:
    out = LocalShip()
    try:
        batch = _Batch(spec, root, stamp(now), skip)
    except OSError:
        out.rest = list(paths)  # a missing replica root: rsync sees (and reports) it
        return out
    try:
        for rel in paths:
            if stop.is_set():
                out.rest.append(rel)
                continue
            try:
                lines = batch.ship(rel)
            except (Fallback, OSError):
                out.rest.append(rel)
                continue
            out.done.append(rel)
            out.output += lines
        # a rename in a directory changes its mtime: the implied directories last
        for rel in list(out.done):
            try:
                out.output += batch.implied_dirs(rel)
            except (Fallback, OSError):
                out.done.remove(rel)
                out.rest.append(rel)  # rsync sets them (the file itself is unchanged now)
    finally:
        batch.close()
    out.kept_versions = batch.kept_versions
    return out


@dataclass(slots=True)
class _Stat:
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int


class _Batch:
    def __init__(self, spec: ReplicationSpec, root: Path, stamp_name: str, skip: frozenset[str]):
        self.spec = spec
        self.stamp = stamp_name
        self.skip = skip
        self.root_euid = os.geteuid() == 0
        self.groups = {os.getegid(), *os.getgroups()}
        self._fds: list[int] = []
        self.src = self._keep(os.open(spec.source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        self.dst = self._keep(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        self.temp = self._temp_dir()
        self._dirs_done: set[str] = set()
        self.kept_versions = False

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def _temp_dir(self) -> int:
        fd = self._keep(_mkdirs(self.dst, [PARTIAL_DIR, TEMP_NAME], 0o700))
        # Anything here now is left by a process killed during a copy: the target lock is
        # held and batches are serial, so no copy is running (a dead process's threads died
        # with it). Usually empty: one listdir per batch.
        for name in os.listdir(fd):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)
        return fd

    # -- one path -------------------------------------------------------------------------

    def ship(self, rel: str) -> list[str]:
        parts = self._check_name(rel)
        sdir = self._open_dir(self.src, parts[:-1])
        try:
            ddir = self._open_dir(self.dst, parts[:-1])
            try:
                return self._ship_in(rel, parts, sdir, ddir)
            finally:
                os.close(ddir)
        finally:
            os.close(sdir)

    def _check_name(self, rel: str) -> list[str]:
        parts = rel.split("/")
        if (
            any(p in ("", ".", "..", PARTIAL_DIR) for p in parts)
            or parts[0] in PROTECTED
            or any("/".join(parts[: i + 1]) in self.skip for i in range(len(parts)))
            # include patterns: rsync's --include=*/ ... --exclude=* has the last word
            or self.spec.filters.include
            or self.spec.filters.excluded(rel)
        ):
            raise Fallback(rel)
        return parts

    def _ship_in(self, rel: str, parts: list[str], sdir: int, ddir: int) -> list[str]:
        name = parts[-1]
        try:
            s = os.stat(name, dir_fd=sdir, follow_symlinks=False)
        except FileNotFoundError:
            return self._delete(rel, parts, ddir)
        if (
            not stat.S_ISREG(s.st_mode)
            or (self.spec.hardlinks and s.st_nlink > 1)
            or s.st_size > COPY_MAX
            or (self.spec.sparse and s.st_blocks * 512 < s.st_size)
        ):
            raise Fallback(rel)
        old = _lstat_or_none(name, ddir)
        if old is not None and not stat.S_ISREG(old.st_mode):
            raise Fallback(rel)  # a type change: rsync's --force and itemizing
        want = self._wanted(s)
        if old is not None and old.st_size == s.st_size and old.st_mtime_ns == s.st_mtime_ns:
            return self._attrs_only(rel, name, ddir, old, want)  # rsync's quick check
        tmp = f"{os.getpid()}.{next(_counter)}"
        self._copy(name, sdir, tmp, want)
        try:
            if old is not None:
                self._keep_version(parts, ddir)
            try:
                os.rename(tmp, name, src_dir_fd=self.temp, dst_dir_fd=ddir)
            except OSError:
                if old is not None:  # put the replaced file back where it was
                    with contextlib.suppress(OSError):
                        self._restore_version(parts, ddir)
                raise
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.temp)
            raise
        if old is None:
            return [f">f+++++++++ {rel}"]
        return [">f" + _changes(old, want, content=True, owner=self.root_euid) + f" {rel}"]

    def _wanted(self, s: os.stat_result) -> _Stat:
        gid = s.st_gid if (self.root_euid or s.st_gid in self.groups) else os.getegid()
        uid = s.st_uid if self.root_euid else os.geteuid()
        return _Stat(stat.S_IMODE(s.st_mode), uid, gid, s.st_size, s.st_mtime_ns)

    def _copy(self, name: str, sdir: int, tmp: str, want: _Stat) -> None:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sdir)
        try:
            before = os.fstat(src)
            if not stat.S_ISREG(before.st_mode):
                raise Fallback(name)  # replaced between the lstat and the open
            dst = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=self.temp
            )
            try:
                try:
                    copied = _copy_bytes(src, dst)
                    after = os.fstat(src)
                    if (
                        copied != after.st_size
                        or (after.st_size, after.st_mtime_ns) != (want.size, want.mtime_ns)
                        or (before.st_size, before.st_mtime_ns) != (want.size, want.mtime_ns)
                    ):
                        # written while copied: rsync ships it (as it did before); the
                        # writer's close is another event, so the final content follows
                        raise Fallback(name)
                    self._set_attrs(dst, want)
                finally:
                    os.close(dst)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=self.temp)
                raise
        finally:
            os.close(src)

    def _set_attrs(self, fd: int, want: _Stat) -> None:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (want.uid, want.gid):
            os.fchown(fd, want.uid if self.root_euid else -1, want.gid)
        os.fchmod(fd, want.mode)  # after the chown, which clears set-id bits
        os.utime(fd, ns=(time.time_ns(), want.mtime_ns))

    def _attrs_only(
        self, rel: str, name: str, ddir: int, old: os.stat_result, want: _Stat
    ) -> list[str]:
        changes = _changes(old, want, content=False, owner=self.root_euid)
        if changes.strip("."):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=ddir)
            try:
                self._set_attrs(fd, want)
            finally:
                os.close(fd)
            return [".f" + changes + f" {rel}"]
        return []

    def _delete(self, rel: str, parts: list[str], ddir: int) -> list[str]:
        old = _lstat_or_none(parts[-1], ddir)
        if old is None:
            return []  # nothing on the replica: rsync says nothing either
        if not stat.S_ISREG(old.st_mode):
            raise Fallback(rel)  # a directory (--force) or link: rsync's
        self._keep_version(parts, ddir)
        with contextlib.suppress(OSError):  # only space is at stake, as in remove_partials
            os.unlink(f"{PARTIAL_DIR}/{parts[-1]}", dir_fd=ddir)
        return [f"*deleting   {rel}"]

    # -- versions and directories -----------------------------------------------------------

    def _version_dir(self, parts: list[str]) -> int:
        """`.sentinel-versions/<stamp>/<dirs of parts>`, made as rsync --backup-dir makes
        it: the top two with the umask's mode, the others with their replica directory's
        mode and (as root) owner."""
        fd = _mkdirs(self.dst, [VERSIONS_DIR, self.stamp], 0o777)
        try:
            for i, part in enumerate(parts[:-1]):
                like = os.stat("/".join(parts[: i + 1]), dir_fd=self.dst, follow_symlinks=False)
                nxt = _mkdirs(fd, [part], 0o777, like=like, chown=self.root_euid)
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _keep_version(self, parts: list[str], ddir: int) -> None:
        self.kept_versions = True  # set first: a failed rename may have made the directory
        vdir = self._version_dir(parts)
        try:
            if _lstat_or_none(parts[-1], vdir) is not None:
                raise Fallback("/".join(parts))  # kept already in this stamp: rsync's call
            os.rename(parts[-1], parts[-1], src_dir_fd=ddir, dst_dir_fd=vdir)
        finally:
            os.close(vdir)

    def _restore_version(self, parts: list[str], ddir: int) -> None:
        vdir = self._version_dir(parts)
        try:
            os.rename(parts[-1], parts[-1], src_dir_fd=vdir, dst_dir_fd=ddir)
        finally:
            os.close(vdir)

    def implied_dirs(self, rel: str) -> list[str]:
        """The directories above `rel` get the source's mode, owner and mtime, as rsync -R
        sends its implied directories (the root is not one)."""
        parts = rel.split("/")[:-1]
        lines = []
        for i in range(len(parts), 0, -1):
            d = "/".join(parts[:i])
            if d in self._dirs_done:
                continue
            s = os.stat(d, dir_fd=self.src, follow_symlinks=False)
            r = os.stat(d, dir_fd=self.dst, follow_symlinks=False)
            if not (stat.S_ISDIR(s.st_mode) and stat.S_ISDIR(r.st_mode)):
                raise Fallback(d)
            want = self._wanted(s)
            changes = _changes(r, want, content=False, owner=self.root_euid)
            if changes.strip("."):
                fd = os.open(d, _DIR_FLAGS, dir_fd=self.dst)
                try:
                    self._set_attrs(fd, want)
                finally:
                    os.close(fd)
                lines.append(".d" + changes + f" {d}/")
            self._dirs_done.add(d)
        return lines

    def _open_dir(self, base: int, parts: list[str]) -> int:
        """The directory `parts` below `base`, never through a symlink (a planted link on
        either side must not lead the copy elsewhere; rsync sorts those out)."""
        fd = os.dup(base)
        try:
            for part in parts:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nxt
        except OSError:
            os.close(fd)
            raise Fallback("/".join(parts)) from None
        return fd


def _mkdirs(
    base: int,
    parts: list[str],
    mode: int,
    *,
    like: os.stat_result | None = None,
    chown: bool = False,
) -> int:
    """Opens (making what is missing) `parts` below `base`, never through a symlink.
    `like`: a directory made here gets its mode and, with `chown`, its owner."""
    fd = os.dup(base)
    try:
        for part in parts:
            try:
                os.mkdir(part, mode, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if made and like is not None:
                if chown:
                    os.fchown(fd, like.st_uid, like.st_gid)
                os.fchmod(fd, stat.S_IMODE(like.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lstat_or_none(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _changes(old: os.stat_result, want: _Stat, *, content: bool, owner: bool) -> str:
    """Positions 3-11 of rsync's %i (c s t p o g u a x) for a file that had `old`."""
    return (
        "."  # c: rsync computes no checksum for a local copy
        + ("s" if content and old.st_size != want.size else ".")
        + ("t" if old.st_mtime_ns != want.mtime_ns else ".")
        + ("p" if stat.S_IMODE(old.st_mode) != want.mode else ".")
        + ("o" if owner and old.st_uid != want.uid else ".")
        + ("g" if old.st_gid != want.gid else ".")
        + "..."
    )


def _copy_bytes(src: int, dst: int) -> int:
    """In-kernel copy (copy_file_range, else sendfile); returns the bytes copied."""
    total = 0
    use_range = True
    while True:
        try:
            n = (
                os.copy_file_range(src, dst, _CHUNK)
                if use_range
                else os.sendfile(dst, src, None, _CHUNK)
            )
        except OSError as exc:
            if use_range and exc.errno in (
                errno.EXDEV,
                errno.ENOSYS,
                errno.EINVAL,
                errno.EOPNOTSUPP,
            ):
                use_range = False
                continue
            raise
        if n == 0:
            return total
        total += n
