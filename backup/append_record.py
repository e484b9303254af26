"""Append records: what a dropped append version held, written where the version was.

When `backup.append_versions` removes a version because its bytes are the start of the
replica's newer file, the stamp directory keeps one small JSON record instead:
`<replica>/.sentinel-versions/<stamp>/.sentinel-versions/appended.json`, mapping each dropped
path to "the first `length` bytes of the next content of this path, whose SHA-256 is
`sha256`, with this mtime (ns), mode and owner". The next content is the path in the next
version set that holds it (a version file or another record: a chain), else the replica's
current file.

Why that name: `.sentinel-versions` is excluded at the root of every transfer
(`backup.transfer.PROTECT`), so rsync --backup can never put a document there, and a
restore that fetches a version set never copies the record as if it were one. The record
lives inside its stamp directory, so pruning the stamp prunes the record with it.

A restore rebuilds the content from the record only when the next content still starts
with those bytes (the digest says so); otherwise the path is left out and named.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from backup.keeper_record import write_atomic
from backup.rsync import run_rsync
from backup.target import VERSIONS_DIR, Target

RECORD_DIR = VERSIONS_DIR
RECORD_NAME = "appended.json"
FORMAT = 1
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AppendRecord:
    """One dropped version: its length, the digest of its bytes, and the attributes the
    version had (those of the file as it was then)."""

    length: int
    sha256: str
    mtime_ns: int
    mode: int
    uid: int
    gid: int


def record_path(stamp_dir: Path) -> Path:
    return stamp_dir / RECORD_DIR / RECORD_NAME


def write_records(stamp_dir: Path, records: dict[str, AppendRecord]) -> None:
    """Adds `records` (by path relative to the replica) to the stamp's record, atomically
    and durably: the caller removes the versions only after this returns."""
    path = record_path(stamp_dir)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    merged = read_records(path.read_bytes()) if path.exists() else {}
    merged.update(records)
    body = {"format": FORMAT, "files": {rel: asdict(r) for rel, r in sorted(merged.items())}}
    write_atomic(path, json.dumps(body, indent=1), mode=0o600, sync_dir=True)


def read_records(data: bytes) -> dict[str, AppendRecord]:
    """The records in one stamp's file; ValueError when it is not one."""
    try:
        body = json.loads(data)
        if body.get("format") != FORMAT:
            raise ValueError(f"unknown format {body.get('format')!r}")
        out: dict[str, AppendRecord] = {}
        for rel, fields in body["files"].items():
            record = AppendRecord(**fields)
            if not isinstance(rel, str) or rel.startswith("/") or ".." in rel.split("/"):
                raise ValueError(f"bad path {rel!r}")
            ints = ("length", "mtime_ns", "mode", "uid", "gid")
            if not all(type(getattr(record, n)) is int for n in ints) or not isinstance(
                record.sha256, str
            ):
                raise ValueError(f"bad record for {rel!r}")
            out[rel] = record
        return out
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


async def fetch_records(
    target: Target, runtime_dir: Path, stamps: list[str]
) -> tuple[dict[str, dict[str, AppendRecord]], list[str]]:
    """The records of `stamps` (by stamp, then path), read in one rsync over the versions
    directory, and a message per record file that could not be read."""
    if not stamps:
        return {}, []
    with tempfile.TemporaryDirectory(prefix="sentinel-records-") as tmp:
        result = await run_rsync(
            [
                "-r",
                "--prune-empty-dirs",
                *target.transport_args(runtime_dir),
                "--include=/*/",
                f"--include=/*/{RECORD_DIR}/",
                f"--include=/*/{RECORD_DIR}/{RECORD_NAME}",
                "--exclude=*",
                target.path(VERSIONS_DIR) + "/",
                tmp + "/",
            ]
        )
        if not result.ok:
            raise RuntimeError(f"reading the append records failed: {result.error}")
        records: dict[str, dict[str, AppendRecord]] = {}
        problems: list[str] = []
        for s in stamps:
            path = record_path(Path(tmp) / s)
            if not path.exists():
                continue
            try:
                records[s] = read_records(path.read_bytes())
            except (OSError, ValueError) as exc:
                problems.append(
                    f"version set {s}: its append record cannot be read ({exc}); the "
                    "appended files it describes are left out if it was their content then"
                )
        return records, problems


def open_beneath(root: Path, rel: str, flags: int) -> int:
    """Opens `root/rel` with `flags`, refusing a link in any component below `root` (the
    last one too: O_NOFOLLOW)."""
    parts = rel.split("/")
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            if part in ("", ".", ".."):
                raise OSError(errno.EINVAL, "unexpected path component", rel)
            nxt = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd
            )
            os.close(dfd)
            dfd = nxt
        if parts[-1] in ("", ".", ".."):
            raise OSError(errno.EINVAL, "unexpected path component", rel)
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
    finally:
        os.close(dfd)


def remove_beneath(root: Path, rel: str) -> None:
    """Removes the file `root/rel` (not following a link in any component). A directory
    there stays; a component that is a link or no directory raises OSError."""
    head, _, name = rel.rpartition("/")
    if head:
        dfd = open_beneath(root, head, os.O_RDONLY | os.O_DIRECTORY)
    else:
        dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(name, dir_fd=dfd)
    finally:
        os.close(dfd)


def rebuild(root: Path, rel: str, record: AppendRecord) -> str | None:
    """Turns `root/rel`, holding the path's next content, into the content the record
    describes: its first `length` bytes, with the record's mtime, mode and owner. Returns
    why it cannot (the file then stays as it was), or None."""
    try:
        fd = open_beneath(root, rel, os.O_RDWR | os.O_NONBLOCK)
    except FileNotFoundError:
        return "its later content is no longer kept"
    except OSError as exc:
        return f"its later content cannot be opened: {exc.strerror or exc}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "its later content is no longer a regular file"
        if st.st_size < record.length:
            return "its later content is shorter than it was: no longer kept"
        digest = hashlib.sha256()
        offset = 0
        while offset < record.length:
            chunk = os.pread(fd, min(_CHUNK, record.length - offset), offset)
            if not chunk:
                return "its later content changed while read"
            digest.update(chunk)
            offset += len(chunk)
        if digest.hexdigest() != record.sha256:
            return "its later content does not start with it: no longer kept"
        os.ftruncate(fd, record.length)
        if os.fstat(fd).st_size != record.length:
            return "the rebuilt file has the wrong length"
        with contextlib.suppress(PermissionError):  # not root: the restorer's own, as rsync
            os.fchown(fd, record.uid, record.gid)
        os.fchmod(fd, stat.S_IMODE(record.mode))
        os.utime(fd, ns=(record.mtime_ns, record.mtime_ns))
        return None
    finally:
        os.close(fd)
