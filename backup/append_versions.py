"""Append versions: a version that only the start of the new file is, dropped again.

rsync --backup keeps the whole old file whenever a file changes. A file that grows and is
closed again and again (an application log, an archive log written in pieces) then leaves
one full copy per close: the versions grow with the square of the file. On a local replica,
after a batch has shipped, each version of this batch whose bytes are exactly the start of
the replica's new, longer file is removed: what it held is still there, as that file's
prefix. A rewrite (a change in the middle, a truncation, the same size) keeps its version.

In its place the stamp keeps an append record (`backup.append_record`): length, digest,
mtime, mode and owner, from which a point-in-time restore rebuilds the shorter content.
Remote replicas keep every version (reading both files back would cost a transfer of each).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from backup.append_record import RECORD_DIR, AppendRecord, open_beneath, write_records
from backup.spec import ReplicationSpec
from backup.target import VERSIONS_DIR
from backup.target_lock import target_lock
from backup.versions import stamp

log = logging.getLogger("backup.append_versions")

# Above this a version is kept without reading it: comparing reads it and the same length
# of the new file once per ship, and a batch must not stall on a multi-GiB file.
COMPARE_CAP = 256 * 1024 * 1024
_CHUNK = 1024 * 1024
# O_NONBLOCK: a FIFO (rsync -a keeps specials) must not block the open; a regular file
# ignores it
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(slots=True)
class Dropped:
    """What one clean-up removed: the versions' paths (relative to the replica) and bytes."""

    paths: list[str] = field(default_factory=list)
    bytes: int = 0


async def drop_append_versions(
    spec: ReplicationSpec, ts: float, *, cap: int = COMPARE_CAP
) -> Dropped:
    """Removes the versions stamped `ts` (one batch's) that are a strict prefix of the
    replica's current file, and the directories that leaves empty. Local replicas only
    (a remote one: nothing is done). Runs under the target's lock, so no other sentinel
    writes the replica between the compare and the removal."""
    root = spec.target.local_root
    if root is None:
        return Dropped()
    stamp_dir = root / VERSIONS_DIR / stamp(ts)
    if not os.path.isdir(stamp_dir):
        return Dropped()  # the batch replaced and deleted nothing: the common case
    async with target_lock(spec.lock_dir or spec.runtime_dir, spec.target.url):
        return await asyncio.to_thread(drop_in, root, stamp_dir, cap)


def drop_in(root: Path, stamp_dir: Path, cap: int = COMPARE_CAP) -> Dropped:
    """The work of `drop_append_versions`, on one stamp directory (the caller holds the
    lock). A file that cannot be read or compared keeps its version. The records are
    written (durably) before any version goes: a crash in between leaves a version and
    its record, and a restore takes the version."""
    dropped = Dropped()
    records: dict[str, AppendRecord] = {}
    for here, dirs, files in os.walk(stamp_dir):  # does not follow links
        if here == str(stamp_dir):
            dirs[:] = [d for d in dirs if d != RECORD_DIR]  # the records themselves
        for name in files:
            version = os.path.join(here, name)
            rel = os.path.relpath(version, stamp_dir)
            try:
                record = _prefix_of_current(version, root, rel, cap)
            except OSError as exc:
                log.debug("keeping version %s: %s", version, exc)
                continue
            if record is not None:
                records[rel] = record
    if not records:
        return dropped
    try:
        write_records(stamp_dir, records)
    except OSError as exc:
        log.warning("keeping the append versions in %s: cannot record them: %s", stamp_dir, exc)
        return dropped
    for rel, record in records.items():
        try:
            os.unlink(os.path.join(stamp_dir, rel))
        except OSError as exc:
            log.warning("cannot remove the append version %s: %s", rel, exc)
            continue
        dropped.paths.append(rel)
        dropped.bytes += record.length
    if dropped.paths:
        _remove_empty_dirs(stamp_dir)
    return dropped


def _prefix_of_current(version: str, root: Path, rel: str, cap: int) -> AppendRecord | None:
    """The version's record when its bytes are a strict prefix of the replica's `rel`,
    else None. Both are opened without following links: a component of `rel` that is a
    link on the replica now (a directory replaced by a link) is not the file the version
    was of."""
    vfd = os.open(version, _READ)
    try:
        vst = os.fstat(vfd)
        if not stat.S_ISREG(vst.st_mode) or vst.st_size > cap:
            return None
        cfd = open_beneath(root, rel, _READ)
        try:
            cst = os.fstat(cfd)
            if not stat.S_ISREG(cst.st_mode) or cst.st_size <= vst.st_size:
                return None  # a truncation or a same-size rewrite: a real earlier state
            if (cst.st_dev, cst.st_ino) == (vst.st_dev, vst.st_ino):
                return None  # one file under two names (hard links): nothing to save
            digest = _same_start(vfd, cfd, vst.st_size)
            if digest is None:
                return None
            return AppendRecord(
                length=vst.st_size,
                sha256=digest,
                mtime_ns=vst.st_mtime_ns,
                mode=vst.st_mode,
                uid=vst.st_uid,
                gid=vst.st_gid,
            )
        finally:
            os.close(cfd)
    finally:
        os.close(vfd)


def _same_start(vfd: int, cfd: int, length: int) -> str | None:
    """The SHA-256 of the first `length` bytes when both files have the same ones, else
    None (stops at the first differing chunk)."""
    digest = hashlib.sha256()
    offset = 0
    while offset < length:
        n = min(_CHUNK, length - offset)
        a = os.pread(vfd, n, offset)
        b = os.pread(cfd, n, offset)
        if len(a) != n or a != b:
            return None
        digest.update(a)
        offset += n
    return digest.hexdigest()


def _remove_empty_dirs(stamp_dir: Path) -> None:
    """Removes the directories under `stamp_dir` (and it) that hold nothing any more,
    deepest first; one that still holds a kept version stays."""
    for here, _dirs, _files in os.walk(stamp_dir, topdown=False):
        try:
            os.rmdir(here)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                log.debug("cannot remove %s: %s", here, exc)
