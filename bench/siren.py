"""Benchmark (issue 15, no goal set): from the MQTT publish of a leak to the siren's command.

    .venv/bin/python -m bench.siren [--events 40]

In-process runtime (`sentinel.runtime.Runtime`, as `sentinel run` builds it): MQTT source,
alarm engine with its SQLite transaction, the `output:siren` component (follows the active
alarms every FOLLOW_INTERVAL, publishes on a short connection of its own), on a mosquitto of
its own. Each round waits a random part of FOLLOW_INTERVAL (a leak comes at any moment of
the follow loop), publishes a leak and waits for "ON" on the command topic, then a dry
reading and waits for "OFF". The floor, in the same run: one publish to mosquitto and the
same subscriber seeing it. Writes bench/results/siren.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import aiomqtt

from bench.common import machine_lines, ms, percentile
from sentinel.config import Config
from sentinel.outputs import FOLLOW_INTERVAL
from sentinel.runtime import Runtime
from sentinel.store import Store
from tests.fixtures.mosquitto import Mosquitto

TOPIC = "cmnd/bench-siren/POWER"


async def run(events: int, workdir: Path) -> list[str]:
    broker = Mosquitto(workdir / "broker")
    broker.start()
    cfg = Config.model_validate(
        {
            "daemon": {"state_dir": str(workdir / "state")},
            "mqtt": {"host": broker.host, "port": broker.port, "client_id": "bench-siren"},
            "sensors": [{"id": "leak", "kind": "water_leak", "topic": "zigbee2mqtt/leak"}],
            "outputs": [{"name": "siren", "kind": "mqtt", "topic": TOPIC}],
        }
    )
    store = await Store.open(workdir / "state")
    await Runtime.migrate(store)
    runtime = Runtime(cfg, store)
    got: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
    on: list[float] = []
    off: list[float] = []
    floor: list[float] = []
    try:
        async with (
            aiomqtt.Client(broker.host, broker.port) as sub,
            aiomqtt.Client(broker.host, broker.port) as pub,
        ):
            await sub.subscribe(TOPIC, qos=1)
            await sub.subscribe("bench/floor", qos=1)

            async def listen() -> None:
                async for message in sub.messages:
                    got.put_nowait((bytes(message.payload).decode(), time.perf_counter()))  # type: ignore[arg-type]

            listener = asyncio.create_task(listen())
            await runtime.start()
            assert (await asyncio.wait_for(got.get(), 10))[0] == "OFF"
            for _ in range(events):
                for wet, want, into in ((True, "ON", on), (False, "OFF", off)):
                    payload = '{"water_leak": %s}' % ("true" if wet else "false")
                    # a real leak comes at any moment of the output's follow loop
                    await asyncio.sleep(random.uniform(0, FOLLOW_INTERVAL))
                    started = time.perf_counter()
                    await pub.publish("zigbee2mqtt/leak", payload, qos=1)
                    text, at = await asyncio.wait_for(got.get(), 10)
                    assert text == want, (text, want)
                    into.append(at - started)
                started = time.perf_counter()
                await pub.publish("bench/floor", "x", qos=1)
                floor.append((await asyncio.wait_for(got.get(), 10))[1] - started)
            listener.cancel()
    finally:
        await runtime.stop()
        await store.close()
        broker.stop()

    def row(name: str, xs: list[float]) -> str:
        return (
            f"| {name} | {len(xs)} | {ms(percentile(xs, 50))} | {ms(percentile(xs, 90))} | "
            f"{ms(percentile(xs, 99))} | {ms(max(xs))} |"
        )

    return [
        "# Siren: leak published -> siren command on MQTT (issue 15)",
        "",
        f"Command: `.venv/bin/python -m bench.siren --events {events}`; "
        f"FOLLOW_INTERVAL {FOLLOW_INTERVAL * 1000:.0f} ms.",
        "",
        *machine_lines(),
        "",
        "| path | n | p50 | p90 | p99 | max |",
        "| --- | --- | --- | --- | --- | --- |",
        row("leak -> siren ON", on),
        row("dry -> siren OFF", off),
        row("floor: publish -> subscriber", floor),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lines = asyncio.run(run(args.events, Path(tmp)))
    out = Path(__file__).parent / "results" / "siren.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
