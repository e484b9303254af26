"""When a written file reaches the replica, timed by one inotify thread on one clock.

The start of a file's latency is IN_CLOSE_WRITE on the source, its end IN_MOVED_TO (or
IN_CREATE / IN_CLOSE_WRITE) under the file's final name on the replica, kept only once the
replica's bytes hash to what was written. Both events come through the same inotify queue
and are stamped by the same thread, so the writer's GIL delays and a poller's interval do
not enter the number. An IN_CLOSE_WRITE under a final name means something wrote the
replica's file in place (a reader could have seen a partial copy): those are counted.
"""

from __future__ import annotations

import hashlib
import os
import select
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from backup import inotify as IN
from backup.inotify import Inotify

REPLICA_EVENTS = IN.MOVED_TO | IN.CREATE | IN.CLOSE_WRITE


def events(ino: Inotify, timeout: float = 0.1) -> list[IN.Event]:
    """What is queued, waiting at most `timeout` for something; with the time it was read."""
    if not select.select([ino.fd], [], [], timeout)[0]:
        return []
    try:
        return ino.read()
    except BlockingIOError:
        return []


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def file_digest(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return digest(f.read())
    except OSError:
        return None


@dataclass
class Pending:
    rel: str
    size: int
    digest: bytes
    closed: float | None = None  # IN_CLOSE_WRITE on the source, monotonic s


class Arrivals(threading.Thread):
    """Latency of every expected file, close() on the source to its final name on the replica."""

    def __init__(self, source: Path, replica: Path, subdirs: Iterable[str]) -> None:
        super().__init__(daemon=True)
        self.replica = replica
        self.ino = Inotify()
        self.sides: dict[int, tuple[str, str]] = {}  # watch -> (side, subdir)
        for sub in subdirs:
            self.sides[self.ino.add_watch(str(source / sub), IN.CLOSE_WRITE)] = ("src", sub)
            self.sides[self.ino.add_watch(str(replica / sub), REPLICA_EVENTS)] = ("dst", sub)
        self.lock = threading.Lock()
        self.pending: dict[str, Pending] = {}
        self.done: list[float] = []
        self.in_place = 0  # IN_CLOSE_WRITE under a final name on the replica
        self.overflows = 0
        self.stop_flag = threading.Event()

    def expect(self, p: Pending) -> None:
        with self.lock:
            self.pending[p.rel] = p

    def outstanding(self) -> int:
        with self.lock:
            return len(self.pending)

    def take(self) -> tuple[list[float], int]:
        """Latencies so far and in-place writes so far; both start again from zero."""
        with self.lock:
            out, self.done = self.done, []
            n, self.in_place = self.in_place, 0
            return out, n

    def sweep(self) -> tuple[int, int]:
        """After a drain timed out: (files on the replica whose event was never seen,
        files not on the replica). Forgets them all."""
        with self.lock:
            left, self.pending = list(self.pending.values()), {}
        there = sum(1 for p in left if file_digest(str(self.replica / p.rel)) == p.digest)
        return there, len(left) - there

    def run(self) -> None:
        try:
            while not self.stop_flag.is_set():
                got = events(self.ino)
                now = time.monotonic()
                for wd, mask, name in got:
                    if mask & IN.Q_OVERFLOW:
                        self.overflows += 1
                        continue
                    if name is None:
                        continue
                    side, sub = self.sides.get(wd, ("", ""))
                    if not side or name.startswith("."):
                        continue  # rsync's temporary files are dot-named
                    self._event(side, f"{sub}/{name}", mask, now)
        finally:
            self.ino.close()

    def _event(self, side: str, rel: str, mask: int, now: float) -> None:
        with self.lock:
            p = self.pending.get(rel)
            if side == "src":
                if p is not None and p.closed is None:
                    p.closed = now
                return
            if mask & IN.CLOSE_WRITE:
                self.in_place += 1
        if p is None or p.closed is None:
            return
        # hashed outside the lock: the writer must not wait for it
        if file_digest(os.path.join(self.replica, rel)) != p.digest:
            return  # not the final bytes yet: wait for the next event under this name
        with self.lock:
            if self.pending.pop(rel, None) is not None:
                self.done.append(now - p.closed)

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(5)


class Renames(threading.Thread):
    """Monotonic time of each IN_MOVED_TO / IN_CREATE of a non-dot name in one directory."""

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.ino = Inotify()
        self.ino.add_watch(str(directory), IN.MOVED_TO | IN.CREATE)
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop_flag.is_set():
                got = events(self.ino)
                now = time.monotonic()
                for _wd, _mask, name in got:
                    if name is None or name.startswith("."):
                        continue
                    with self.cond:
                        self.seen.setdefault(name, now)
                        self.cond.notify_all()
        finally:
            self.ino.close()

    def wait_for(self, name: str, timeout: float = 10.0) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: name in self.seen, timeout)
            return self.seen.get(name)

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(5)
