"""Runs a replicator (as the unprivileged user a test starts it as, no full pass at start):
prints "READY" once it watches, "ASIDE" once `REL` is set aside as unreadable, and "SHIPPED"
once the replica holds `REL` and nothing is set aside any more (or gives up after 30 s).

python -m tests.backup.unreadable_probe STATE SOURCE REPLICA RUNTIME REL
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from backup.replicator import Replicator
from backup.schema import MIGRATIONS, OWNER
from backup.spec import GuardSettings, ReplicationSpec
from backup.target import parse_target
from sentinel.store import Store


async def main(state: Path, source: Path, replica: Path, runtime: Path, rel: str) -> int:
    store = await Store.open(state)
    try:
        await store.migrate(OWNER, MIGRATIONS)
        spec = ReplicationSpec("docs", source, parse_target(str(replica)), runtime_dir=runtime,
                               guard=GuardSettings(enabled=False), retry_max=1.0,
                               fatal_retry=1.0, timeout=10, reconcile_at_start=False)
        rep = Replicator(spec, store.db, store.write)
        task = asyncio.create_task(rep.run())
        said = ready = False
        for _ in range(600):
            await asyncio.sleep(0.05)
            if task.done():
                task.result()  # a crash is the failure under test: let it show
            if not ready and rep.health()["phase"] == "running":
                print("READY", flush=True)
                ready = True
            if not said and rel in rep.quarantine.unreadable:
                print("ASIDE", flush=True)
                said = True
            if said and (replica / rel).exists() and not rep.quarantine.unreadable:
                print("SHIPPED", flush=True)
                break
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await store.close()
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(asyncio.run(main(Path(a[0]), Path(a[1]), Path(a[2]), Path(a[3]), a[4])))
