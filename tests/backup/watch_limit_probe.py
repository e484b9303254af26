"""Runs a replicator with a tiny inotify watch limit and reports what it saw, as JSON.

Meant to run inside `unshare -U -r`: /proc/sys/user/max_inotify_watches is per user
namespace, so the limit is lowered for this process alone, not for the machine.

python -m tests.backup.watch_limit_probe STATE SOURCE REPLICA RUNTIME LIMIT
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from backup.spec import GuardSettings, ReplicationSpec
from backup.transport import parse_target
from tests.backup.probe import probe_run


async def main(state: Path, source: Path, replica: Path, runtime: Path, limit: int) -> None:
    Path("/proc/sys/user/max_inotify_watches").write_text(str(limit))
    # not make_spec: this probe always ran with the default retry settings
    spec = ReplicationSpec(
        "docs",
        source,
        parse_target(str(replica)),
        runtime_dir=runtime,
        guard=GuardSettings(enabled=False),
        fallback_reconcile=1.0,
        timeout=10,
    )
    async with probe_run(state, spec) as run:
        await run.watch(lambda: bool(run.rep.health().get("last_full")), 10, "the first reconcile")
        # written after start, deep in an unwatched directory: only the fallback finds it
        late = source / "d29" / "late.txt"
        late.write_text("written after the watches ran out\n")
        await run.watch((replica / "d29" / "late.txt").exists, 15, "late.txt replicated")
        health = run.rep.health()
    print(
        json.dumps(
            {
                "watch_limit": health["watch_limit"],
                "error": health["watch_limit_error"],
                "late_replicated": (replica / "d29" / "late.txt").exists(),
            }
        )
    )


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(Path(a[0]), Path(a[1]), Path(a[2]), Path(a[3]), int(a[4])))
