"""CPU of the asyncio primitives one ship run is made of (issue 18): a hop to the database
thread, a hop to the executor, a timer, a timeout. On a busy VM these, not SQLite or the
copy, set the floor of a run's cost.

    .venv/bin/python bench/wakeup_cost.py [--calls N]

Prints CPU microseconds (user+sys of this process, all threads) and wall microseconds per
call, after 100 warm-up calls. Run with TMPDIR on a tmpfs to keep the disk out of it.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sentinel import migrations  # noqa: E402
from sentinel.store import Store  # noqa: E402


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def measure(name: str, call: Callable[[], Awaitable[object]], n: int) -> str:
    for _ in range(100):
        await call()
    c0, t0 = cpu(), time.monotonic()
    for _ in range(n):
        await call()
    per_cpu, per_wall = 1e6 * (cpu() - c0) / n, 1e6 * (time.monotonic() - t0) / n
    return f"| {name} | {per_cpu:.0f} | {per_wall:.0f} |"


async def run(n: int) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="wakeup-cost-"))
    store = await Store.open(work / "state")
    try:
        await migrations.migrate(store)
        loop = asyncio.get_running_loop()

        async def timeout_fires() -> None:
            with_nothing = asyncio.Event()
            try:
                async with asyncio.timeout(0.0001):
                    await with_nothing.wait()
            except TimeoutError:
                pass

        rows = [
            "| call | CPU µs | wall µs |",
            "| --- | --- | --- |",
            await measure(
                "`store.fast_run(noop)`: one write transaction, as the journal's record and "
                "complete",
                lambda: store.fast_run(lambda conn: None),
                n,
            ),
            await measure(
                "`db.execute_fetchall('select 1')`: one read, as the journal's take",
                lambda: store.db.execute_fetchall("select 1"),
                n,
            ),
            await measure(
                "`loop.run_in_executor(None, noop)`: as the local copy",
                lambda: loop.run_in_executor(None, lambda: None),
                n,
            ),
            await measure(
                "`asyncio.sleep(0)`: a loop turn, no wake-up", lambda: asyncio.sleep(0), n
            ),
            await measure(
                "`asyncio.sleep(0.0001)`: a timer and the wake-up from epoll",
                lambda: asyncio.sleep(0.0001),
                n // 3,
            ),
            await measure(
                "`asyncio.timeout` firing on an `Event.wait()`: the coalescing wait",
                timeout_fires,
                n // 3,
            ),
        ]
        return rows
    finally:
        await store.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    print("\n".join(asyncio.run(run(args.calls))))


if __name__ == "__main__":
    main()
