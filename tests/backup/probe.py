"""The shared part of the replicator probes (tests/backup/*_probe.py).

A probe is a replicator run as its own process (as another user, or in a user namespace)
that watches for what its test cares about, prints what it saw and exits; the test judges
the output. `ProbeRun.watch` is their one polling loop: running out of time is not an error
here, because the probe's report (or its silence) is what the test asserts on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from backup.replicator import Replicator
from backup.spec import ReplicationSpec
from sentinel import migrations
from sentinel.store import Store
from tests.fixtures.poll import PollTimeout, until

# the probes' loops always slept this long between looks; their limits are in seconds
INTERVAL = 0.05


@dataclass(frozen=True)
class ProbeRun:
    rep: Replicator
    task: asyncio.Task[None]

    async def watch(self, condition: Callable[[], bool], within: float, what: str) -> bool:
        """Polls `condition` for up to `within` s; False if it never held. A crashed
        replicator raises at once: a crash is what most probes exist to catch."""

        def held() -> bool:
            if self.task.done():
                self.task.result()
            return condition()

        try:
            await until(held, within, what, interval=INTERVAL)
        except PollTimeout:
            return False
        return True


@contextlib.asynccontextmanager
async def probe_run(state: Path, spec: ReplicationSpec) -> AsyncIterator[ProbeRun]:
    """A replicator for `spec` on a fresh store in `state`, running until the block ends."""
    store = await Store.open(state)
    try:
        await migrations.migrate(store)
        rep = Replicator(spec, store.db, store.write)
        task = asyncio.create_task(rep.run())
        try:
            yield ProbeRun(rep, task)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await store.close()
