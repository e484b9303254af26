"""Runs a replicator (as the unprivileged user a test starts it as): prints "READY" once it
watches, "ASIDE" once `ASIDE_REL` is set aside as unreadable (with `full`: and a full pass
went through around it), and "SHIPPED" once the replica holds `SHIP_REL` and nothing is set
aside any more; gives up after 30 s. With `full` the start-up full pass runs, else none.
With `events` the 30 s backstop is off once ASIDE is said: only an inotify event (a chmod or
setfacl) can bring the set-aside path back.

python -m tests.backup.unreadable_probe STATE SOURCE REPLICA RUNTIME ASIDE_REL SHIP_REL
    [full] [events]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from backup.transport import parse_target
from tests.backup.helpers import make_spec
from tests.backup.probe import probe_run


async def main(
    state: Path,
    source: Path,
    replica: Path,
    runtime: Path,
    aside: str,
    ship: str,
    full: bool,
    events: bool = False,
) -> int:
    spec = make_spec(source, parse_target(str(replica)), runtime, reconcile_at_start=full)
    async with probe_run(state, spec) as run:
        rep = run.rep
        said = ready = False

        def shipped() -> bool:
            nonlocal said, ready
            if not ready and rep.health()["phase"] == "running":
                print("READY", flush=True)
                ready = True
            if (
                not said
                and aside in rep.quarantine.unreadable
                and (not full or rep.health()["last_full"] is not None)
            ):
                print("ASIDE", flush=True)
                said = True
                if events:
                    rep._retry_unreadable = _no_backstop  # type: ignore[method-assign]
            if said and (replica / ship).exists() and not rep.quarantine.unreadable:
                print("SHIPPED", flush=True)
                return True
            return False

        await run.watch(shipped, 30, "the set-aside file shipped")
    return 0


async def _no_backstop(now: float) -> None:
    return None


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(
        asyncio.run(
            main(
                Path(a[0]),
                Path(a[1]),
                Path(a[2]),
                Path(a[3]),
                a[4],
                a[5],
                "full" in a[6:],
                "events" in a[6:],
            )
        )
    )
