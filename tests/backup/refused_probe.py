"""Runs a replicator until the replica holds `ok/doc.txt`, then stops (a test runs it as an
unprivileged user, like the daemon's User=sentinel).

python -m tests.backup.refused_probe STATE SOURCE REPLICA RUNTIME
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from backup.transport import parse_target
from tests.backup.helpers import make_spec
from tests.backup.probe import probe_run


async def main(state: Path, source: Path, replica: Path, runtime: Path) -> None:
    spec = make_spec(source, parse_target(str(replica)), runtime)
    async with probe_run(state, spec) as run:
        await run.watch(
            lambda: (replica / "ok" / "doc.txt").exists() and run.rep.caught_up,
            20,
            "ok/doc.txt replicated",
        )


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(Path(a[0]), Path(a[1]), Path(a[2]), Path(a[3])))
