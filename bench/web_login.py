"""Benchmark (issue 14): what a burst of logins costs the event loop that delivers alerts.

    .venv/bin/python -m bench.web_login [--logins 10]

The web server on loopback with a users file hashed with the real argon2 parameters; a task
measures how late a 10 ms sleep wakes up (the loop's lag), first idle for 3 s, then while
`--logins` wrong passwords arrive at once (argon2 runs in a worker thread, one check at a
time; the limiter answers the rest 429 without checking). Prints one argon2 check's time
and both lags.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from sentinel.config import load_config
from sentinel.web.server import WebServer
from sentinel.web.users import HASHER, write
from tests.fixtures.poll import until


def _lags(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[max(0, int(len(values) * 0.99) - 1)]
    return (
        f"p50 {statistics.median(values):.1f} ms, p99 {p99:.1f} ms, max {values[-1]:.1f} ms "
        f"({len(values)} ticks)"
    )


async def run(work: Path, logins: int) -> None:
    (work / "state").mkdir()
    (work / "s.toml").write_text(f'[daemon]\nstate_dir = "{work / "state"}"\n[web]\nport = 0\n')
    hashed = HASHER.hash("correct horse")
    write(work / "state" / "web-users", {"kim": hashed})
    checks = []
    for _ in range(10):
        started = time.perf_counter()
        HASHER.verify(hashed, "correct horse")
        checks.append((time.perf_counter() - started) * 1000)
    print(f"one argon2id check (t=3, 64 MiB, p=4): median {statistics.median(checks):.0f} ms")

    server = WebServer(load_config(work / "s.toml"))
    serving = asyncio.create_task(server.run())
    await until(lambda: server.urls, 10, "the web server to listen")
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.perf_counter() - started - 0.01) * 1000)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(3)
    print(f"loop lag, idle: {_lags(lags)}")
    lags.clear()
    async with aiohttp.ClientSession() as http:

        async def login(i: int) -> int:
            body = {"user": "kim" if i % 2 else f"nobody{i}", "password": "wrong"}
            async with http.post(server.urls[0] + "login", json=body) as r:
                return r.status

        started = time.perf_counter()
        statuses = await asyncio.gather(*(login(i) for i in range(logins)))
        took = (time.perf_counter() - started) * 1000
    stop.set()
    await ticking
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    answered = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"{logins} logins at once: answered in {took:.0f} ms {answered}")
    print(f"loop lag, during them: {_lags(lags)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        asyncio.run(run(Path(work), args.logins))


if __name__ == "__main__":
    main()
