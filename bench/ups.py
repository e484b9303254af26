"""Benchmark (issue #15): from a UPS going on battery to the page at the loopback channel.

    .venv/bin/python -m bench.ups [--rounds 20] [--interval 2]

Real parts: Debian's dummy-ups driver and upsd (tests/fixtures/nut.py) -> `sentinel run`
(NUT source polling every `--interval` s, alarm engine, outbox, sender, Apprise json://) ->
a loopback HTTP sink. Each round waits a random 0..interval s (so the change lands at a random
point of sentinel's poll cycle), rewrites the dummy UPS's file to "OB DISCHRG", and times:

- upsd: the file written -> upsd answers OB (a raw `GET VAR` every 5 ms on its own
  connection). dummy-ups looks at its file once a second: this part is the simulator's,
  not sentinel's (a real driver's is its own poll, often 2-5 s; upsmon adds its own too).
- sentinel: upsd answers OB -> the page's POST arrives. This is what the goal is about:
  at most one poll interval of waiting for the next `LIST VAR`, then the engine, the outbox
  transaction and the sender.
- total: the file written -> the POST.

Then back to "OL" and the resolve is awaited before the next round.
Writes bench/results/ups.md.
"""

from __future__ import annotations

import argparse
import random
import socket
import tempfile
import threading
import time
from pathlib import Path

from bench.common import REPO, machine_lines, ms, percentile
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.nut import ON_MAINS, Upsd
from tests.sensors.test_nut_pages import UpsDaemon

RESULTS = REPO / "bench" / "results" / "ups.md"
WAIT = 20.0
GOAL_MARGIN = 0.100


class UpsdWatch:
    """Asks upsd for ups.status every 5 ms on one connection; notes when it first says OB."""

    def __init__(self, upsd: Upsd) -> None:
        self.sock = socket.create_connection((upsd.host, upsd.port), timeout=2)
        self.file = self.sock.makefile("rb")

    def status(self) -> str:
        self.sock.sendall(b"GET VAR rack ups.status\n")
        line = self.file.readline().decode()
        # VAR rack ups.status "OB DISCHRG"
        return line.split(" ", 3)[3].strip().strip('"') if line.startswith("VAR") else line

    def wait_for(self, flag: str, within: float = WAIT) -> float:
        deadline = time.time() + within
        while time.time() < deadline:
            if flag in self.status().split():
                return time.time()
            time.sleep(0.005)
        raise TimeoutError(f"upsd did not report {flag}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def run(rounds: int, interval: float) -> list[tuple[float, float, float]]:
    with tempfile.TemporaryDirectory(prefix="bench-ups-") as tmp:
        upsd = Upsd(Path(tmp) / "nut")
        upsd.start()
        sink = HttpSink()
        daemon = UpsDaemon(Path(tmp), upsd, sink, crit_after=3600.0, interval=interval)
        daemon.start()
        watch = UpsdWatch(upsd)
        out: list[tuple[float, float, float]] = []
        try:
            for n in range(rounds):
                time.sleep(random.uniform(0, interval))
                seen = len(sink.delivered("/sms"))
                upsd_seen: list[float] = []
                waiter = threading.Thread(target=note_ob, args=(watch, upsd_seen))
                waiter.start()
                written = upsd.set("rack", ups_status="OB DISCHRG")
                page = wait_page(sink, seen)
                waiter.join()
                out.append((upsd_seen[0] - written, page.ts - upsd_seen[0], page.ts - written))
                print(f"round {n + 1}: total {ms(out[-1][2])}, sentinel {ms(out[-1][1])}")
                upsd.set("rack", ups_status=ON_MAINS["ups.status"])
                wait_page(sink, seen + 1)
        finally:
            watch.close()
            daemon.stop()
            sink.close()
            upsd.stop()
        return out


def note_ob(watch: UpsdWatch, into: list[float]) -> None:
    into.append(watch.wait_for("OB"))


def wait_page(sink: HttpSink, seen: int):  # type: ignore[no-untyped-def]
    deadline = time.time() + WAIT
    while time.time() < deadline:
        got = sink.delivered("/sms")
        if len(got) > seen:
            return got[seen]
        time.sleep(0.002)
    raise TimeoutError("no page")


def report(samples: list[tuple[float, float, float]], interval: float, rounds: int) -> str:
    lines = [
        "# UPS to page (#15)",
        "",
        f"`.venv/bin/python -m bench.ups --rounds {rounds} --interval {interval:g}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        *machine_lines(),
        "",
        "| part | p50 | p90 | max |",
        "| --- | --- | --- | --- |",
    ]
    names = ("upsd (dummy-ups's 1 s file poll)", "sentinel (upsd -> POST)", "total")
    for i, name in enumerate(names):
        values = [s[i] for s in samples]
        lines.append(
            f"| {name} | {ms(percentile(values, 50))} | {ms(percentile(values, 90))} "
            f"| {ms(max(values))} |"
        )
    worst = max(s[1] for s in samples)
    lines += [
        "",
        f"NUT poll interval {interval:g} s; goal: sentinel's part <= {interval:g} s + 100 ms: "
        f"{'met' if worst <= interval + GOAL_MARGIN else 'NOT met'} (max {ms(worst)}).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    samples = run(args.rounds, args.interval)
    text = report(samples, args.interval, args.rounds)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
