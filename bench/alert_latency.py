"""Benchmark (issue #5): from the MQTT publish of a leak to the page arriving over HTTP.

    .venv/bin/python -m bench.alert_latency [--events 200]

Through the whole daemon (`sentinel run`: MQTT source, alarm engine with its SQLite
transaction, transactional outbox, sender, Apprise `json://`) to a loopback HTTP sink. A leak
sensor's hold time is 0 and `group_window` 0, so each event is its own message. Leak true and
false alternate over four sensors; only FIRING pages are timed, and each is awaited (and its
RESOLVED page too) before the next publish. Then again with ten json:// channels of which one
stalls (its sink never answers within the send timeout), timed at a healthy channel. The peer,
measured in the same run, is the floor: mosquitto -> aiomqtt subscriber ->
`Apprise.async_notify` -> the same kind of sink, with no rules and no storage.
Writes bench/results/alert_latency.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    REPO,
    DaemonProcess,
    RawPublisher,
    Sensor,
    machine_lines,
    ms,
    percentile,
    publish_packet,
    sinks,
    write_config,
)
from sensors.sim.broker import Broker, start_broker
from tests.fixtures.http_sink import HttpSink

RESULTS = REPO / "bench" / "results" / "alert_latency.md"
GOAL_P99 = 0.050
PEER_REFERENCE = "p50 3.6 ms, p99 17.8 ms"
LEAK_SENSORS = 4
WARMUP_EVENTS = 5
WAIT = 20.0  # a page not there after this long counts as lost
STALL = 3600.0  # the stalled sink holds every request this long (cut short at close)
SEND_TIMEOUT = "2s"


def leak_topic(n: int) -> str:
    return f"zigbee2mqtt/bench-leak-{n}"


def leak_sensors() -> list[Sensor]:
    return [
        Sensor(f"leak-{n}", "water_leak", "zigbee2mqtt", leak_topic(n), f"bench leak {n}")
        for n in range(LEAK_SENSORS)
    ]


def _type(arrival: Any) -> str:
    return str(arrival.body.get("type", "")) if isinstance(arrival.body, dict) else ""


def timed_events(
    pub: RawPublisher, sink: HttpSink, path: str, events: int
) -> tuple[list[float], int]:
    """Publishes leak true/false pairs; returns the FIRING latencies (s) and pages lost."""
    latencies: list[float] = []
    lost = 0
    index = len(sink.requests())
    for k in range(events):
        topic = leak_topic(k % LEAK_SENSORS)
        t0 = time.monotonic()
        pub.send(publish_packet(topic, b'{"water_leak": true, "battery": 90}'))
        try:
            got, index = sink.next_request(
                lambda a: a.path == path and _type(a) == "failure", index, WAIT
            )
            latencies.append(got.mono - t0)
        except TimeoutError:
            lost += 1
        pub.send(publish_packet(topic, b'{"water_leak": false, "battery": 90}'))
        with contextlib.suppress(TimeoutError):
            _, index = sink.next_request(
                lambda a: a.path == path and _type(a) == "success", index, WAIT
            )
    return latencies, lost


@dataclass
class Result:
    name: str
    latencies: list[float]
    lost: int
    note: str = ""

    def row(self) -> str:
        if not self.latencies:
            return f"| {self.name} | 0 | - | - | - | {self.lost} |"
        v = self.latencies
        return (
            f"| {self.name} | {len(v)} | {ms(percentile(v, 50))} | {ms(percentile(v, 99))} "
            f"| {ms(max(v))} | {self.lost} |"
        )


def run_daemon(
    broker: Broker, root: Path, name: str, events: int, channels: int, stalled: bool
) -> Result:
    work = Path(tempfile.mkdtemp(prefix="daemon-", dir=root))
    stalls = [STALL if stalled and n == channels - 1 else 0.0 for n in range(channels)]
    with sinks(*stalls) as made:
        urls = [s.json_url(f"/ch{n}") for n, s in enumerate(made)]
        config = write_config(
            work,
            broker.port,
            leak_sensors(),
            apprise_urls=urls,
            send_timeout=SEND_TIMEOUT,
            log_level="error",
        )
        daemon = DaemonProcess(config, work)
        pub: RawPublisher | None = None
        try:
            daemon.wait_connected()
            pub = RawPublisher(broker.port, f"bench-alert-{name}")
            timed_events(pub, made[0], "/ch0", WARMUP_EVENTS)
            latencies, lost = timed_events(pub, made[0], "/ch0", events)
            note = ""
            if stalled:
                stuck = len(made[-1].requests())
                note = (
                    f"the stalled channel received {stuck} request(s) (each held open, "
                    f"never answered in time); other healthy channels got "
                    f"{sum(len(s.requests()) for s in made[1:-1])} requests"
                )
            time.sleep(1.2)  # one more heartbeat, so the sender's counters are current
            beat = daemon.heartbeat()
            if beat is not None:
                alerts = beat[1].get("alerts", {})
                note += (
                    f"{'; ' if note else ''}sender at the end: sent {alerts.get('sent')}, "
                    f"pending {alerts.get('pending')}, failed sends "
                    f"{alerts.get('failed_sends')}, RSS peak {daemon.stats.hwm_mb():.1f} MB"
                )
            return Result(name, latencies, lost, note)
        finally:
            if pub is not None:
                pub.close()
            code = daemon.stop()
            if code not in (0, None):
                print(f"warning: daemon exited with {code}: {daemon.log_tail()}", file=sys.stderr)


# -- the peer (floor) ------------------------------------------------------------------------


async def peer_main(port: int, urls: Sequence[str]) -> None:
    """mosquitto -> aiomqtt -> Apprise.async_notify -> json://, nothing else."""
    import json

    import aiomqtt
    import apprise

    notifier = apprise.Apprise()
    for url in urls:
        notifier.add(url)
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-alert-peer") as client:
        await client.subscribe("zigbee2mqtt/#", qos=1)
        print("ready", flush=True)
        async for message in client.messages:
            data = json.loads(message.payload)  # type: ignore[arg-type]
            leak = bool(data.get("water_leak"))
            await notifier.async_notify(
                body=f"leak {'detected' if leak else 'cleared'} on {message.topic}",
                title="leak",
                notify_type=apprise.NotifyType.FAILURE if leak else apprise.NotifyType.SUCCESS,
            )


