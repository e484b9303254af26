"""Runs a replicator until the replica holds `ok/doc.txt`, then stops (a test runs it as an
unprivileged user, like the daemon's User=sentinel).

python -m tests.backup.refused_probe STATE SOURCE REPLICA RUNTIME
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from backup.replicator import Replicator
from backup.schema import MIGRATIONS, OWNER
from backup.spec import GuardSettings, ReplicationSpec
from backup.transport import parse_target
from sentinel.store import Store


async def main(state: Path, source: Path, replica: Path, runtime: Path) -> None:
    store = await Store.open(state)
    try:
        await store.migrate(OWNER, MIGRATIONS)
        spec = ReplicationSpec(
            "docs",
            source,
            parse_target(str(replica)),
            runtime_dir=runtime,
            guard=GuardSettings(enabled=False),
            retry_max=1.0,
            fatal_retry=1.0,
            timeout=10,
        )
        rep = Replicator(spec, store.db, store.write)
        task = asyncio.create_task(rep.run())
        for _ in range(400):
            await asyncio.sleep(0.05)
            if task.done():
                task.result()  # a crash is the failure under test: let it show
            if (replica / "ok" / "doc.txt").exists() and rep.caught_up:
                break
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await store.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(Path(a[0]), Path(a[1]), Path(a[2]), Path(a[3])))
