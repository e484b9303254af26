"""In-process shipping of a batch's plain files to a local replica, without an rsync run.

One rsync run costs ~10 ms of CPU in process start-up alone, and its parent sleeps 20-40 ms
before it exits while holding the target lock (docs: issue 18). For a local replica the
common case (a regular file written or deleted) is copied here instead, with what rsync
-a --backup --backup-dir --delete-missing-args does for it (the replica's side of that is
`backup/replica_writer.py`, shared with the stream road's receiver):

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
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backup.replica_writer import TEMP_DIR as TEMP_DIR  # where its temporary files are
from backup.replica_writer import DirAttrs, Fallback, ReplicaWriter, open_dir
from backup.rsync import Outcome, RsyncResult, parse_itemized
from backup.spec import ReplicationSpec
from backup.target import PARTIAL_DIR
from backup.target_lock import target_lock
from backup.transfer import PROTECTED
from backup.versions import stamp

# Bigger files go through rsync: its --partial-dir resumes an interrupted transfer, and a
# copy this size no longer costs mostly process start-up.
COPY_MAX = 64 << 20
_CHUNK = 8 << 20


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
    return await locked_in_thread(
        spec, functools.partial(_ship_all, spec, root, list(paths), now, frozenset(skip))
    )


async def locked_in_thread(
    spec: ReplicationSpec, ship: Callable[[threading.Event], LocalShip]
) -> LocalShip:
    """`ship(stop)` in the executor's thread, under the target's lock (the local copy, and
    the stream road's batch: backup/stream.py)."""
    stop = threading.Event()
    async with target_lock(spec.lock_dir or spec.runtime_dir, spec.target.url):
        # a future of the executor, not a task around to_thread: a task costs the loop
        # turns of its own steps, at every run (issue 18)
        work = asyncio.get_running_loop().run_in_executor(None, ship, stop)
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


class Source:
    """The source half of a batch: which paths are plain cases, and their attributes,
    read without following a symlink anywhere below the source root. The local copy and
    the stream road (`backup/stream.py`) both ask it."""

    def __init__(self, spec: ReplicationSpec, skip: frozenset[str], max_size: int) -> None:
        self.spec = spec
        self.skip = skip
        self.max_size = max_size
        self.fd = os.open(spec.source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def check_name(self, rel: str) -> list[str]:
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

    def open_parent(self, parts: list[str]) -> int:
        return open_dir(self.fd, parts[:-1])

    def plain(self, rel: str, name: str, sdir: int) -> os.stat_result | None:
        """The file's stat when it is a plain case, None when it is gone (a deletion)."""
        try:
            s = os.stat(name, dir_fd=sdir, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if (
            not stat.S_ISREG(s.st_mode)
            or (self.spec.hardlinks and s.st_nlink > 1)
            or s.st_size > self.max_size
            or (self.spec.sparse and s.st_blocks * 512 < s.st_size)
        ):
            raise Fallback(rel)
        return s

    def open_file(self, name: str, sdir: int) -> tuple[int, os.stat_result]:
        # O_NONBLOCK: a FIFO put there after the lstat must not hang the copy's thread
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        src = os.open(name, flags, dir_fd=sdir)
        before = os.fstat(src)
        if not stat.S_ISREG(before.st_mode):
            os.close(src)
            raise Fallback(name)  # replaced between the lstat and the open
        return src, before

    def dir_stat(self, d: str) -> os.stat_result:
        s = os.stat(d, dir_fd=self.fd, follow_symlinks=False)
        if not stat.S_ISDIR(s.st_mode):
            raise Fallback(d)
        return s


def unchanged(s: os.stat_result, before: os.stat_result, after: os.stat_result, n: int) -> bool:
    """The bytes read (`n`) are the content the lstat `s` described: a file written while
    it was read is shipped by rsync (as it was before); the writer's close is another
    event, so the final content follows."""
    want = (s.st_size, s.st_mtime_ns)
    return n == after.st_size and (after.st_size, after.st_mtime_ns) == want == (
        before.st_size,
        before.st_mtime_ns,
    )


class _Batch:
    def __init__(self, spec: ReplicationSpec, root: Path, stamp_name: str, skip: frozenset[str]):
        self.source = Source(spec, skip, COPY_MAX)
        try:
            self.writer = ReplicaWriter(root, stamp_name)
        except BaseException:
            self.source.close()
            raise

    @property
    def kept_versions(self) -> bool:
        return self.writer.kept_versions

    def close(self) -> None:
        self.source.close()
        self.writer.close()

    def ship(self, rel: str) -> list[str]:
        parts = self.source.check_name(rel)
        sdir = self.source.open_parent(parts)
        try:
            ddir = self.writer.open_dir(parts[:-1])
            try:
                s = self.source.plain(rel, parts[-1], sdir)
                if s is None:
                    return self.writer.delete(rel, parts, ddir)
                want = self.writer.wanted(s.st_mode, s.st_uid, s.st_gid, s.st_size, s.st_mtime_ns)
                fill = functools.partial(self._copy, parts[-1], sdir, s)
                return self.writer.put(rel, parts, ddir, want, fill)
            finally:
                os.close(ddir)
        finally:
            os.close(sdir)

    def _copy(self, name: str, sdir: int, s: os.stat_result, dst: int) -> None:
        src, before = self.source.open_file(name, sdir)
        try:
            copied = _copy_bytes(src, dst)
            if not unchanged(s, before, os.fstat(src), copied):
                raise Fallback(name)
        finally:
            os.close(src)

    def implied_dirs(self, rel: str) -> list[str]:
        """The directories above `rel` get the source's mode, owner and mtime, as rsync -R
        sends its implied directories (the root is not one)."""
        return self.writer.implied_dirs(rel, self._dir_attrs)

    def _dir_attrs(self, d: str) -> DirAttrs:
        s = self.source.dir_stat(d)
        return s.st_mode, s.st_uid, s.st_gid, s.st_mtime_ns


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
