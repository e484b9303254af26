"""Markers adopted by an install that synced before markers existed (an upgrade).

Such a state has a last success but no `.sentinel-source`/`.sentinel-target`: requiring
them would stop every upgraded install and teach operators to run `--init-*` by reflex.
Instead the backup schema migration flags its rows (`markers_adopt`), and the replicator
writes each missing marker itself, but only where the evidence says it is the real thing:
a source that is a non-empty directory (and a mountpoint when required), a replica root
that exists and already holds files. An empty mountpoint or a lost replica is not adopted
and pages exactly as a missing marker does; the adopted full pass is still measured by the
ransomware guard's dry run.
"""

from __future__ import annotations

import os

from backup.markers import TargetCheck
from backup.rsync import COMMON_ARGS, DELETING, ITEM, Outcome, RsyncResult, run_rsync
from backup.spec import ReplicationSpec
from backup.transfer import PROTECT, PROTECTED


def source_adoptable(source: str, *, require_mountpoint: bool) -> bool:
    """The source marker may be written: a (mounted) directory that holds something."""
    if require_mountpoint and not os.path.ismount(source):
        return False
    try:
        with os.scandir(source) as entries:
            # sentinel's own names (markers, versions) are not documents
            return any(e.name not in PROTECTED for e in entries)
    except OSError:
        return False


async def replica_holds_files(spec: ReplicationSpec) -> TargetCheck:
    """Does the replica root exist and hold files? For a local path a directory listing; for
    rsyncd and ssh a dry-run push of the source's top level only (`-d`, no recursion, with
    --delete): an existing entry is itemized without "+++++++++", an extra one as
    "*deleting", a missing root as "cd+++++++++ ./". A push, like the marker check, so the
    write-only setups answer it; it costs one connection and one directory."""
    local = spec.target.local_root
    if local is not None:
        try:
            with os.scandir(local) as entries:
                return TargetCheck(any(e.name not in PROTECTED for e in entries))
        except FileNotFoundError:
            return TargetCheck(False)
        except OSError:  # not listable: nobody can tell it is empty (the pass into an empty
            # replica goes without the guard's dry run and without versions)
            return TargetCheck(None)
    args = [
        "-d",
        *COMMON_ARGS,
        f"--timeout={max(1, int(spec.timeout))}",
        "--delete",
        "--dry-run",
        "-ii",
        *spec.target.transport_args(spec.runtime_dir),
        *PROTECT,
        *spec.filters.rsync_args(),
        str(spec.source).rstrip("/") + "/",
        spec.target.path(),
    ]
    result = await run_rsync(args)
    if not result.ok:
        return TargetCheck(None, result)
    seen_root = False
    for line in result.output:
        if line.startswith(DELETING):
            return TargetCheck(True, result)
        m = ITEM.match(line)
        if m is None:
            continue
        if line.endswith(" ./"):
            seen_root = True
            if m.group(3) == "+" * 9:  # the root itself would be created
                return TargetCheck(False, result)
        elif m.group(3) != "+" * 9:
            return TargetCheck(True, result)
    if not seen_root:
        return TargetCheck(
            None,
            RsyncResult(
                23, Outcome.RETRY, error="the replica probe did not itemize the replica root"
            ),
        )
    return TargetCheck(False, result)
