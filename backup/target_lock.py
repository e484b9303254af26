"""One writer per replica: an flock on a lock file keyed by the target.

The daemon's replicator and a `sentinel backup sync` run in-process (no daemon yet) are
separate processes with separate in-memory locks; two rsyncs writing one replica at once
interleave their --delete and --backup passes and can leave the replica with the wrong
bytes. Every rsync that writes replica content (batch, full pass, partial clean-up, target
marker, version prune) holds this lock, whoever runs it. The lock file lives in a directory
every process that may write the target shares (sentinel passes its state directory:
$RUNTIME_DIRECTORY differs between the service and an admin's shell).

The lock outlives its holder's rsync, not the holder: the body passes `HeldLock.pass_fds`
to the rsync it spawns, so the child shares the locked open file. A holder killed -9 in the
middle of a transfer leaves an orphaned rsync still writing; the next writer waits until
that rsync has exited too.

The lock file is 0600, owned by the state directory's owner (the service account) and
opened read-write without following links: a member of the state directory's group (who
may run `sentinel status`) can neither flock it and stall replication for ever, nor plant
a link to another file. A lock file that cannot be opened so (the disk read-only or full,
a link, someone else's file) is the "cannot lock ... without the lock" warning below.

The second writer waits (it does not fail): a by-hand sync that started while the daemon
was shipping a batch should simply go next. The wait is logged once (logger
"backup.target_lock"; the CLI shows it on stderr), naming the holding pid when /proc/locks
tells it, so the person at the terminal sees why nothing moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("backup.target_lock")

POLL = 0.1  # seconds between tries while another process holds the lock
LOCK_MODE = 0o600  # a readable lock file is one anybody who can read it can flock
PROC_LOCKS = Path("/proc/locks")


@dataclass(frozen=True, slots=True)
class HeldLock:
    """The lock the body holds; `fd` is None when it writes without one (see above)."""

    fd: int | None

    @property
    def pass_fds(self) -> tuple[int, ...]:
        """For the rsync the body spawns (`run_rsync(pass_fds=...)`): the lock then lasts
        as long as that rsync, even when this process dies first."""
        return () if self.fd is None else (self.fd,)


@functools.lru_cache(maxsize=64)
def lock_path(directory: Path, target: str) -> Path:
    """The lock file of `target` (its full location string: host, module and path)."""
    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    return directory / f"target-{digest}.lock"


def _open(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, LOCK_MODE)
    except FileNotFoundError:  # the directory first (once per run a mkdir was a tenth of
        # the lock's cost)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, flags, LOCK_MODE)
    try:
        _tighten(fd, path)
    except OSError:
        os.close(fd)
        raise
    return fd


def _tighten(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    me = os.geteuid()
    if me == 0:
        # root (sudo sentinel backup sync) must not leave a file the service cannot open
        # read-write: hand it to whoever owns the state directory
        owner = os.stat(path.parent)
        if (st.st_uid, st.st_gid) != (owner.st_uid, owner.st_gid):
            os.fchown(fd, owner.st_uid, owner.st_gid)
    elif st.st_uid != me:
        return  # not ours to change; we could open it read-write, so it serves
    if stat.S_IMODE(st.st_mode) != LOCK_MODE:
        os.fchmod(fd, LOCK_MODE)  # a file left 0644 by an older sentinel


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def holder_pid(fd: int) -> int | None:
    """The pid that took the flock on `fd`'s file, from /proc/locks (None when it cannot
    tell). After a kill -9 this is the dead holder; its rsync child holds the lock now."""
    st = os.fstat(fd)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = PROC_LOCKS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have a "->" field
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5] == inode and fields[4].isdigit():
            return int(fields[4])
    return None


@contextlib.asynccontextmanager
async def target_lock(directory: Path, target: str) -> AsyncIterator[HeldLock]:
    """Holds the target's lock for the body; waits (polling, so cancelling works) while
    another process holds it. Pass the result's `pass_fds` to the rsync the body runs."""
    path = lock_path(directory, target)
    try:
        fd = _open(path)
    except OSError as exc:
        # the state directory's disk read-only or full: the daemon keeps replicating (as it
        # did before this lock existed) rather than stop protecting the data over a lock
        log.warning("cannot lock %s (%s): writing %s without the lock", path, exc, target)
        yield HeldLock(None)
        return
    try:
        if not _try_lock(fd):
            pid = holder_pid(fd)
            log.warning(
                "replica %s busy: another sentinel process is writing it, waiting%s",
                target,
                f" (pid {pid} took the lock)" if pid is not None else "",
            )
            # polled, not a blocking flock in a thread: a cancelled wait (daemon stop,
            # Ctrl-C) must not leave a thread that takes the lock after all
            while not _try_lock(fd):  # noqa: ASYNC110
                await asyncio.sleep(POLL)
        yield HeldLock(fd)
    finally:
        # releases the lock, unless an rsync given `pass_fds` still runs: then at its exit
        os.close(fd)
