"""The rsync command lines: ship a batch, full reconcile, checksum compare."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from backup.markers import SOURCE_MARKER, TARGET_MARKER
from backup.rsync import COMMON_ARGS, RsyncResult, run_rsync
from backup.spec import ReplicationSpec
from backup.target import PARTIAL_DIR, VERSIONS_DIR, Target
from backup.versions import backup_dir_arg

# Excluded on both sides: never shipped, never deleted on the replica by --delete, never
# compared, never restored. The markers prove identity (backup/markers.py): the source
# marker is not a document, and the target marker must survive every --delete.
PROTECT = (f"--exclude=/{VERSIONS_DIR}", f"--exclude=/{PARTIAL_DIR}",
           f"--exclude=/{SOURCE_MARKER}", f"--exclude=/{TARGET_MARKER}")


def _base(spec: ReplicationSpec, *, partial: bool = True) -> list[str]:
    # --partial-dir makes rsync look for a partial file next to every file it checks: it
    # doubled the time of a full pass over an unchanged 100k-file tree, so the full
    # reconcile goes without it (an interrupted big file is sent again from the start).
    return [
        "-a", *COMMON_ARGS, f"--timeout={max(1, int(spec.timeout))}",
        *([f"--partial-dir={PARTIAL_DIR}"] if partial else []),
        *spec.target.transport_args(spec.runtime_dir),
    ]


def _source(spec: ReplicationSpec) -> str:
    return str(spec.source).rstrip("/") + "/"


def shipping_list(source: Path, paths: Iterable[str]) -> list[str]:
    """The sorted list for --files-from. A vanished path is replaced by its topmost vanished
    ancestor, and paths below a vanished one are dropped: rsync does not delete a missing
    argument whose parent is missing too ("parent dir is absent in the file list")."""
    root = str(source)
    out: set[str] = set()
    gone: set[str] = set()
    for rel in paths:
        if os.path.lexists(os.path.join(root, rel)):
            out.add(rel)
            continue
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if not os.path.lexists(os.path.join(root, prefix)):
                gone.add(prefix)
                break
    for g in gone:
        parts = g.split("/")
        if not any("/".join(parts[:i]) in gone for i in range(1, len(parts))):
            out.add(g)
    return sorted(out)


async def ship_batch(spec: ReplicationSpec, paths: Sequence[str], now: float) -> RsyncResult:
    """Ships the listed paths (relative to the source); a listed path that no longer exists
    is deleted on the replica; replaced and deleted files go to the versions dir."""
    listing = b"\0".join(os.fsencode(p) for p in shipping_list(spec.source, paths)) + b"\0"
    args = [
        *_base(spec), "-R", "--files-from=-", "--from0", "--delete-missing-args",
        # --force: a vanished non-empty directory is deleted (its files go to the versions)
        "--force",
        "--backup", backup_dir_arg(now), *PROTECT, _source(spec), spec.target.path(),
    ]
    return await run_rsync(args, stdin=listing)


async def full_sync(
    spec: ReplicationSpec, now: float, *, on_output: Callable[[str], None] | None = None,
    dry_run: bool = False,
) -> RsyncResult:
    """The whole source, with the same backup semantics (the backstop for lost events).
    `dry_run`: the same command with `--dry-run --stats`: what it would change, itemized."""
    args = [*_base(spec, partial=False), "--delete", "--backup", backup_dir_arg(now), *PROTECT,
            *spec.filters.rsync_args()]
    if dry_run:
        args += ["--dry-run", "--stats"]
    elif on_output is not None:
        args += ["--info=progress2", "--no-inc-recursive"]
    args += [_source(spec), spec.target.path()]
    return await run_rsync(args, on_output=on_output)


async def compare(
    source: str, dest: str, *, transport: Sequence[str] = (), filters: Sequence[str] = (),
    io_timeout: float = 60, safe_links: bool = False,
) -> RsyncResult:
    """Dry-run checksum comparison; `result.differences` lists every path that differs.
    `safe_links`: leave out symlinks that point outside the tree (restore does)."""
    args = ["-anc", "--delete", *COMMON_ARGS, f"--timeout={max(1, int(io_timeout))}", *transport,
            *(["--safe-links"] if safe_links else []), *PROTECT, *filters, source, dest]
    return await run_rsync(args)


async def verify_replica(spec: ReplicationSpec) -> RsyncResult:
    return await compare(
        _source(spec), spec.target.path(),
        transport=spec.target.transport_args(spec.runtime_dir),
        filters=spec.filters.rsync_args(), io_timeout=spec.timeout,
    )


async def fetch(
    target: Target, runtime_dir: Path, remote_sub: str, rel: str, dest: Path,
    *, io_timeout: float = 60,
) -> RsyncResult:
    """Copies `<replica>/<remote_sub>/<rel>` to `dest/<rel>` (whole replica when rel is "").
    Never deletes in `dest`; symlinks pointing outside the replica (absolute ones, `../`
    escapes) are not restored: a planted link to /etc/shadow must not come back as one."""
    base = target.path(remote_sub).rstrip("/")
    src = f"{base}/./{rel.strip('/')}" if rel.strip("/") else f"{base}/./"
    args = ["-aR", "--safe-links", *COMMON_ARGS, f"--timeout={max(1, int(io_timeout))}",
            *target.transport_args(runtime_dir), *PROTECT, src, str(dest).rstrip("/") + "/"]
    return await run_rsync(args)
