"""Helpers for the source/target identity tests: a replicator whose start may block, the
pages its health would raise, mounts that tests unmount."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from backup.replicator import Replicator
from backup.spec import ReplicationSpec
from sensors.sim.broker import free_port
from sentinel.alarm import Engine
from sentinel.replication import replication_readings
from sentinel.store import Store
from tests.alarm.helpers import Outbox, config, sent
from tests.fixtures.remote import RsyncDaemon


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
    engine = Engine(store, config(), enqueue=Outbox(), clock=time.time)
    await engine.start()
    for reading in replication_readings([rep], time.time()):
        await engine.submit(reading)
    return [(e["event"], e["severity"], e["kind"], e["reason"]) for e in await sent(store)]


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=False, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def write_only_rsyncd(base: Path) -> Iterator[RsyncDaemon]:
    """An rsync daemon whose module refuses every read, like the documented health-center
    setup (`write only = true`): the target check must not depend on reading back."""
    module = base / "module"
    module.mkdir(parents=True)
    (base / "secrets").write_text("sentinel:s3cret-pw\n")
    (base / "secrets").chmod(0o600)
    password = base / "password"
    password.write_text("s3cret-pw\n")
    password.chmod(0o600)
    port = free_port()
    conf = base / "rsyncd.conf"
    conf.write_text(
        f"pid file = {base}/rsyncd.pid\nuse chroot = no\nuid = root\ngid = root\n"
        f"[backup]\n  path = {module}\n  read only = no\n  write only = yes\n  list = no\n"
        f"  auth users = sentinel\n  secrets file = {base}/secrets\n"
    )
    server = RsyncDaemon(["rsync", "--daemon", "--no-detach", f"--config={conf}",
                          f"--port={port}", "--address=127.0.0.1"], port,
                         module_dir=module, password_file=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
