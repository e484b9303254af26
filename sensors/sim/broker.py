"""A throwaway mosquitto broker on a free loopback port, for `sentinel demo` and the
benchmarks (the test suite has its own restartable fixture in tests/fixtures/mosquitto.py)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 10.0


class BrokerMissing(RuntimeError):
    """mosquitto is not installed."""


@dataclass
class Broker:
    """A mosquitto process on 127.0.0.1 (anonymous, no persistence, no log)."""

    process: subprocess.Popen[bytes]
    port: int
    config: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(
    port: int, process: subprocess.Popen[bytes], limit: float = START_TIMEOUT
) -> None:
    """Waits until something accepts on 127.0.0.1:`port`; raises if `process` exits first
    or nothing listens within `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} (port {port})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {limit:g}s")


def mosquitto_binary() -> str:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise BrokerMissing(
            "the mosquitto broker is not installed: `apt-get install mosquitto` "
            "(scripts/setup.sh does it)"
        )
    return binary


def start_broker(work: Path) -> Broker:
    """Starts mosquitto with a generated config in `work` and waits until it listens.

    Its defaults stay (max_queued_messages 1000): a subscriber that cannot keep up loses
    QoS 0 messages at the broker, as it would in a server room.
    """
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [mosquitto_binary(), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    broker = Broker(process, port, conf)
    try:
        wait_listening(port, process)
    except BaseException:
        broker.stop()
        raise
    return broker
