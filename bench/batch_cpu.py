"""CPU per shipped file of a running replicator (issue 18): a smoke run, not the benchmark.

    .venv/bin/python bench/batch_cpu.py [--files N] [--rate R]

Writes N 8 KiB files at R writes/s into a Replicator with a local target (the daemon's
store, fast journal writes, guard on) and prints the CPU seconds per file of this process
(split into the event loop's thread and the others) and of its children (rsync, and the
writer, a process of its own), and the number of ship runs. CPU seconds, not wall times: they
are the steadier figure on a shared machine. Run it from the tree to measure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backup.replicator import Replicator  # noqa: E402
from backup.spec import GuardSettings, ReplicationSpec  # noqa: E402
from backup.transport import parse_target  # noqa: E402
from bench.common import stat_cpu_seconds  # noqa: E402
from sentinel import migrations  # noqa: E402
from sentinel.store import Store  # noqa: E402

WRITER = """
import os, sys, time
d, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
data, began = os.urandom(8192), time.monotonic()
for i in range(n):
    with open(os.path.join(d, f"f{i:05}"), "wb") as f:
        f.write(data)
    time.sleep(max(0.0, began + (i + 1) / rate - time.monotonic()))
"""


def threads() -> dict[str, float]:
    """CPU seconds per thread of this process: the event loop's ("loop") and the others'."""
    out = {"loop": 0.0, "other threads": 0.0}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            key = "loop" if int(task.name) == os.getpid() else "other threads"
            out[key] += stat_cpu_seconds(task / "stat")
    return out


def cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


async def run(files: int, rate: float) -> str:
    work = Path(tempfile.mkdtemp(prefix="batch-cpu-"))
    try:
        src, dst, runtime = work / "src", work / "dst", work / "rt"
        (src / "d").mkdir(parents=True)
        runtime.mkdir()
        store = await Store.open(work / "state")
        await migrations.migrate(store)
        spec = ReplicationSpec(
            name="docs",
            source=src,
            target=parse_target(str(dst)),
            runtime_dir=runtime,
            guard=GuardSettings(),
        )
        rep = Replicator(
            spec, store.db, store.write, journal_write=store.fast_write, journal_run=store.fast_run
        )
        task = asyncio.create_task(rep.run())
        while rep.health()["last_full"] is None:  # noqa: ASYNC110 (polled, as the tests do)
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # the scheduler's first round
        before, runs = cpu(), rep.transfers
        per_thread = threads()
        # the writer is a process of its own (as the latency bench's is): this process's
        # CPU is the replicator's alone
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(src / "d"), str(files), str(rate)
        )
        await writer.wait()
        while not (rep.caught_up and (dst / "d" / f"f{files - 1:05}").exists()):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        after = cpu()
        per_thread = {k: v - per_thread[k] for k, v in threads().items()}
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
        py, kids = (after[0] - before[0]) * 1000 / files, (after[1] - before[1]) * 1000 / files
        return (
            f"{files} files at {rate:g}/s: python {py:.2f} ms/file, rsync {kids:.2f} ms/file, "
            f"total {py + kids:.2f} ms/file, {rep.transfers - runs} ship runs; "
            + ", ".join(f"{k} {v * 1000 / files:.2f} ms/file" for k, v in per_thread.items())
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    print(asyncio.run(run(args.files, args.rate)))


if __name__ == "__main__":
    main()
