"""The rsync command lines: ship a batch, full reconcile, checksum compare."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from backup.rsync import COMMON_ARGS, RsyncResult, run_rsync
from backup.spec import ReplicationSpec
from backup.target import PARTIAL_DIR, VERSIONS_DIR, Target
from backup.versions import backup_dir_arg

PROTECT = (f"--exclude=/{VERSIONS_DIR}", f"--exclude=/{PARTIAL_DIR}")


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
    spec: ReplicationSpec, now: float, *, on_output: Callable[[str], None] | None = None
) -> RsyncResult:
    """The whole source, with the same backup semantics (the backstop for lost events)."""
    args = [*_base(spec, partial=False), "--delete", "--backup", backup_dir_arg(now), *PROTECT,
            *spec.filters.rsync_args()]
    if on_output is not None:
        args += ["--info=progress2", "--no-inc-recursive"]
    args += [_source(spec), spec.target.path()]
    return await run_rsync(args, on_output=on_output)


async def compare(
    source: str, dest: str, *, transport: Sequence[str] = (), filters: Sequence[str] = (),
    io_timeout: float = 60,
) -> RsyncResult:
    """Dry-run checksum comparison; `result.differences` lists every path that differs."""
    args = ["-anc", "--delete", *COMMON_ARGS, f"--timeout={max(1, int(io_timeout))}", *transport,
            *PROTECT, *filters, source, dest]
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
    """Copies `<replica>/<remote_sub>/<rel>` to `dest/<rel>` (whole replica when rel is "")."""
    base = target.path(remote_sub).rstrip("/")
    src = f"{base}/./{rel.strip('/')}" if rel.strip("/") else f"{base}/./"
    args = ["-aR", *COMMON_ARGS, f"--timeout={max(1, int(io_timeout))}",
            *target.transport_args(runtime_dir), *PROTECT, src, str(dest).rstrip("/") + "/"]
    return await run_rsync(args)