def run_peer(broker: Broker, events: int, channels: int) -> Result:
    with sinks(*([0.0] * channels)) as made:
        sink = made[0]
        proc = subprocess.Popen(
            [
                str(PYTHON),
                "-m",
                "bench.alert_latency",
                "_peer",
                str(broker.port),
                *[s.json_url(f"/ch{n}") for n, s in enumerate(made)],
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("ready"):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        pub: RawPublisher | None = None
        try:
            if not ready.wait(20):
                raise RuntimeError("the peer did not connect")
            pub = RawPublisher(broker.port, "bench-alert-peer-pub")
            timed_events(pub, sink, "/ch0", WARMUP_EVENTS)
            latencies, lost = timed_events(pub, sink, "/ch0", events)
            what = "1 channel" if channels == 1 else f"{channels} json:// URLs in one Apprise"
            return Result(f"peer: aiomqtt -> Apprise.async_notify ({what})", latencies, lost)
        finally:
            if pub is not None:
                pub.close()
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- report ----------------------------------------------------------------------------------


def report(args: argparse.Namespace, results: list[Result], command: str) -> str:
    lines = [
        "# Alert latency benchmark (issue #5): MQTT publish to HTTP POST, whole daemon",
        "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "",
        "## Machine",
        *machine_lines(),
        "",
        "## Method",
        f"- mosquitto on 127.0.0.1, `sentinel run` as a subprocess with {LEAK_SENSORS} "
        "Zigbee2MQTT leak sensors (built-in rule: critical, hold 0), `group_window = 0`, "
        f"`send_timeout = {SEND_TIMEOUT}`, Apprise YAML with json:// URLs to loopback HTTP "
        "servers (one server per channel, so channels are distinct services).",
        "- The publisher (raw MQTT 3.1.1, QoS 0) sends `water_leak: true` and takes "
        "`time.monotonic()` just before the write; the sink takes it when the POST arrives "
        "(CLOCK_MONOTONIC is system-wide). Only FIRING pages (Apprise type `failure`) are "
        "timed; each is awaited, then `water_leak: false` is sent and its RESOLVED page "
        "awaited, so every event is alone in the pipeline. Sensors alternate (4).",
        f"- {args.events} timed events per run after {WARMUP_EVENTS} untimed warm-up events. "
        "Percentiles are nearest-rank.",
        "- Stalled run: ten channels; the tenth's server reads the request and never answers "
        f"(its lane hits the {SEND_TIMEOUT} send timeout and retries with backoff); latency "
        "is measured at channel 1.",
        "- Peer (floor): a subprocess with aiomqtt subscribed to the same topics and one "
        "Apprise object with the sink's json:// URL; `await async_notify(...)` per message.",
        "",
        "## Results",
        "",
        "| run | events | p50 | p99 | max | lost |",
        "|---|---|---|---|---|---|",
        *[r.row() for r in results],
        "",
    ]
    for r in results:
        if r.note:
            lines.append(f"- {r.name}: {r.note}")
    by = {r.name: r for r in results}
    peers = [r for r in results if r.name.startswith("peer")]
    peer = peers[0] if peers else None
    peer10 = peers[1] if len(peers) > 1 else None
    one, ten = by.get("daemon, 1 channel"), by.get("daemon, 10 channels, 1 stalled")
    healthy = by.get("daemon, 10 channels")
    lines += ["", "## Against the goal and the peer", ""]
    if peer and peer.latencies:
        pp50, pp99 = percentile(peer.latencies, 50), percentile(peer.latencies, 99)
        lines.append(
            f"- peer in this run: p50 {ms(pp50)}, p99 {ms(pp99)} (reference on this "
            f"kind of machine: {PEER_REFERENCE})."
        )
        for r in (one, healthy, ten):
            if r and r.latencies:
                p50, p99 = percentile(r.latencies, 50), percentile(r.latencies, 99)
                lines.append(
                    f"- {r.name}: p50 {ms(p50)} ({p50 / pp50:.1f}x the peer), p99 "
                    f"{ms(p99)} ({p99 / pp99:.1f}x the peer)."
                )
    if peer10 and peer10.latencies:
        q50, q99 = percentile(peer10.latencies, 50), percentile(peer10.latencies, 99)
        lines.append(
            f"- peer with ten json:// URLs in one Apprise object (channel 1 timed): "
            f"p50 {ms(q50)}, p99 {ms(q99)}: the floor for ten channels on this box."
        )
        for r in (healthy, ten):
            if r and r.latencies:
                p50, p99 = percentile(r.latencies, 50), percentile(r.latencies, 99)
                lines.append(
                    f"- {r.name} vs that floor: p50 {p50 / q50:.1f}x, p99 {p99 / q99:.1f}x."
                )
    for r in (one, healthy, ten):
        if r and r.latencies:
            p99 = percentile(r.latencies, 99)
            lines.append(
                f"- goal p99 < {ms(GOAL_P99)} for {r.name}: "
                f"{'MET' if p99 < GOAL_P99 and not r.lost else 'MISSED'}."
            )
    if healthy and ten and healthy.latencies and ten.latencies:
        d50 = percentile(ten.latencies, 50) - percentile(healthy.latencies, 50)
        d99 = percentile(ten.latencies, 99) - percentile(healthy.latencies, 99)
        lines.append(
            f"- the stalled channel changed channel 1's p50 by {ms(d50)} and its p99 "
            f"by {ms(d99)} (10 channels with vs. without the stall)."
        )
    lines += [
        "",
        "## Interpretation",
        "",
        "- One channel: the daemon's extra cost over the floor is the engine's SQLite "
        "transaction (alarm row, transition, outbox row, fsync), the sender's claim "
        "transaction and the message template; a few milliseconds.",
        "- Ten channels: each FIRING becomes ten outbox rows and ten concurrent Apprise sends. "
        "Each json:// send is a new `requests` session and TCP connection in Apprise's thread "
        "pool, a few milliseconds of CPU under the GIL, and the timed channel is served in "
        "whatever order the lanes start, so it waits for part of the others' CPU. Compare "
        "with the ten-URL peer above: that is the same Apprise work without sentinel. "
        "The sender reads every lane's rows in one transaction and records the lanes' "
        "outcomes in shared transactions (group commit): with one fsync'd transaction per "
        "lane, an earlier run had p99 421 ms here.",
        "- The stalled channel: its lane holds one request open until the send timeout, then "
        "backs off and retries; the other lanes never wait for it (one task per channel, rows "
        "per channel). Compare the two ten-channel runs for its effect.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_peer":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(peer_main(int(argv[1]), argv[2:]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.alert_latency", description=__doc__)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    command = "python -m bench.alert_latency " + " ".join(argv)
    root = Path(tempfile.mkdtemp(prefix="sentinel-bench-alert-"))
    broker = start_broker(root)
    results: list[Result] = []
    try:
        for name, channels, stalled in (
            ("daemon, 1 channel", 1, False),
            ("daemon, 10 channels", 10, False),
            ("daemon, 10 channels, 1 stalled", 10, True),
        ):
            results.append(run_daemon(broker, root, name, args.events, channels, stalled))
            print(results[-1].row(), flush=True)
        for channels in (1, 10):
            results.append(run_peer(broker, args.events, channels))
            print(results[-1].row(), flush=True)
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(args, results, command), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
