"""The daemon's exclusive lock on its state directory: one `sentinel run` per directory.

Two daemons on one state directory share MQTT client ids (the broker drops one for the
other every second), split the messages between two in-memory alarm engines and hand out
alarm ids from one sequence: leaks go unpaged while status says OK. `flock` on
`<state_dir>/sentinel.lock`, held for the daemon's life, makes the second one refuse to
start; the kernel releases it when the holder exits, kill -9 included. Admin commands
(status, ack, silence) never take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "sentinel.lock"


class StateDirLocked(Exception):
    """Another process holds the state directory's lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"state directory {path.parent} is in use by another sentinel daemon ({holder} "
            f"holds {path}): stop that one first; two daemons on one state directory page "
            "twice or not at all"
        )


class StateLock:
    """A held lock; `release()` (or the process's exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        """Takes the lock or raises StateDirLocked; OSError when there is no lock file and
        none can be created (a read-only state directory the daemon never ran in)."""
        path = state_dir / LOCK_NAME
        with contextlib.suppress(OSError):
            state_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            # a read-only filesystem, or another user's file: flock needs no write access
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(path, fd)
            os.close(fd)
            raise StateDirLocked(path, pid) from None
        except BaseException:
            os.close(fd)
            raise
        # for the refusal message of the next one; best effort (a full or read-only disk)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _holder(path: Path, fd: int) -> int | None:
    """The pid holding the lock: the kernel's lock table, else what the holder wrote into
    the file (which may be an earlier holder's, when this one's disk was read-only)."""
    try:
        st = os.fstat(fd)
        ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        lines = Path("/proc/locks").read_text(encoding="ascii").splitlines()
    except OSError:
        lines = []
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 4711 fe:01:1234 0 EOF"
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == ident:
            with contextlib.suppress(ValueError):
                return int(fields[4])
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text(encoding="ascii").strip())
    return None
