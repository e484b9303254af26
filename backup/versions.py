"""Kept versions on the replica: `<replica>/.sentinel-versions/<UTC stamp>/<path>` holds the
content a change or deletion replaced at that time (rsync --backup-dir)."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from backup.rsync import run_rsync
from backup.target import VERSIONS_DIR, Target
from backup.target_lock import target_lock

STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_STAMP = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> float | None:
    if not _STAMP.match(text):
        return None
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC).timestamp()


def backup_dir_arg(ts: float) -> str:
    # relative: rsync puts it under the destination root, on whichever host that is
    return f"--backup-dir={VERSIONS_DIR}/{stamp(ts)}"


async def list_version_stamps(
    target: Target, runtime_dir: Path, time_limit: float = 120
) -> list[str]:
    """Version stamps present on the replica, oldest first ([] when there are none).

    Raises RuntimeError when the replica cannot be listed (a write-only key refuses every
    read): an empty answer then would make pruning and point-in-time restores silently
    wrong."""
    result = await run_rsync(
        [*target.transport_args(runtime_dir), "--list-only", "-d", target.path(VERSIONS_DIR) + "/"],
        time_limit=time_limit,
    )
    if result.exit_code == 23 and "No such file or directory" in (result.error or ""):
        return []  # no version was ever kept
    if result.exit_code != 0:
        raise RuntimeError(
            f"cannot list the versions on {target.describe()}: rsync exit "
            f"{result.exit_code}: {result.error}"
        )
    stamps = []
    for line in result.output:
        name = line.rsplit(" ", 1)[-1]
        if line.startswith("d") and parse_stamp(name) is not None:
            stamps.append(name)
    return sorted(stamps)


async def prune_versions(
    target: Target,
    runtime_dir: Path,
    *,
    older_than: float,
    time_limit: float = 600,
    lock_dir: Path | None = None,
) -> list[str]:
    """Removes version dirs stamped before `older_than` (epoch); returns their stamps.

    One method for every transport: sync an empty directory over the versions dir with
    --delete, including only the expired stamps (excluded names are left alone). The
    --delete writes the replica, so it runs under the target's lock (`lock_dir`, as
    `ReplicationSpec.lock_dir`; None: `runtime_dir`).
    """
    stamps = await list_version_stamps(target, runtime_dir)
    expired = [s for s in stamps if (parse_stamp(s) or 0) < older_than]
    if not expired:
        return []
    with tempfile.TemporaryDirectory(prefix="sentinel-prune-") as empty:
        args = ["-r", "--delete", *target.transport_args(runtime_dir)]
        args += [f"--include=/{s}/***" for s in expired]
        args += ["--exclude=*", empty + "/", target.path(VERSIONS_DIR) + "/"]
        async with target_lock(lock_dir or runtime_dir, target.url) as held:
            result = await run_rsync(args, time_limit=time_limit, pass_fds=held.pass_fds)
    if not result.ok:
        raise RuntimeError(f"pruning versions failed: {result.error}")
    return expired
