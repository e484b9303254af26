"""The stream road's wire format, spoken over one ssh session between the replicator
(`backup/stream.py`) and `sentinel receive` (`backup/receiver.py`).

A frame is a 4-byte big-endian length, a JSON object of that many bytes, and, for a file,
the file's bytes (as many as its `size`). Paths travel as JSON strings: a file name that
is not UTF-8 is carried by Python's surrogate escapes (`os.fsdecode`), which JSON's
`\\udcXX` escapes keep intact both ways.

The sender says `hello` (version, the marker text the replica root must hold), then per
batch `batch` (its time, which names the versions' stamp), `file` and `delete` entries, and
`end` (the implied directories' attributes); the receiver answers each `hello` and `end`
with one frame. It never sends file content back: the session is write-only, like the
`rrsync -wo` key.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

VERSION = 1
# An end frame names every implied directory of a batch, a reply every name of it (a
# non-UTF-8 byte travels as six characters).
MAX_HEADER = 32 << 20
# Bigger files go through rsync: its --partial-dir resumes an interrupted transfer, and
# each side holds one file of the stream in memory.
STREAM_MAX = 16 << 20
# Per batch, what the receiver holds until the batch ends: at most this many entries, each
# name at most PATH_MAX bytes (Linux's own limit for a path).
MAX_ENTRIES = 20_000
PATH_MAX = 4096
MAX_NAMES = 1 << 20  # characters of all the batch's names together
_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side broke the protocol (or the session ended inside a frame)."""


def encode(header: dict[str, Any], data: bytes = b"") -> bytes:
    body = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return _LEN.pack(len(body)) + body + data


def decode(body: bytes) -> dict[str, Any]:
    try:
        header = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"a frame that is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("a frame that is not a JSON object")
    return header


def header_length(prefix: bytes) -> int:
    (n,) = _LEN.unpack(prefix)
    if n > MAX_HEADER:
        raise ProtocolError(f"a frame header of {n} bytes (at most {MAX_HEADER})")
    return n


def read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if data is None or len(data) != n:
        raise ProtocolError("the session ended inside a frame")
    return data


def read_header(f: BinaryIO) -> dict[str, Any] | None:
    """The next frame's header; None at a clean end (the session closed between frames)."""
    prefix = f.read(_LEN.size)
    if not prefix:
        return None
    if len(prefix) != _LEN.size:
        raise ProtocolError("the session ended inside a frame")
    return decode(read_exact(f, header_length(prefix)))


def field(header: dict[str, Any], key: str, kind: type) -> Any:
    """`header[key]`, which must be of `kind` (a bool is no int here)."""
    value = header.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"frame {header.get('op')!r}: {key!r} is not a {kind.__name__}")
    return value
