"""Helpers for the source/target identity tests: a replicator whose start may block, the
pages its health would raise, mounts that tests unmount."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

from backup.replicator import Replicator
from backup.spec import ReplicationSpec
from sentinel.replication import replication_readings
from sentinel.store import Store
from tests.alarm.helpers import Outbox, config, sent, started_engine
from tests.fixtures.remote import RsyncDaemon, started_rsyncd


@contextlib.asynccontextmanager
async def started(
    spec: ReplicationSpec, store: Store
) -> AsyncIterator[tuple[Replicator, asyncio.Task[None]]]:
    """Runs a replicator without waiting for it to reach "running" (it may block)."""
    rep = Replicator(spec, store.db, store.write)
    task = asyncio.create_task(rep.run())
    try:
        yield rep, task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def pages(store: Store, rep: Replicator) -> list[tuple[str, str, str, str]]:
    """(event, severity, kind, reason) the alarm engine sends for the replicator's health."""
    engine = await started_engine(store, config(), Outbox(), time.time)
    for reading in replication_readings([rep], time.time()):
        await engine.submit(reading)
    return [(e["event"], e["severity"], e["kind"], e["reason"]) for e in await sent(store)]


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=False, stderr=subprocess.DEVNULL)


def write_only_rsyncd(base: Path) -> contextlib.AbstractContextManager[RsyncDaemon]:
    """An rsync daemon whose module refuses every read, like the documented health-center
    setup (`write only = true`): the target check must not depend on reading back."""
    return started_rsyncd(base, "  write only = yes\n  list = no\n")
