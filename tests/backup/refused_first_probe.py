"""Runs a replicator whose first full pass started before the first walk set a directory it
may not read aside (a big tree: rsync is under way long before the walk ends), reports what
it did as JSON and stops (a test runs it as an unprivileged user).

python -m tests.backup.refused_first_probe STATE SOURCE REPLICA RUNTIME
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from backup import replicator as replicator_module
from backup.rsync import RsyncResult
from backup.spec import ReplicationSpec
from backup.transport import parse_target
from backup.watcher import Watcher
from tests.backup.helpers import make_spec
from tests.backup.probe import probe_run
from tests.fixtures.poll import until


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def main(state: Path, source: Path, replica: Path, runtime: Path) -> None:
    lines = _Lines()
    logging.getLogger("backup").addHandler(lines)
    logging.getLogger("backup").setLevel(logging.INFO)
    spec = make_spec(source, parse_target(str(replica)), runtime)
    walked: dict[str, Any] = {}
    pass_began = threading.Event()
    original_sync, original_watch = replicator_module.full_sync, Watcher._watch

    async def started_before_the_walk_ended(
        spec: ReplicationSpec, now: float, *, skip: Iterable[str] = (), **kw: Any
    ) -> RsyncResult:
        skip = list(skip)  # what rsync was told to leave alone when it started
        pass_began.set()
        await until(lambda: walked["rep"].health()["phase"] == "running", 20, "the walk")
        return await original_sync(spec, now, skip=skip, **kw)

    def reached_late(self: Watcher, rel: str, full: str) -> bool:
        if rel == "private":  # a big tree: the walk gets there after rsync started
            pass_began.wait(20)
        return original_watch(self, rel, full)

    replicator_module.full_sync = started_before_the_walk_ended  # type: ignore[assignment]
    Watcher._watch = reached_late  # type: ignore[method-assign]
    async with probe_run(state, spec) as run:
        walked["rep"] = run.rep
        passed = await run.watch(
            lambda: bool(run.rep._state.last_full_ok) and run.rep.caught_up, 30, "a full pass"
        )
    print(
        json.dumps(
            {
                "passed": passed,
                "whole_tree_journaled": any("shipped in batches instead" in m for m in lines.lines),
            }
        )
    )


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(Path(a[0]), Path(a[1]), Path(a[2]), Path(a[3])))
