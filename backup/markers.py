"""Marker files that prove a source and a replica are the ones sentinel synced before.

An unmounted disk leaves an empty directory behind, and rsync happily creates a missing
target: without proof of identity, a vanished source would be shipped as a mass deletion
and a lost replica silently rebuilt somewhere else (on the root filesystem when it was a
mountpoint). Sentinel writes `.sentinel-source` in the source root and `.sentinel-target`
in the replica root at the first sync; later, a missing marker stops replication.
Neither marker is shipped, compared, deleted or restored (see `transfer.PROTECT`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backup.rsync import COMMON_ARGS, Outcome, RsyncResult, run_rsync
from backup.spec import ReplicationSpec

SOURCE_MARKER = ".sentinel-source"
TARGET_MARKER = ".sentinel-target"

_SOURCE_TEXT = ("This directory is replicated by sentinel. Do not delete this file: without it\n"
                "sentinel takes the directory for a missing or unmounted disk and stops.\n")
_TARGET_TEXT = ("This directory is a sentinel replica. Do not delete this file: without it\n"
                "sentinel takes the replica for a missing or unmounted disk and stops.\n")


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
        return (f"{root} has no {SOURCE_MARKER} marker (if this is the real source, "
                "`sentinel backup sync --full --init-source` writes it again)")
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
    """`present` True/False, or None when the target could not be asked (`result` says why)."""

    present: bool | None
    result: RsyncResult | None = None


async def check_target(spec: ReplicationSpec) -> TargetCheck:
    """Is the marker in the replica root? A stat for a local path; for rsyncd and ssh a
    dry-run push of the marker, itemized: "+++++++++" means the receiver has no such file.
    (A push, not a listing: the recommended health-center setups are write-only, rrsync -wo
    and rsyncd `write only`, and refuse every read.)"""
    local = spec.target.local_root
    if local is not None:
        return TargetCheck(os.path.isfile(local / TARGET_MARKER))
    result = await _push_marker(spec, dry_run=True)
    if not result.ok:
        return TargetCheck(None, result)
    for line in result.output:
        if line.endswith(" " + TARGET_MARKER) and len(line) > 11:
            return TargetCheck(not line[:11].endswith("+" * 9), result)
    return TargetCheck(None, RsyncResult(
        23, Outcome.RETRY, error=f"the marker check did not itemize {TARGET_MARKER}"))


async def write_target_marker(spec: ReplicationSpec) -> RsyncResult:
    """Writes the marker into the replica root through the same transport (rsync creates
    the root directory itself when it is missing, one level deep)."""
    return await _push_marker(spec, dry_run=False)


async def _push_marker(spec: ReplicationSpec, *, dry_run: bool) -> RsyncResult:
    with tempfile.TemporaryDirectory(prefix="snt-mark", dir=spec.runtime_dir) as tmp:
        marker = Path(tmp) / TARGET_MARKER
        marker.write_text(_TARGET_TEXT)
        marker.chmod(0o644)
        args = ["-t", *COMMON_ARGS, *spec.target.exact_mtime_args(push=True),
                f"--timeout={max(1, int(spec.timeout))}",
                *(["--dry-run", "-ii"] if dry_run else []),
                *spec.target.transport_args(spec.runtime_dir), str(marker),
                spec.target.path()]
        return await run_rsync(args)
