"""The replica half of shipping a plain file: what rsync -a --backup --backup-dir
--delete-missing-args does to a replica root for one regular file, done with system calls.

Two roads feed it. The local copy (`backup/local_copy.py`) hands it files from the source
tree on this host; `sentinel receive` (`backup/receiver.py`) hands it files that came over
one ssh session from the server-room host. Either way:

* the new content goes to a temporary file in the replica root's protected partial dir
  (`.rsync-partial/.sentinel-copy/`: excluded from every full pass, compare and restore; a
  kill -9 leaves it there harmlessly and the next batch clears it), gets the source's mode,
  nanosecond mtime and (as root) owner, and is renamed into place;
* the replica file it replaces, or that a deletion removes, is first renamed to
  `.sentinel-versions/<stamp>/<path>`, the directories there made like rsync makes them;
* the implied directories above the file get the source's mode, mtime and owner;
* the itemized lines are rsync's (`>f+++++++++`, `>f.st......`, `*deleting`).

Anything that is not that plain case raises `Fallback` (or OSError), and the path goes to
rsync: a replica entry that is not a regular file, a directory reached through a symlink, a
version already kept under this stamp.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backup.target import PARTIAL_DIR, VERSIONS_DIR

TEMP_NAME = ".sentinel-copy"
TEMP_DIR = f"{PARTIAL_DIR}/{TEMP_NAME}"
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_counter = itertools.count()
DirAttrs = tuple[int, int, int, int]  # a source directory's st_mode, uid, gid, mtime_ns


class Fallback(Exception):
    """This path is not a plain case: rsync ships it."""


@dataclass(slots=True)
class Wanted:
    """What the replica file is to have: the source's mode bits, mtime and size, and the
    owner this process may give it."""

    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int


class ReplicaWriter:
    """One batch's writes into the replica root `root`, its versions under `stamp_name`.
    Batches are serial (the caller holds the target's lock, or the receiver's own), so the
    temporary files found when it opens were left by a killed process."""

    def __init__(self, root: Path, stamp_name: str) -> None:
        self.stamp = stamp_name
        self.root_euid = os.geteuid() == 0
        self.groups = {os.getegid(), *os.getgroups()}
        self._fds: list[int] = []
        self.dst = self._keep(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        self.temp = self._keep(open_temp_dir(self.dst))
        # Usually empty: one listdir per batch.
        for name in os.listdir(self.temp):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self.temp)
        self._dirs_done: set[str] = set()
        self.kept_versions = False

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()

    def wanted(self, mode: int, uid: int, gid: int, size: int, mtime_ns: int) -> Wanted:
        """The source's attributes as this process can set them: the owner only as root,
        the group only one of its own (rsync -a as a plain user does the same)."""
        gid = gid if (self.root_euid or gid in self.groups) else os.getegid()
        uid = uid if self.root_euid else os.geteuid()
        return Wanted(stat.S_IMODE(mode), uid, gid, size, mtime_ns)

    def open_dir(self, parts: list[str]) -> int:
        return open_dir(self.dst, parts)

    # -- one file -------------------------------------------------------------------------

    def put(
        self, rel: str, parts: list[str], ddir: int, want: Wanted, fill: Callable[[int], None]
    ) -> list[str]:
        """Puts a file with `want`'s attributes at `parts` (in `ddir`, its replica
        directory); `fill` writes its content into the temporary file's descriptor, and
        raises Fallback when the content it had to write changed meanwhile."""
        name = parts[-1]
        old = lstat_or_none(name, ddir)
        if old is not None and not stat.S_ISREG(old.st_mode):
            raise Fallback(rel)  # a type change: rsync's --force and itemizing
        if old is not None and old.st_size == want.size and old.st_mtime_ns == want.mtime_ns:
            return self._attrs_only(rel, name, ddir, old, want)  # rsync's quick check
        tmp = f"{os.getpid()}.{next(_counter)}"
        dst = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=self.temp
        )
        try:
            try:
                fill(dst)
                self._set_attrs(dst, want)
            finally:
                os.close(dst)
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
        return [">f" + changes(old, want, content=True, owner=self.root_euid) + f" {rel}"]

    def _set_attrs(self, fd: int, want: Wanted) -> None:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (want.uid, want.gid):
            os.fchown(fd, want.uid if self.root_euid else -1, want.gid)
        os.fchmod(fd, want.mode)  # after the chown, which clears set-id bits
        os.utime(fd, ns=(time.time_ns(), want.mtime_ns))

    def _attrs_only(
        self, rel: str, name: str, ddir: int, old: os.stat_result, want: Wanted
    ) -> list[str]:
        change = changes(old, want, content=False, owner=self.root_euid)
        if change.strip("."):
            # O_NONBLOCK: a FIFO swapped in after the lstat must not hang the open
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(name, flags, dir_fd=ddir)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise Fallback(rel)
                self._set_attrs(fd, want)
            finally:
                os.close(fd)
            return [".f" + change + f" {rel}"]
        return []

    def delete(self, rel: str, parts: list[str], ddir: int) -> list[str]:
        """The source no longer has `rel`: its replica file goes to the versions."""
        old = lstat_or_none(parts[-1], ddir)
        if old is None:
            return []  # nothing on the replica: rsync says nothing either
        if not stat.S_ISREG(old.st_mode):
            raise Fallback(rel)  # a directory (--force) or link: rsync's
        self._keep_version(parts, ddir)
        with contextlib.suppress(OSError, Fallback):  # only space is at stake
            # opened without following a link: a planted `.rsync-partial -> /elsewhere`
            # must not make this unlink a file there
            pdir = open_dir(ddir, [PARTIAL_DIR])
            try:
                os.unlink(parts[-1], dir_fd=pdir)
            finally:
                os.close(pdir)
        return [f"*deleting   {rel}"]

    # -- versions and directories -----------------------------------------------------------

    def _version_dir(self, parts: list[str]) -> int:
        """`.sentinel-versions/<stamp>/<dirs of parts>`, made as rsync --backup-dir makes
        it: the top two with the umask's mode, the others with their replica directory's
        mode and (as root) owner."""
        fd = mkdirs(self.dst, [VERSIONS_DIR, self.stamp], 0o777)
        try:
            for i, part in enumerate(parts[:-1]):
                like = os.stat("/".join(parts[: i + 1]), dir_fd=self.dst, follow_symlinks=False)
                nxt = mkdirs(fd, [part], 0o777, like=like, chown=self.root_euid)
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
            if lstat_or_none(parts[-1], vdir) is not None:
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

    def implied_dirs(self, rel: str, attrs_of: Callable[[str], DirAttrs]) -> list[str]:
        """The directories above `rel` get the source's mode, owner and mtime (`attrs_of`
        of each, which raises Fallback when it cannot say), as rsync -R sends its implied
        directories (the root is not one); each once per batch."""
        parts = rel.split("/")[:-1]
        lines = []
        for i in range(len(parts), 0, -1):
            d = "/".join(parts[:i])
            if d not in self._dirs_done:
                mode, uid, gid, mtime_ns = attrs_of(d)
                lines += self._implied_dir(d, self.wanted(mode, uid, gid, 0, mtime_ns))
        return lines

    def _implied_dir(self, d: str, want: Wanted) -> list[str]:
        # component by component, never through a link: a directory above `d` replaced
        # by a link since the file was written must not send the chmod elsewhere
        fd = open_dir(self.dst, d.split("/"))
        try:
            r = os.fstat(fd)
            change = changes(r, want, content=False, owner=self.root_euid)
            lines = []
            if change.strip("."):
                self._set_attrs(fd, want)
                lines.append(".d" + change + f" {d}/")
        finally:
            os.close(fd)
        self._dirs_done.add(d)
        return lines


def open_temp_dir(root_fd: int) -> int:
    return mkdirs(root_fd, [PARTIAL_DIR, TEMP_NAME], 0o700)


def open_dir(base: int, parts: list[str]) -> int:
    """The directory `parts` below `base`, never through a symlink (a planted link on
    either side must not lead the copy elsewhere; rsync sorts those out)."""
    fd = os.dup(base)
    try:
        for part in parts:
            nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        raise Fallback("/".join(parts)) from None
    return fd


def mkdirs(
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
            nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
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


def lstat_or_none(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def changes(old: os.stat_result, want: Wanted, *, content: bool, owner: bool) -> str:
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
