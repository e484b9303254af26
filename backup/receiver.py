"""`sentinel receive DIR`: the backup host's end of the stream road (docs/transport.md).

sshd starts it as the forced command of the stream key, so DIR is fixed on the backup
host, not chosen by the sender. It reads frames (`backup/stream_frames.py`) on stdin and
writes each plain file into DIR the way rsync --backup would (`backup/replica_writer.py`:
temporary file, the replaced file to the versions, rename), then answers each batch with
rsync's itemized lines. What it cannot do as a plain case it hands back, and the sender
ships it with rsync.

What the key can do, and no more:
* write and delete below DIR, never through a symlink, never `..`, never the protected
  names (versions, partial dir, markers, the keeper's heartbeat); a deleted or replaced
  file goes to the versions, as with `rrsync -wo` and `--backup`;
* nothing is read back: the answers name only paths the sender sent;
* a batch is refused when DIR's marker does not name the sender's replication (an
  unmounted disk, another replica): the sender then goes through rsync, which says why.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import logging
import os
import select
import stat
import sys
from pathlib import Path
from typing import Any, BinaryIO

from backup.markers import TARGET_MARKER
from backup.replica_writer import DirAttrs, Fallback, ReplicaWriter, open_temp_dir
from backup.stream_frames import (
    MAX_ENTRIES,
    MAX_NAMES,
    PATH_MAX,
    STREAM_MAX,
    VERSION,
    ProtocolError,
    encode,
    field,
    read_exact,
    read_header,
)
from backup.target import PARTIAL_DIR
from backup.transfer import PROTECTED
from backup.versions import stamp

log = logging.getLogger("backup.receiver")

_ID_MAX = (1 << 32) - 1  # (uid_t)-1 means "leave it" to chown


class Refused(Exception):
    """The whole session cannot go on (no DIR, another receiver writing it)."""


class Receiver:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.marker_text = ""
        self._out_fd: int | None = None
        self._marker_seen: tuple[int, ...] | None = None
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise Refused(f"cannot open {root}: {exc.strerror}") from None
        try:
            self._lock = open_temp_dir(fd)
        except OSError as exc:
            raise Refused(f"cannot make {root}/{PARTIAL_DIR}: {exc.strerror}") from None
        finally:
            os.close(fd)
        try:
            # batches are serial within one receiver; a second one would clear this one's
            # temporary files when it starts a batch
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise Refused(f"another sentinel receive is writing {root}") from None
            raise

    def close(self) -> None:
        os.close(self._lock)

    def serve(self, rfile: BinaryIO, wfile: BinaryIO) -> None:
        hello = read_header(rfile)
        if hello is None:
            return
        if hello.get("op") != "hello" or field(hello, "version", int) != VERSION:
            raise ProtocolError(f"expected hello version {VERSION}, found {hello!r:.200}")
        self.marker_text = field(hello, "marker", str)
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._out_fd = wfile.fileno()
        wfile.write(encode({"op": "hello", "version": VERSION}))
        wfile.flush()
        while True:
            header = read_header(rfile)
            if header is None:
                return
            if header.get("op") != "batch":
                raise ProtocolError(f"expected a batch, found {header.get('op')!r:.80}")
            ts = header.get("ts")
            if not isinstance(ts, int | float) or isinstance(ts, bool) or not 0 < ts < 1e11:
                raise ProtocolError(f"a batch time that is no time: {ts!r:.80}")
            reply = self._batch(rfile, float(ts))
            reply["seq"] = header.get("seq")  # which batch this answers
            wfile.write(encode(reply))
            wfile.flush()

    def _batch(self, rfile: BinaryIO, ts: float) -> dict[str, Any]:
        refused = self._marker_problem()
        writer: ReplicaWriter | None = None
        if refused is None:
            try:
                writer = ReplicaWriter(self.root, stamp(ts))
            except OSError as exc:
                refused = f"cannot write {self.root}: {exc.strerror}"
        done: list[str] = []
        rest: list[str] = []
        output: list[str] = []
        names = 0
        try:
            while True:
                entry = read_header(rfile)
                if entry is None:
                    raise ProtocolError("the session ended inside a batch")
                op = entry.get("op")
                if op == "end":
                    dirs = field(entry, "dirs", dict)
                    break
                rel = field(entry, "path", str)
                if len(rel) > PATH_MAX:
                    raise ProtocolError(f"a name of {len(rel)} characters (at most {PATH_MAX})")
                if len(done) + len(rest) >= MAX_ENTRIES:
                    raise ProtocolError(f"more than {MAX_ENTRIES} entries in one batch")
                names += len(rel)
                if names > MAX_NAMES:
                    raise ProtocolError(f"more than {MAX_NAMES} characters of names in a batch")
                if op == "file":
                    size = field(entry, "size", int)
                    if not 0 <= size <= STREAM_MAX:
                        raise ProtocolError(f"a file of {size} bytes (at most {STREAM_MAX})")
                    data = read_exact(rfile, size)
                elif op != "delete":
                    raise ProtocolError(f"unknown entry {op!r:.80}")
                if writer is None:
                    rest.append(rel)
                    continue
                if self._sender_gone():
                    # The sender gave up on this session (a stall here longer than its
                    # timeout) and hands the batch to rsync: what is still buffered must
                    # not be renamed over what rsync writes now.
                    raise ProtocolError("the sender closed the session inside a batch")
                try:
                    lines = self._one(writer, rel, entry, data if op == "file" else None)
                except (Fallback, OSError, ValueError):  # ValueError: a NUL in a name
                    rest.append(rel)
                    continue
                done.append(rel)
                output += lines
            if writer is not None:
                failed = set()
                for rel in done:
                    try:
                        output += writer.implied_dirs(rel, functools.partial(_dir_attrs, dirs))
                    except (Fallback, OSError, ValueError, ProtocolError):
                        failed.add(rel)
                if failed:  # a set, not list.remove: 20,000 entries must not cost 10^8 steps
                    done = [rel for rel in done if rel not in failed]
                    rest += sorted(failed)
        finally:
            if writer is not None:
                writer.close()
        # Append versions are kept here, as rsync's road keeps them on a remote replica:
        # dropping one compares it with the current file and rewrites the stamp's records,
        # by paths a sender with the rsync key could replace with links meanwhile, and a
        # sender choosing an older batch time would have an older stamp's versions dropped.
        kept = writer is not None and writer.kept_versions
        return {
            "op": "done",
            "done": done,
            "rest": rest,
            "output": output,
            "kept_versions": kept,
            "refused": refused,
        }

    def _one(
        self, writer: ReplicaWriter, rel: str, entry: dict[str, Any], data: bytes | None
    ) -> list[str]:
        parts = _parts(rel)
        ddir = writer.open_dir(parts[:-1])
        try:
            if data is None:
                return writer.delete(rel, parts, ddir)
            mode, uid, gid, mtime_ns = _in_range(
                rel, *(field(entry, k, int) for k in ("mode", "uid", "gid", "mtime_ns"))
            )
            want = writer.wanted(mode, uid, gid, len(data), mtime_ns)
            return writer.put(rel, parts, ddir, want, lambda fd: _write_all(fd, data))
        finally:
            os.close(ddir)

    def _sender_gone(self) -> bool:
        """sshd closed our stdout's other end: the sender's ssh is gone."""
        if self._out_fd is None:
            return False
        poll = select.poll()
        poll.register(self._out_fd, 0)  # POLLERR and POLLHUP are always reported
        return bool(poll.poll(0))

    def _marker_problem(self) -> str | None:
        """Why this batch may not be written here, or None: the marker must be the one
        the sender expects. Read again only when its stat identity changed."""
        path = os.path.join(self.root, TARGET_MARKER)
        try:
            st = os.stat(path, follow_symlinks=False)
            seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if seen == self._marker_seen:
                return None
            if not stat.S_ISREG(st.st_mode):
                return f"{TARGET_MARKER} is not a file"
            # no link followed, no FIFO swapped in after the stat waited for
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    return f"{TARGET_MARKER} is not a file"
                text = os.read(fd, 65536).decode(errors="replace")
            finally:
                os.close(fd)
        except FileNotFoundError:
            self._marker_seen = None
            return f"no {TARGET_MARKER} in the replica root"
        except OSError as exc:
            self._marker_seen = None
            return f"cannot read {TARGET_MARKER}: {exc.strerror}"
        if text != self.marker_text:
            self._marker_seen = None
            return f"{TARGET_MARKER} names another replication"
        self._marker_seen = seen
        return None


def _parts(rel: str) -> list[str]:
    parts = rel.split("/")
    if any(p in ("", ".", "..", PARTIAL_DIR) for p in parts) or parts[0] in PROTECTED:
        raise Fallback(rel)
    return parts


def _dir_attrs(dirs: dict[str, Any], d: str) -> DirAttrs:
    """Directory `d`'s attributes as the batch's end frame gave them."""
    attrs = dirs.get(d)
    if (
        not isinstance(attrs, list)
        or len(attrs) != 4
        or not all(isinstance(a, int) and not isinstance(a, bool) for a in attrs)
    ):
        raise Fallback(d)  # the sender could not say: rsync's
    return _in_range(d, *attrs)


def _in_range(rel: str, mode: int, uid: int, gid: int, mtime_ns: int) -> DirAttrs:
    """Attributes the system calls take (a huge number would raise OverflowError there);
    anything else is rsync's to ship."""
    if not (0 <= mode < 1 << 32 and 0 <= uid < _ID_MAX and 0 <= gid < _ID_MAX):
        raise Fallback(rel)
    if not -(1 << 62) < mtime_ns < 1 << 62:
        raise Fallback(rel)
    return mode, uid, gid, mtime_ns


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main(root: Path) -> int:
    """Serves stdin/stdout until the sender closes the session; exit 0 then, else 1 with
    the reason on stderr (ssh hands it to the sender, whose log and status show it)."""
    logging.basicConfig(level=logging.WARNING, format="sentinel receive: %(message)s")
    try:
        receiver = Receiver(root)
    except Refused as exc:
        print(f"sentinel receive: {exc}", file=sys.stderr)
        return 1
    try:
        receiver.serve(sys.stdin.buffer, sys.stdout.buffer)
    except (ProtocolError, OSError) as exc:
        print(f"sentinel receive: {exc}", file=sys.stderr)
        return 1
    except RecursionError:  # JSON nested beyond Python's limit
        print("sentinel receive: a frame nested too deep", file=sys.stderr)
        return 1
    finally:
        receiver.close()
    return 0
