"""inotify through libc: the watches and the events, as plain integers and strings.

asyncinotify did this before. Its reading built, per event, a ctypes structure, a `Path`
of the name (which the watcher turned back into a string), a `Mask` flag enum and an
`Event`, and parsing was a third of the watcher's Python time at 20 writes/s (py-spy of
`bench/batch_cpu.py`, BENCHMARKS.md issue 18). What the watcher needs is three libc calls
and `struct` over the bytes `read` returns, so the bindings are here (inotify(7)).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import weakref

# inotify(7), <sys/inotify.h>: the kernel's ABI, not a library's choice
ATTRIB = 0x00000004
CLOSE_WRITE = 0x00000008
MOVED_FROM = 0x00000040
MOVED_TO = 0x00000080
CREATE = 0x00000100
DELETE = 0x00000200
DELETE_SELF = 0x00000400
MOVE_SELF = 0x00000800
Q_OVERFLOW = 0x00004000
IGNORED = 0x00008000
ONLYDIR = 0x01000000
DONT_FOLLOW = 0x02000000
EXCL_UNLINK = 0x04000000
ISDIR = 0x40000000

# a read holds whole events only; 16 KiB is ~60 events with long names, ~1,000 without
READ_SIZE = 16 << 10
_HEADER = struct.Struct("=iIII")  # wd, mask, cookie, len (struct inotify_event)

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_init1.restype = ctypes.c_int
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_add_watch.restype = ctypes.c_int
_libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.inotify_rm_watch.restype = ctypes.c_int

Event = tuple[int, int, str | None]  # wd, mask, name (None: about the watched dir itself)


def _error(path: str | None = None) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, os.strerror(code), path)


class Inotify:
    """One inotify instance: non-blocking, closed on exec."""

    def __init__(self) -> None:
        fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise _error()
        self._fd: int | None = fd
        self._closer = weakref.finalize(self, os.close, fd)  # one its owner forgot

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError("the inotify instance is closed")
        return self._fd

    def add_watch(self, path: str, mask: int) -> int:
        """The watch descriptor of `path` (the same one when it is watched already)."""
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise _error(path)
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        if _libc.inotify_rm_watch(self.fd, wd) < 0:
            raise _error()

    def read(self) -> list[Event]:
        """The events queued now; BlockingIOError when there are none."""
        data = os.read(self.fd, READ_SIZE)
        events: list[Event] = []
        offset, end = 0, len(data)
        unpack = _HEADER.unpack_from
        size = _HEADER.size
        while offset < end:
            wd, mask, _cookie, length = unpack(data, offset)
            offset += size
            name = None
            if length:
                raw = data[offset : offset + length].split(b"\0", 1)[0]
                name = os.fsdecode(raw) if raw else None
                offset += length
            events.append((wd, mask, name))
        return events

    def close(self) -> None:
        if self._fd is not None:
            self._closer()
            self._fd = None
