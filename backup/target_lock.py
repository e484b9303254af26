"""One writer per replica: an flock on a lock file keyed by the target.

The daemon's replicator and a `sentinel backup sync` run in-process (no daemon yet) are
separate processes with separate in-memory locks; two rsyncs writing one replica at once
interleave their --delete and --backup passes and can leave the replica with the wrong
bytes. Every rsync that writes a target holds this lock, whoever runs it. The lock file
lives in a directory every process that may write the target shares (sentinel passes its
state directory: $RUNTIME_DIRECTORY differs between the service and an admin's shell).

The second writer waits (it does not fail): a by-hand sync that started while the daemon
was shipping a batch should simply go next. The wait is logged once (logger
"backup.target_lock"; the CLI shows it on stderr), so the person at the terminal sees why
nothing moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger("backup.target_lock")

POLL = 0.1  # seconds between tries while another process holds the lock
LOCK_MODE = 0o644  # flock works on a read-only descriptor: root's file serves the daemon


def lock_path(directory: Path, target: str) -> Path:
    """The lock file of `target` (its full location string: host, module and path)."""
    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    return directory / f"target-{digest}.lock"


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_RDONLY: whoever created it first (root from sudo, or the service user), the other
    # can still open and lock it
    return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, LOCK_MODE)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


@contextlib.asynccontextmanager
async def target_lock(directory: Path, target: str) -> AsyncIterator[None]:
    """Holds the target's lock for the body; waits (polling, so cancelling works) while
    another process holds it."""
    path = lock_path(directory, target)
    try:
        fd = _open(path)
    except OSError as exc:
        # the state directory's disk read-only or full: the daemon keeps replicating (as it
        # did before this lock existed) rather than stop protecting the data over a lock
        log.warning("cannot lock %s (%s): writing %s without the lock", path, exc, target)
        yield
        return
    try:
        if not _try_lock(fd):
            log.warning("replica %s busy: another sentinel process is writing it, waiting", target)
            # polled, not a blocking flock in a thread: a cancelled wait (daemon stop,
            # Ctrl-C) must not leave a thread that takes the lock after all
            while not _try_lock(fd):  # noqa: ASYNC110
                await asyncio.sleep(POLL)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
