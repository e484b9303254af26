"""sentinel's side of bench/replication.py: one Replicator in its own process.

    python bench/replicator_child.py replicator|reconcile '<json config>'

Kept apart from the harness so that sentinel's measured start-up (an initial sync is timed
from the process start) carries the imports of the daemon's replication and not the
harness's own (its inotify arrival reader, scratch filesystems, sshd: ~0.1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backup.replicator import Replicator
from backup.spec import ReplicationSpec
from backup.transport import parse_target
from sentinel import migrations
from sentinel.store import Store


def _spec(cfg: dict[str, object]) -> ReplicationSpec:
    target = parse_target(
        str(cfg["target"]),
        ssh_port=cfg.get("ssh_port"),  # type: ignore[arg-type]
        identity_file=Path(str(cfg["identity"])) if "identity" in cfg else None,
        known_hosts=Path(str(cfg["known_hosts"])) if "known_hosts" in cfg else None,
        stream_identity_file=(
            Path(str(cfg["stream_identity"])) if "stream_identity" in cfg else None
        ),
    )
    budget = cfg.get("latency_budget")
    return ReplicationSpec(
        "bench",
        Path(str(cfg["source"])),
        target,
        runtime_dir=Path(str(cfg["runtime"])),
        latency_budget=None if budget is None else float(budget),  # type: ignore[arg-type]
    )


async def _replicator_main(cfg: dict[str, object]) -> None:
    """Like the daemon: one Store, migrations, one Replicator with default settings."""
    spec = _spec(cfg)
    store = await Store.open(Path(str(cfg["state"])))
    try:
        await migrations.migrate(store)
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        # wired as sentinel/replication.py wires it in the daemon
        rep = Replicator(
            spec, store.db, store.write, journal_write=store.fast_write, journal_run=store.fast_run
        )
        if "runs_file" in cfg:
            # the bench asks how many ship runs there were (SIGUSR1), between its workloads:
            # nothing is written while a workload is measured
            runs_file = Path(str(cfg["runs_file"]))
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGUSR1, lambda: runs_file.write_text(f"{rep.transfers}\n")
            )
        with contextlib.suppress(asyncio.CancelledError):
            await rep.run()
    finally:
        await store.close()


async def _reconcile_main(cfg: dict[str, object]) -> None:
    """One full reconcile through the Replicator (journal and state included); prints s."""
    spec = _spec(cfg)
    store = await Store.open(Path(str(cfg["state"])))
    try:
        await migrations.migrate(store)
        rep = Replicator(
            spec, store.db, store.write, journal_write=store.fast_write, journal_run=store.fast_run
        )
        await rep.load()
        spec.runtime_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        result = await rep.reconcile("bench")
        took = time.monotonic() - t0
        if result is None or not result.ok:
            raise SystemExit(f"reconcile failed: {result and result.error}")
        print(f"{took:.4f}")
    finally:
        await store.close()


def main(argv: list[str]) -> None:
    what, cfg = argv[0], json.loads(argv[1])
    asyncio.run(_replicator_main(cfg) if what == "replicator" else _reconcile_main(cfg))


if __name__ == "__main__":
    main(sys.argv[1:])
