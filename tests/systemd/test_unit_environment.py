"""The daemon run the way sentinel.service runs it: the unit's umask and environment, the
directories systemd would create under a temp root, a real notify socket."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

UNIT = Path(__file__).parents[2] / "systemd" / "sentinel.service"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    current = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line
            continue
        key, _, value = line.partition("=")
        if current == "[Service]":
            settings.setdefault(key, []).append(value)
    return settings


def seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "min": 60, "m": 60, "h": 3600}
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_daemon_under_the_units_environment(tmp_path: Path) -> None:
    unit = unit_settings()
    root = tmp_path / "root"
    state = root / "var/lib/sentinel"
    runtime = root / "run/sentinel"
    confdir = root / "etc/sentinel"
    for d in (state, runtime, confdir):
        d.mkdir(parents=True)
        d.chmod(int(unit.get("StateDirectoryMode", ["0750"])[0], 8))
    config = confdir / "sentinel.toml"
    config.write_text(f'[daemon]\nstate_dir = "{state}"\nheartbeat = "1s"\n')
    config.chmod(0o640)

    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.2)
    messages: list[str] = []
    reading = True

    def read() -> None:
        while reading:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    env = {
        "PATH": os.environ["PATH"],
        "NOTIFY_SOCKET": str(notify),
        "WATCHDOG_USEC": str(int(seconds(unit["WatchdogSec"][0]) * 1_000_000)),
        "STATE_DIRECTORY": str(state),
        "RUNTIME_DIRECTORY": str(runtime),
        "CONFIGURATION_DIRECTORY": str(confdir),
        "SENTINEL_CONFIG": str(config),
    }
    for assignment in unit.get("Environment", []):
        for pair in assignment.split():
            key, _, value = pair.partition("=")
            env[key] = value
    umask = int(unit["UMask"][0], 8)

    def wait(prefix: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(m.startswith(prefix) for m in list(messages)):
            assert time.monotonic() < deadline, f"no {prefix}: {messages}"
            time.sleep(0.05)

    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "run"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(umask),  # the unit's UMask, nothing else
    )
    try:
        wait("READY=1")
        wait("WATCHDOG=1")
        db = state / "sentinel.db"
        mode = stat.S_IMODE(db.stat().st_mode)
        # admins in the daemon's group read status; nobody else reads anything
        assert mode & 0o040, f"db not group-readable: {mode:o}"
        assert not mode & 0o007, f"db open to others: {mode:o}"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=seconds(unit["TimeoutStopSec"][0]))
        wait("STOPPING=1")
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        err = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reading = False
        reader.join()
        sock.close()
