"""Runs one replicator as its own process (like the daemon) so a test can kill -9 it.

python -m tests.backup.runner STATE_DIR SOURCE TARGET RUNTIME_DIR [OPTIONS_JSON]

OPTIONS_JSON: `parse_target`'s keyword arguments (ssh_port, identity_file, known_hosts,
stream_identity_file), paths as strings.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from backup.replicator import Replicator
from backup.spec import GuardSettings, ReplicationSpec
from backup.transport import parse_target
from sentinel import migrations
from sentinel.store import Store


async def main(
    state: Path, source: Path, target: str, runtime: Path, options: dict[str, object]
) -> None:
    store = await Store.open(state)
    try:
        await migrations.migrate(store)
        spec = ReplicationSpec(
            "docs",
            source,
            parse_target(target, **options),  # type: ignore[arg-type]
            runtime_dir=runtime,
            guard=GuardSettings(enabled=False),
            retry_max=1.0,
            fatal_retry=1.0,
            timeout=10,
        )
        await Replicator(spec, store.db, store.write).run()
    finally:
        await store.close()


if __name__ == "__main__":
    raw = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    opts = {k: (v if k == "ssh_port" else Path(v)) for k, v in raw.items()}
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), opts))
