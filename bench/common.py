"""Shared parts of the daemon benchmarks (bench/ingest.py, bench/alert_latency.py).

A mosquitto broker on a free loopback port, a sentinel config written for the run, the daemon
as a real `sentinel run` subprocess watched through its heartbeat row and /proc, a raw MQTT
3.1.1 publisher (pre-encoded packets, so the load generator costs almost no CPU and the
broker, not Python, sets the pace) and loopback HTTP sinks (the tests' HttpSink, so a bench
and a test read the same channel the same way).
Everything binds 127.0.0.1 and is cleaned up by the caller's `with`/`finally`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import socket
import sqlite3
import struct
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensors.sim.broker import mosquitto_binary
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until_sync

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
SENTINEL = REPO / ".venv" / "bin" / "sentinel"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the machine ---------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    mem_kb = 0
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    version = subprocess.run(
        [mosquitto_binary(), "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu or platform.processor() or "unknown",
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mosquitto": version[0] if version else "unknown",
    }


def machine_lines() -> list[str]:
    return [f"- {k}: {v}" for k, v in machine().items()]


# -- /proc sampling --------------------------------------------------------------------------


def stat_cpu_seconds(path: str | Path) -> float:
    """User+system CPU seconds in a /proc stat file (a process's, or one of its threads')."""
    with open(path, encoding="ascii") as f:
        # the command name may hold spaces; the fields after its ')' are fixed
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class ProcStats:
    """CPU time and memory of one process, read from /proc (no psutil needed)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        return stat_cpu_seconds(f"/proc/{self.pid}/stat")

    def memory_kb(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(rest.split()[0])
        return out

    def hwm_mb(self) -> float:
        return self.memory_kb().get("VmHWM", 0) / 1024

    def rss_mb(self) -> float:
        return self.memory_kb().get("VmRSS", 0) / 1024


# -- broker ----------------------------------------------------------------------------------


# -- config ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sensor:
    id: str
    kind: str
    format: str
    topic: str
    location: str = ""


def private_file(path: Path, text: str) -> None:
    """Credential-style files must be 0600 or the daemon refuses to start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def write_config(
    work: Path,
    port: int,
    sensors: Sequence[Sensor],
    *,
    apprise_urls: Sequence[str] = (),
    heartbeat: str = "1s",
    group_window: str = "0s",
    send_timeout: str = "2s",
    log_level: str = "warning",
) -> Path:
    """A sentinel.toml (and Apprise YAML when URLs are given) for one benchmark run."""
    lines = [
        "[site]",
        'name = "bench"',
        "[daemon]",
        f'state_dir = "{work / "state"}"',
        f'heartbeat = "{heartbeat}"',
        f'log_level = "{log_level}"',
        "[mqtt]",
        'host = "127.0.0.1"',
        f"port = {port}",
        'client_id = "sentinel-bench"',
        'publish_prefix = "sentinel-bench"',
        "reconnect_min = 0.2",
    ]
    for s in sensors:
        lines += [
            "[[sensors]]",
            f'id = "{s.id}"',
            f'location = "{s.location or s.id}"',
            f'kind = "{s.kind}"',
            f'format = "{s.format}"',
            f'topic = "{s.topic}"',
            # the benches run for minutes; nobody should be "lost" meanwhile
            'max_age = "1h"',
        ]
    lines += [
        "[alerts]",
        'language = "en"',
        f'group_window = "{group_window}"',
        f'send_timeout = "{send_timeout}"',
    ]
    if apprise_urls:
        apprise = work / "apprise.yml"
        body = "urls:\n" + "".join(
            f"  - {url}:\n      tag: critical, warning, info\n" for url in apprise_urls
        )
        private_file(apprise, body)
        lines.append(f'apprise_config = "{apprise}"')
    config = work / "sentinel.toml"
    private_file(config, "\n".join(lines) + "\n")
    return config


# -- the daemon ------------------------------------------------------------------------------


class DaemonProcess:
    """`sentinel --config FILE run` as a subprocess, observed through its heartbeat row."""

    def __init__(self, config: Path, work: Path) -> None:
        self.config = config
        self.work = work
        self.log_path = work / "daemon.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(SENTINEL), "--config", str(config), "run"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
        self.stats = ProcStats(self.process.pid)
        self._conn: sqlite3.Connection | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def heartbeat(self) -> tuple[float, dict[str, Any]] | None:
        """(heartbeat ts, components health) from the state DB, or None before the first."""
        if self._conn is None:
            db = self.work / "state" / "sentinel.db"
            if not db.exists():
                return None
            self._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = self._conn.execute("SELECT ts, components FROM heartbeat WHERE id = 1").fetchone()
        except sqlite3.OperationalError:
            return None
        if row is None:
            return None
        return float(row[0]), json.loads(row[1])

    def wait_connected(self) -> None:
        """Until the MQTT source has subscribed (plain messages are not retained)."""

        def connected() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log_tail()}")
            beat = self.heartbeat()
            return beat is not None and beat[1].get("source:mqtt", {}).get("state") == "connected"

        until_sync(connected, START_TIMEOUT, "the daemon's MQTT subscription")

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> int | None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()
        return self.process.returncode


# -- raw MQTT publisher ----------------------------------------------------------------------


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("!H", len(raw)) + raw


def publish_packet(topic: str, payload: bytes) -> bytes:
    """One MQTT 3.1.1 PUBLISH, QoS 0, not retained."""
    body = _utf8(topic) + payload
    return b"\x30" + _remaining_length(len(body)) + body


class RawPublisher:
    """A minimal MQTT 3.1.1 client that writes pre-encoded QoS 0 PUBLISH packets.

    The load generator must not be the bottleneck on a 2-core box: encoding once and writing
    packets in bulk costs a fraction of what a Python MQTT client spends per message.
    `sync()` sends PINGREQ and waits for PINGRESP: TCP keeps order, so once it returns the
    broker has taken every packet written before it.
    """

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        variable = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 600)
        body = variable + _utf8(client_id)
        self.sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        ack = self._read(4)
        if ack[0] != 0x20 or ack[3] != 0:
            raise RuntimeError(f"broker refused the connection: {ack!r}")

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def send(self, packets: bytes) -> None:
        self.sock.sendall(packets)

    def sync(self) -> None:
        self.sock.sendall(b"\xc0\x00")
        if self._read(2) != b"\xd0\x00":
            raise RuntimeError("unexpected answer to PINGREQ")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")
        self.sock.close()


# -- loopback json:// sink -------------------------------------------------------------------


@contextlib.contextmanager
def sinks(*stalls: float) -> Iterator[list[HttpSink]]:
    """One sink per stall (0: answers at once; a long stall: a channel that never answers)."""
    made: list[HttpSink] = []
    try:
        for stall in stalls:
            made.append(HttpSink(stall))
        yield made
    finally:
        for sink in made:
            sink.close()


# -- numbers ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
