"""The stream road: plain files to an ssh replica over one session for the daemon's life.

Over ssh every batch used to be an rsync run: an rsync and an ssh client started, a
second rsync on the backup host, about 15 ms of CPU for two small files, where lsyncd's
one run a second cost it less at 20 writes/s (docs: issue 18). With a second key whose
forced command is `sentinel receive DIR` (`backup/receiver.py`), the replicator keeps one
ssh session open and sends each batch's plain files down it (`backup/stream_frames.py`);
the receiver writes them as the local copy writes a local replica.

What is not a plain case (directories, symlinks, hard links, big or sparse files, names
the filters or the quarantine hold), what the receiver hands back, and every batch while
the session is down go through rsync as before: the stream can make a batch cheaper,
never lose one. A session that fails is restarted after 1 s, then twice as long each
time (at most a minute); meanwhile the log and status say it is down and why.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import select
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from backup.local_copy import (
    Fallback,
    LocalShip,
    Source,
    locked_in_thread,
    ship_local,
    unchanged,
)
from backup.markers import target_text
from backup.spec import ReplicationSpec
from backup.stream_frames import (
    MAX_ENTRIES,
    MAX_NAMES,
    PATH_MAX,
    STREAM_MAX,
    VERSION,
    ProtocolError,
    decode,
    encode,
    header_length,
)
from backup.transport.ssh import SshTarget

log = logging.getLogger("backup.stream")

RETRY_FIRST = 1.0
RETRY_MAX = 60.0
PIPE_SIZE = 1 << 20  # Linux's default most for an unprivileged process
_STOP_EVERY = 0.5  # seconds: how soon a wait notices that the batch was cancelled
_STDERR_KEEP = 2000


class StreamDown(Exception):
    """The session failed: its batch goes through rsync, the next one after a pause."""


def usable(spec: ReplicationSpec) -> bool:
    """The in-process copy (a local replica) or the stream (an ssh one with a stream key)
    ships a batch's plain files; False: rsync ships everything."""
    if not spec.local_copy:
        return False
    return spec.target.local_root is not None or _command(spec) is not None


def streams(spec: ReplicationSpec) -> bool:
    """The spec's plain files go over a stream session (its runs are cheap)."""
    return spec.local_copy and _command(spec) is not None


def _command(spec: ReplicationSpec) -> list[str] | None:
    target = spec.target
    return target.stream_command() if isinstance(target, SshTarget) else None


async def ship_plain(
    spec: ReplicationSpec, paths: Sequence[str], now: float, *, skip: Iterable[str] = ()
) -> LocalShip:
    """The plain cases of `paths` by the local copy or the stream; the rest for rsync."""
    if spec.target.local_root is not None:
        return await ship_local(spec, paths, now, skip=skip)
    session = session_for(spec)
    if session is None:
        return LocalShip(rest=list(paths))
    return await locked_in_thread(
        spec, functools.partial(session.ship, spec, list(paths), now, frozenset(skip))
    )


_sessions: dict[tuple[str, ...], StreamSession] = {}


def _key(spec: ReplicationSpec) -> tuple[str, ...] | None:
    # per replication: two replications never share a session (and so its thread), even
    # with one key (the config refuses that: one forced command, one directory)
    argv = _command(spec)
    return None if argv is None else (spec.name, *argv)


def session_for(spec: ReplicationSpec) -> StreamSession | None:
    key = _key(spec)
    if key is None:
        return None
    session = _sessions.get(key)
    if session is None:
        session = _sessions[key] = StreamSession(list(key[1:]), spec.name)
    return session


def close_session(spec: ReplicationSpec) -> None:
    """Ends the spec's session (the replicator stopped): the receiver sees the end of its
    input and exits. In a thread of its own: a hung link takes a second to kill, and the
    event loop (the alarms) must not wait for it."""
    key = _key(spec)
    session = _sessions.pop(key, None) if key is not None else None
    if session is not None and session.link is not None:
        threading.Thread(target=session.close, name="stream-close", daemon=True).start()


@dataclass(frozen=True, slots=True)
class StreamState:
    up: bool
    error: str | None
    down_since: float | None  # wall-clock
    files: int  # shipped over the stream since the daemon started


def state_of(spec: ReplicationSpec) -> StreamState | None:
    """For status: None when the spec has no stream."""
    key = _key(spec)
    if key is None:
        return None
    session = _sessions.get(key)
    if session is None:
        return StreamState(False, None, None, 0)
    link = session.link
    error = session.error
    if link is not None and error is None and link.proc.poll() is not None:
        # ended while idle (the backup host rebooted, ssh's keepalive gave up): said now,
        # not only when the next batch finds out (poll: one waitpid that never blocks)
        error = "the session ended; the next batch opens a new one"
    return StreamState(link is not None and error is None, error, session.down_since, session.files)


