"""Marker files that prove a source and a replica are the ones sentinel synced before.

An unmounted disk leaves an empty directory behind, and rsync happily creates a missing
target: without proof of identity, a vanished source would be shipped as a mass deletion
and a lost replica silently rebuilt somewhere else (on the root filesystem when it was a
mountpoint). Sentinel writes `.sentinel-source` in the source root and `.sentinel-target`
in the replica root at the first sync; later, a missing marker stops replication.
Neither marker is shipped, compared, deleted or restored (see `transfer.PROTECT`).
The target marker names its replication: two replications on one target would delete each
other's files at every full pass, so a marker naming another one stops shipping too.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backup.rsync import COMMON_ARGS, Outcome, RsyncResult, run_rsync
from backup.spec import ReplicationSpec
from backup.target_lock import target_lock

SOURCE_MARKER = ".sentinel-source"
TARGET_MARKER = ".sentinel-target"

_SOURCE_TEXT = (
    "This directory is replicated by sentinel. Do not delete this file: without it\n"
    "sentinel takes the directory for a missing or unmounted disk and stops.\n"
)
_TARGET_TEXT = (
    "This directory is a sentinel replica. Do not delete this file: without it\n"
    "sentinel takes the replica for a missing or unmounted disk and stops.\n"
)
_OWNER = "replication = "
# What an unnamed marker (written before markers named their replication, or by hand) may
# hold: it is adopted by writing the name into it.
_UNNAMED = (_TARGET_TEXT, "")


def target_text(name: str) -> str:
    return f"{_TARGET_TEXT}{_OWNER}{name}\n"


def source_problem(source: Path, *, require_mountpoint: bool, create: bool) -> str | None:
    """Why `source` cannot be trusted as the document store, or None when it can.

    `create`: this is the first sync, so a missing marker is written instead of refused.
    """
    root = str(source)
    if require_mountpoint and not os.path.ismount(root):
        return f"{root} is not a mountpoint (require_mountpoint = true)"
    if not os.path.isdir(root):
        return f"{root} does not exist or is not a directory"
    marker = os.path.join(root, SOURCE_MARKER)
    if os.path.lexists(marker):
        return None
    if not create:
        return (
            f"{root} has no {SOURCE_MARKER} marker (if this is the real source, "
            "`sentinel backup sync --full --init-source` writes it again)"
        )
    try:
        write_source_marker(source)
    except OSError as exc:
        return f"cannot write {marker}: {exc.strerror}"
    return None


def write_source_marker(source: Path) -> None:
    with open(os.path.join(source, SOURCE_MARKER), "x") as f:
        f.write(_SOURCE_TEXT)


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """`present` True/False, or None when the target could not be asked (`result` says why).
    A present marker may be `unnamed` (write the name into it) or name another replication,
    `owner` ("" when a remote marker names someone else: a write-only target cannot be read)."""

    present: bool | None
    result: RsyncResult | None = None
    unnamed: bool = False
    owner: str | None = None


async def check_target(spec: ReplicationSpec) -> TargetCheck:
    """Is the marker in the replica root? A stat for a local path; for rsyncd and ssh a
    dry-run push of the marker, itemized: "+++++++++" means the receiver has no such file.
    (A push, not a listing: the recommended health-center setups are write-only, rrsync -wo
    and rsyncd `write only`, and refuse every read.)"""
    local = spec.target.local_root
    if local is not None:
        try:
            text = (local / TARGET_MARKER).read_text(errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return TargetCheck(False)
        except OSError as exc:
            return TargetCheck(
                None,
                RsyncResult(
                    23, Outcome.RETRY, error=f"cannot read {TARGET_MARKER}: {exc.strerror}"
                ),
            )
        owner = next(
            (line[len(_OWNER) :].strip() for line in text.splitlines() if line.startswith(_OWNER)),
            None,
        )
        if owner is None:
            return TargetCheck(True, unnamed=True)
        return TargetCheck(True, owner=None if owner == spec.name else owner)
    # a remote marker is compared by checksum with what each kind of owner would write
    for text in (target_text(spec.name), *_UNNAMED):
        result = await _push_marker(spec, dry_run=True, text=text)
        if not result.ok:
            return TargetCheck(None, result)
        item = next(
            (
                line[:11]
                for line in result.output
                if line.endswith(" " + TARGET_MARKER) and len(line) > 11
            ),
            None,
        )
        if item is None:
            return TargetCheck(
                None,
                RsyncResult(
                    23, Outcome.RETRY, error=f"the marker check did not itemize {TARGET_MARKER}"
                ),
            )
        if item.endswith("+" * 9):
            return TargetCheck(False, result)
        if item[2] != "c":  # the same content
            return TargetCheck(True, result, unnamed=text in _UNNAMED)
    return TargetCheck(True, result, owner="")


async def write_target_marker(spec: ReplicationSpec) -> RsyncResult:
    """Writes the marker, naming this replication, into the replica root through the same
    transport (rsync creates the root directory itself when it is missing, one level deep)."""
    async with target_lock(spec.lock_dir or spec.runtime_dir, spec.target.url) as held:
        return await _push_marker(
            spec, dry_run=False, text=target_text(spec.name), pass_fds=held.pass_fds
        )


async def _push_marker(
    spec: ReplicationSpec, *, dry_run: bool, text: str, pass_fds: tuple[int, ...] = ()
) -> RsyncResult:
    with tempfile.TemporaryDirectory(prefix="snt-mark", dir=spec.runtime_dir) as tmp:
        marker = Path(tmp) / TARGET_MARKER
        marker.write_text(text)
        marker.chmod(0o644)
        # -c: a dry run itemizes "c" when the replica's marker holds other content
        args = [
            "-t",
            *COMMON_ARGS,
            *spec.target.exact_mtime_args(push=True),
            f"--timeout={max(1, int(spec.timeout))}",
            *(["--dry-run", "-ii", "-c"] if dry_run else []),
            *spec.target.transport_args(spec.runtime_dir),
            str(marker),
            spec.target.path(),
        ]
        return await run_rsync(args, pass_fds=pass_fds)
