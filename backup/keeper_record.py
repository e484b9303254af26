"""The two small files the room and the keeper exchange through the replication channel.

The room daemon ships a heartbeat (`.sentinel-heartbeat.json`, at the landing area's root)
every few seconds, after the data it describes, over the same rsync path as the data. The
keeper answers with a receipt (`receipt.json`, in a directory only the keeper writes and the
room may read back): the newest moment up to which every change from the room has arrived
and been snapshotted ("data safe as of").

The keeper parses a heartbeat written by a host that may be owned by an attacker: both
parsers bound the size, check every type and raise `RecordError` with a clear reason instead
of trusting the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backup.rsync import COMMON_ARGS, run_rsync
from backup.target import Target

HEARTBEAT_FILE = ".sentinel-heartbeat.json"
RECEIPT_FILE = "receipt.json"
FORMAT = 1
# A heartbeat with a few dozen alarms is a few KiB; anything much larger is not ours.
MAX_BYTES = 64 * 1024
MAX_ALARMS = 50


class RecordError(ValueError):
    """A heartbeat or receipt that cannot be trusted (not JSON, wrong types, too large)."""


@dataclass(frozen=True, slots=True)
class AlarmNote:
    """One active alarm as the room saw it when it wrote the heartbeat."""

    id: str
    kind: str
    severity: str
    location: str = ""
    since: float | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What the room says about itself. Times are the room's clock (seconds since epoch).

    `synced_through`: every change the room saw at its source before this moment has been
    shipped (the oldest pending change's time, or `ts` when nothing is pending).
    `urgent`: set when a critical room alarm wants a receipt covering `synced_through` now.
    """

    room: str
    replication: str
    ts: float
    seq: int
    pending: int
    rpo: float
    synced_through: float
    alarms: tuple[AlarmNote, ...] = ()
    urgent: float | None = None
    site: str = ""
    format: int = FORMAT

    def to_json(self) -> str:
        data = asdict(self)
        data["alarms"] = [asdict(a) for a in self.alarms]
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @property
    def critical_alarms(self) -> tuple[AlarmNote, ...]:
        return tuple(a for a in self.alarms if a.severity == "critical")


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the keeper confirms to a room. `safe_as_of` is in the room's clock (it is the
    `synced_through` of a heartbeat the keeper read before taking a snapshot that holds
    everything that heartbeat described); `snapshot_ts` and `written` are the keeper's.
    `answered` is the `urgent` value of the newest heartbeat this receipt answers."""

    room: str
    safe_as_of: float | None
    snapshot: str | None
    snapshot_ts: float | None
    written: float
    answered: float | None = None
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)


def parse_heartbeat(raw: bytes) -> Heartbeat:
    data = _load(raw, "heartbeat")
    alarms_raw = data.get("alarms", [])
    if not isinstance(alarms_raw, list):
        raise RecordError("heartbeat: alarms is not a list")
    alarms = tuple(
        AlarmNote(
            id=_text(a, "id"),
            kind=_text(a, "kind"),
            severity=_text(a, "severity"),
            location=_text(a, "location", default=""),
            since=_number(a, "since", optional=True),
        )
        for a in (_object(x, "heartbeat alarm") for x in alarms_raw[:MAX_ALARMS])
    )
    return Heartbeat(
        room=_text(data, "room"),
        replication=_text(data, "replication", default=""),
        ts=_number(data, "ts"),
        seq=int(_number(data, "seq")),
        pending=int(_number(data, "pending")),
        rpo=_number(data, "rpo"),
        synced_through=_number(data, "synced_through"),
        alarms=alarms,
        urgent=_number(data, "urgent", optional=True),
        site=_text(data, "site", default=""),
        format=int(_number(data, "format")),
    )


def parse_receipt(raw: bytes) -> Receipt:
    data = _load(raw, "receipt")
    extra = data.get("extra", {})
    return Receipt(
        room=_text(data, "room"),
        safe_as_of=_number(data, "safe_as_of", optional=True),
        snapshot=_text(data, "snapshot", default=None),
        snapshot_ts=_number(data, "snapshot_ts", optional=True),
        written=_number(data, "written"),
        answered=_number(data, "answered", optional=True),
        format=int(_number(data, "format")),
        extra=extra if isinstance(extra, dict) else {},
    )


def read_heartbeat(path: Path) -> Heartbeat:
    return parse_heartbeat(_read(path))


def read_receipt(path: Path) -> Receipt:
    return parse_receipt(_read(path))


def write_atomic(path: Path, text: str, *, mode: int = 0o644, sync_dir: bool = False) -> None:
    """Write, fsync and rename, so a reader (or rsync) never sees half a record.
    `sync_dir`: the directory is fsynced too, so the new name itself survives a power loss
    (needed when the caller deletes something on the strength of it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _read(path: Path) -> bytes:
    """The file's first bytes, never blocking: the writer may put a FIFO (or a symlink to
    one) at the heartbeat's name, and a plain open() of a FIFO waits for a writer for ever,
    which would freeze the keeper's event loop and every room with it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RecordError(f"{path.name} is not a regular file")
        chunks = []
        left = MAX_BYTES + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _load(raw: bytes, what: str) -> dict[str, Any]:
    if len(raw) > MAX_BYTES:
        raise RecordError(f"{what}: larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{what}: not JSON ({exc})") from None
    data = _object(data, what)
    if data.get("format") != FORMAT:
        raise RecordError(f"{what}: format {data.get('format')!r}, expected {FORMAT}")
    return data


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"{what}: expected an object")
    return value


_MISSING = object()


def _text(data: dict[str, Any], key: str, default: Any = _MISSING) -> Any:
    value = data.get(key, default)
    if value is _MISSING:
        raise RecordError(f"{key}: missing")
    if value is None and default is None:
        return None
    if not isinstance(value, str) or len(value) > 200:
        raise RecordError(f"{key}: expected a short text")
    return value


def _number(data: dict[str, Any], key: str, *, optional: bool = False) -> Any:  # float | None
    value = data.get(key)
    if value is None:
        if optional:
            return None
        raise RecordError(f"{key}: missing")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecordError(f"{key}: expected a number")
    return float(value)


async def fetch_receipt(
    source: Target,
    runtime_dir: Path,
    work: Path,
    *,
    io_timeout: float = 60,
    time_limit: float | None = None,
) -> Receipt:
    """The keeper's receipt: read in place for a local keeper, else pulled with rsync into
    `work` (the room's heartbeat component and `backup drill` both read it so)."""
    local = source.local_root
    if local is not None:
        return await asyncio.to_thread(read_receipt, local)
    dest = work / RECEIPT_FILE
    result = await run_rsync(
        [
            "-I",
            *COMMON_ARGS,
            f"--timeout={max(1, int(io_timeout))}",
            *source.transport_args(runtime_dir),
            source.url,
            str(dest),
        ],
        time_limit=time_limit if time_limit is not None else max(io_timeout, 30),
    )
    if not result.ok:
        raise RecordError(f"rsync exit {result.exit_code}: {result.error}")
    return await asyncio.to_thread(read_receipt, dest)