class _Link:
    """One ssh process and its pipes, read and written without blocking, each wait at
    most `timeout` seconds."""

    def __init__(self, argv: list[str], timeout: float) -> None:
        self.timeout = timeout
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        self.efd = self.proc.stderr.fileno()
        for fd in (self.wfd, self.rfd, self.efd):
            os.set_blocking(fd, False)
        # a batch of a few 100 KiB files fits the pipe at once: with the default 64 KiB
        # each batch was a dozen write, poll and wake-up rounds on both ends
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.wfd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self._buf = bytearray()
        self._stderr = bytearray()
        self.stop = threading.Event()  # the current batch's: set when it is cancelled

    def close(self) -> None:
        """The end of input first: the receiver finishes cleanly and ssh exits; killed
        when it has not within a second (a hung connection)."""
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(1)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    def why(self) -> str:
        """What ssh or the receiver said on stderr (its last line), if anything."""
        self._drain_stderr()
        lines = [ln for ln in self._stderr.decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1].strip() if lines else ""

    def _drain_stderr(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self.efd, 65536):
                self._stderr += chunk
                del self._stderr[:-_STDERR_KEEP]

    def _wait(self, fd: int, event: int) -> None:
        """Until `fd` is ready, at most `timeout` seconds in all (messages on stderr do not
        count as progress), and no longer than the next check of `stop`."""
        poll = select.poll()
        poll.register(fd, event)
        poll.register(self.efd, select.POLLIN)  # ssh's messages must not fill their pipe
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StreamDown(f"no progress for {self.timeout:g} s")
            if self.stop.is_set():
                raise StreamDown("stopped")
            ready = poll.poll(min(left, _STOP_EVERY) * 1000)
            for f, ev in ready:
                if f == self.efd:
                    self._drain_stderr()
                    if ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                        poll.unregister(self.efd)  # closed: it would be ready forever
                elif f == fd:
                    if ev & (select.POLLERR | select.POLLNVAL) or (
                        ev & select.POLLHUP and not ev & select.POLLIN
                    ):
                        raise StreamDown(self._ended())
                    return
            if self.proc.poll() is not None:
                raise StreamDown(self._ended())

    def _ended(self) -> str:
        why = self.why()
        code = self.proc.poll()
        return f"the session ended (exit {code})" + (f": {why}" if why else "")

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.wfd, view) :]
            except BlockingIOError:
                self._wait(self.wfd, select.POLLOUT)
            except BrokenPipeError:
                raise StreamDown(self._ended()) from None

    def recv(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                chunk = os.read(self.rfd, max(65536, n - len(self._buf)))
            except BlockingIOError:
                self._wait(self.rfd, select.POLLIN)
                continue
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(1)
                raise StreamDown(self._ended())
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def recv_frame(self) -> dict[str, Any]:
        return decode(self.recv(header_length(self.recv(4))))


class StreamSession:
    """The session of one target and key; used by one batch at a time (the target lock)."""

    def __init__(self, argv: list[str], name: str) -> None:
        self.argv = argv
        self.name = name
        self.link: _Link | None = None
        self.error: str | None = None
        self.down_since: float | None = None
        self.files = 0
        self._seq = 0  # numbers the batches: a reply must answer the batch just sent
        self._retry_at = 0.0
        self._backoff = RETRY_FIRST

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    def ship(
        self,
        spec: ReplicationSpec,
        paths: list[str],
        now: float,
        skip: frozenset[str],
        stop: threading.Event,
    ) -> LocalShip:
        if self.link is None:
            if time.monotonic() < self._retry_at:
                return LocalShip(rest=paths)
            try:
                self.link = self._connect(spec, stop)
            except (OSError, StreamDown, ProtocolError, ValueError) as exc:
                if not stop.is_set():  # cancelled while connecting: no outage
                    self._down(str(exc))
                return LocalShip(rest=paths)
        self.link.stop = stop
        try:
            out = self._ship(self.link, spec, paths, now, skip, stop)
        except (OSError, StreamDown, ProtocolError, ValueError) as exc:
            # what the receiver did of this batch is unknown: rsync ships all of it (what
            # arrived already is found equal by its quick check)
            if stop.is_set():
                self.close()  # cancelled (the replicator stops): not a failure to report
            else:
                self._down(str(exc))
            return LocalShip(rest=paths)
        if self.error is not None:
            log.warning("replication %s: the stream is up again", self.name)
        self.error = None
        self.down_since = None
        self._backoff = RETRY_FIRST
        return out

    def _connect(self, spec: ReplicationSpec, stop: threading.Event) -> _Link:
        link = _Link(self.argv, max(1.0, spec.timeout))
        link.stop = stop
        try:
            link.send(encode({"op": "hello", "version": VERSION, "marker": target_text(spec.name)}))
            reply = link.recv_frame()
            if reply.get("op") != "hello" or reply.get("version") != VERSION:
                raise ProtocolError(f"the receiver answered {reply!r:.200}")
        except BaseException:
            link.close()
            raise
        return link

    def _down(self, why: str) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.error is None:
            log.warning(
                "replication %s: the stream is down (%s); rsync ships every batch until it is back",
                self.name,
                why,
            )
            self.down_since = time.time()
        self.error = why
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(RETRY_MAX, self._backoff * 2)

    def _ship(
        self,
        link: _Link,
        spec: ReplicationSpec,
        paths: list[str],
        now: float,
        skip: frozenset[str],
        stop: threading.Event,
    ) -> LocalShip:
        out = LocalShip()
        try:
            source = Source(spec, skip, STREAM_MAX)
        except OSError:
            out.rest = list(paths)  # a missing source: rsync sees (and reports) it
            return out
        sent: set[str] = set()
        names = 0
        dirs: dict[str, list[int] | None] = {}
        self._seq += 1
        try:
            link.send(encode({"op": "batch", "ts": now, "seq": self._seq}))
            for rel in paths:
                if (
                    stop.is_set()
                    or len(sent) >= MAX_ENTRIES
                    or len(rel) > PATH_MAX
                    or names + len(rel) > MAX_NAMES
                ):
                    out.rest.append(rel)
                    continue
                try:
                    frame = _entry(source, rel, dirs)
                except (Fallback, OSError):
                    out.rest.append(rel)
                    continue
                link.send(frame)
                sent.add(rel)
                names += len(rel)
        finally:
            source.close()
        link.send(encode({"op": "end", "dirs": dirs}))
        reply = link.recv_frame()
        done, rest, output = reply.get("done"), reply.get("rest"), reply.get("output")
        if (
            reply.get("op") != "done"
            or not isinstance(done, list)
            or not isinstance(rest, list)
            or not isinstance(output, list)
            or reply.get("seq") != self._seq
            or not all(isinstance(p, str) for p in done)
            or not sent.issuperset(done)
            or not all(isinstance(line, str) for line in output)
        ):
            raise ProtocolError(f"the receiver answered {reply!r:.200}")
        refused = reply.get("refused")
        if refused:
            # a wrong replica stays wrong for a while: no batch crosses the link for
            # nothing until the next try (rsync's marker check says what is wrong)
            raise StreamDown(f"the receiver refuses batches: {refused!s:.300}")
        out.done = list(done)
        out.rest += sorted(sent.difference(done))
        out.output = output
        out.kept_versions = bool(reply.get("kept_versions"))
        self.files += len(out.done)
        return out


def _entry(source: Source, rel: str, dirs: dict[str, list[int] | None]) -> bytes:
    """The frame for `rel` (a file with its bytes, or a deletion); the attributes of its
    implied directories go into `dirs`."""
    parts = source.check_name(rel)
    sdir = source.open_parent(parts)
    try:
        s = source.plain(rel, parts[-1], sdir)
        if s is None:
            frame = encode({"op": "delete", "path": rel})
        else:
            src, before = source.open_file(parts[-1], sdir)
            try:
                data = _read_all(src, s.st_size)
                if not unchanged(s, before, os.fstat(src), len(data)):
                    raise Fallback(rel)
            finally:
                os.close(src)
            header = {
                "op": "file",
                "path": rel,
                "mode": s.st_mode,
                "uid": s.st_uid,
                "gid": s.st_gid,
                "size": len(data),
                "mtime_ns": s.st_mtime_ns,
            }
            frame = encode(header, data)
    finally:
        os.close(sdir)
    for i in range(len(parts) - 1, 0, -1):
        d = "/".join(parts[:i])
        if d in dirs:
            break  # and every directory above it
        try:
            ds = source.dir_stat(d)
            dirs[d] = [ds.st_mode, ds.st_uid, ds.st_gid, ds.st_mtime_ns]
        except (Fallback, OSError):
            dirs[d] = None  # the receiver hands the file back: rsync's
    return frame


def _read_all(fd: int, size: int) -> bytes:
    """Up to one byte more than `size`: a file that grew is seen as changed."""
    chunks = []
    left = size + 1
    while left > 0:
        chunk = os.read(fd, min(left, 8 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
