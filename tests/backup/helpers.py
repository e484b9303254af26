"""Shared helpers for the replication tests: tree comparison, polling, a running replicator."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from backup.keeper_record import HEARTBEAT_FILE
from backup.markers import SOURCE_MARKER, TARGET_MARKER
from backup.replicator import Replicator
from backup.spec import GuardSettings, ReplicationSpec
from backup.target import PARTIAL_DIR, VERSIONS_DIR, Target
from sentinel.store import Store
from tests.fixtures.poll import until

SKIP = {VERSIONS_DIR, PARTIAL_DIR, SOURCE_MARKER, TARGET_MARKER, HEARTBEAT_FILE}


def tree(root: Path) -> dict[str, bytes | str | None]:
    """rel path -> file bytes, symlink target ("-> x") or None for a directory."""
    out: dict[str, bytes | str | None] = {}
    for dirpath, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirs[:] = [d for d in dirs if d not in SKIP]
        for d in dirs:
            full = os.path.join(dirpath, d)
            rel = os.path.normpath(os.path.join(rel_dir, d))
            try:
                out[rel] = ("-> " + os.readlink(full)) if os.path.islink(full) else None
            except OSError:
                out[rel] = b"<vanished while reading>"
        for f in files:
            if rel_dir == "." and f in SKIP:
                continue
            full = os.path.join(dirpath, f)
            rel = os.path.normpath(os.path.join(rel_dir, f))
            try:
                out[rel] = (
                    ("-> " + os.readlink(full)) if os.path.islink(full) else Path(full).read_bytes()
                )
            except FileNotFoundError:
                out[rel] = b"<vanished while reading>"  # rsync's temp file: not equal yet
    return out


def tree_diff(a: Path, b: Path) -> list[str]:
    ta, tb = tree(a), tree(b)
    return sorted(k for k in ta.keys() | tb.keys() if ta.get(k, 0) != tb.get(k, 0))


def make_spec(source: Path, target: Target, runtime: Path, **kw: object) -> ReplicationSpec:
    kw.setdefault("guard", GuardSettings(enabled=False))
    kw.setdefault("retry_max", 1.0)
    kw.setdefault("fatal_retry", 1.0)
    kw.setdefault("timeout", 10.0)
    return ReplicationSpec(
        name=kw.pop("name", "docs"),
        source=source,
        target=target,  # type: ignore[arg-type]
        runtime_dir=runtime,
        **kw,
    )  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(spec: ReplicationSpec, store: Store, **kw: object) -> AsyncIterator[Replicator]:
    rep = Replicator(spec, store.db, store.write, **kw)  # type: ignore[arg-type]
    task = asyncio.create_task(rep.run())
    try:
        await until(
            lambda: rep.health()["phase"] == "running" or task.done(), 30, "replicator start"
        )
        if task.done():
            task.result()
        yield rep
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def caught_up(rep: Replicator, source: Path, replica: Path, limit: float = 30) -> None:
    """Waits until nothing is pending and the replica equals the source."""
    try:
        await until(
            lambda: rep.caught_up and not tree_diff(source, replica), limit, "replica caught up"
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}: diff {tree_diff(source, replica)[:5]}, health {rep.health()}"
        ) from None


def count_records(rep: Replicator) -> list[int]:
    """From now on counts the journal's record transactions, in the returned `[n]`."""
    box = [0]
    record = rep.journal.record

    async def counted(paths: Any, **kw: Any) -> int:
        box[0] += 1
        return int(await record(paths, **kw))

    rep.journal.record = counted  # type: ignore[method-assign]
    return box


def populate_docs(src: Path, n: int = 5) -> None:
    """`n` small documents under `src/docs`, each with its own bytes."""
    (src / "docs").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (src / "docs" / f"doc{i:03}.hwp").write_bytes(f"document {i}".encode() * 50)


# A guard that a 120-file directory trips (more than 50 replica files within a minute).
DIR_GUARD = GuardSettings(max_files=50, window=60.0)


def big_dir(root: Path, n: int = 120) -> None:
    """`root/big` with `n` files: more than DIR_GUARD allows to vanish at once."""
    (root / "big").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / "big" / f"f{i:03}.txt").write_text(f"doc {i}\n")
