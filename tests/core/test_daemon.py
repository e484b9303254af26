"""The daemon as systemd runs it: a real process, a real notify socket, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.poll import until_sync

PYTHON = sys.executable


def sentinel(*args: str, config: Path, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "sentinel", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        **kw,
    )


def status_json(config: Path) -> tuple[int, dict]:
    proc = sentinel("status", "--json", config=config)
    return proc.returncode, json.loads(proc.stdout)


def write_config(path: Path, state: Path, site: str = "test room") -> Path:
    path.write_text(
        f'[site]\nname = "{site}"\n\n[daemon]\nstate_dir = "{state}"\nheartbeat = "0.3s"\n',
        encoding="utf-8",
    )
    return path


class Daemon:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.config = write_config(tmp / "sentinel.toml", self.state)
        self.notify_path = tmp / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.notify_path))
        self.sock.settimeout(0.2)
        self.log = open(tmp / "daemon.log", "w+")  # noqa: SIM115 - closed in stop()
        self.messages: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        # Drain the socket all the time, as systemd does.
        self._reading = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while self._reading:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def start(self) -> None:
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify_path), WATCHDOG_USEC="400000")
        env.pop("JOURNAL_STREAM", None)
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), "run"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def wait_message(self, prefix: str, timeout: float = 15) -> str:
        return until_sync(
            lambda: next((m for m in list(self.messages) if m.startswith(prefix)), None),
            timeout,
            lambda: f"a {prefix!r} datagram; got {self.messages}; log:\n{self.logs()}",
        )

    def logs(self) -> str:
        self.log.flush()
        return (self.tmp / "daemon.log").read_text()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reading = False
        self._reader.join()
        self.sock.close()
        self.log.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        yield d
    finally:
        d.stop()


def test_status_never_started(tmp_path: Path) -> None:
    config = write_config(tmp_path / "s.toml", tmp_path / "state")
    code, report = status_json(config)
    assert code == 3
    assert report["daemon"]["state"] == "never-started"
    nagios = sentinel("status", "--nagios", config=config)
    assert nagios.returncode == 3
    assert nagios.stdout.startswith("SENTINEL UNKNOWN - ")
    human = sentinel("status", config=config)
    assert human.returncode == 3
    assert "never-started" in human.stdout and "Sensors" in human.stdout


def test_lifecycle_notify_status_and_sigterm(daemon: Daemon) -> None:
    daemon.start()
    assert daemon.wait_message("READY=1")
    daemon.wait_message("WATCHDOG=1")
    # alive: all three forms agree
    until_sync(lambda: status_json(daemon.config)[1]["daemon"]["state"] == "up", 30, "up")
    code, report = status_json(daemon.config)
    assert code == 0, report["overall"]
    assert report["daemon"]["pid"] == daemon.proc.pid
    assert report["site"] == "test room"
    assert report["overall"]["state"] == "OK"
    nagios = sentinel("status", "--nagios", config=daemon.config)
    assert nagios.returncode == 0
    assert nagios.stdout.startswith("SENTINEL OK - ")
    assert "'heartbeat_age'=" in nagios.stdout
    human = sentinel("status", config=daemon.config)
    assert human.returncode == 0
    assert "daemon: up" in human.stdout
    assert "none configured" in human.stdout  # sections with nothing configured say so

    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    daemon.wait_message("STOPPING=1")
    time.sleep(0.3)  # the reader thread drains anything still queued
    assert daemon.messages.count("STOPPING=1") == 1, daemon.messages
    code, report = status_json(daemon.config)
    assert report["daemon"]["state"] == "stopped"
    assert code == 2  # a stopped guardian is critical for monitoring


def test_killed_daemon_reads_as_down(daemon: Daemon) -> None:
    daemon.start()
    daemon.wait_message("READY=1")
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=5)
    code, report = status_json(daemon.config)
    assert code == 2
    assert report["daemon"]["state"] == "down"
    assert report["daemon"]["heartbeat_age"] is not None
    nagios = sentinel("status", "--nagios", config=daemon.config)
    assert nagios.returncode == 2
    assert "SENTINEL CRITICAL - daemon down" in nagios.stdout


def test_sighup_good_and_bad_config(daemon: Daemon) -> None:
    daemon.start()
    daemon.wait_message("READY=1")
    write_config(daemon.config, daemon.state, site="renamed room")
    daemon.proc.send_signal(signal.SIGHUP)
    until_sync(lambda: status_json(daemon.config)[1]["site"] == "renamed room", 30, "reload")
    until_sync(lambda: "config reloaded" in daemon.logs(), 30, "reload logged")

    daemon.config.write_text('[daemon]\nstate_dir = "x"\nheartbeat = "soon"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    until_sync(lambda: "config reload rejected" in daemon.logs(), 30, "rejection logged")
    assert "daemon.heartbeat" in daemon.logs()
    assert daemon.proc.poll() is None  # still running on the old config
    # put the good file back so status can find the state dir, and see the old config runs
    write_config(daemon.config, daemon.state, site="renamed room")
    until_sync(
        lambda: "config reload rejected" in status_json(daemon.config)[1]["daemon"]["status"],
        30,
        "rejection shown in status",
    )
    assert status_json(daemon.config)[1]["daemon"]["state"] == "up"
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=10) == 0


def test_journald_priority_prefixes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "s.toml", state)
    env = dict(os.environ, JOURNAL_STREAM="8:1234")
    proc = subprocess.Popen(
        [PYTHON, "-m", "sentinel", "--config", str(config), "run"],
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        until_sync(lambda: (state / "sentinel.db").exists(), 30, "db")
        until_sync(lambda: status_json(config)[1]["daemon"]["state"] == "up", 30, "up")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    lines = [line for line in err.splitlines() if line]
    assert lines, "daemon logged nothing"
    assert all(line.startswith("<") and line[2] == ">" for line in lines), lines
    assert any(line.startswith("<6>sentinel.daemon: sentinel ") for line in lines)
    assert not any(line[3:7].isdigit() for line in lines)  # no timestamps under journald


def test_status_with_a_corrupt_state_database_is_unknown(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "sentinel.db").write_bytes(b"this is not a database" * 100)
    config = write_config(tmp_path / "s.toml", state)
    code, report = status_json(config)
    assert code == 3
    assert report["daemon"]["state"] == "unknown"
    assert "cannot read the state database" in report["overall"]["reasons"][0]
    nagios = sentinel("status", "--nagios", config=config)
    assert nagios.returncode == 3 and nagios.stdout.startswith("SENTINEL UNKNOWN - cannot read")


def test_a_refused_second_daemon_tells_systemd_why(daemon: Daemon, tmp_path: Path) -> None:
    """Under Restart=on-failure systemd retries a refused start every RestartSec; what
    `systemctl status` shows meanwhile is the STATUS= line naming the holder."""
    daemon.start()
    daemon.wait_message("READY=1")
    assert daemon.proc is not None
    env = dict(os.environ, NOTIFY_SOCKET=str(daemon.notify_path))
    env.pop("JOURNAL_STREAM", None)
    proc = subprocess.run(
        [PYTHON, "-m", "sentinel", "--config", str(daemon.config), "run"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    status = daemon.wait_message("STATUS=refusing to start")
    assert f"pid {daemon.proc.pid}" in status
    assert len([m for m in daemon.messages if "READY=1" in m]) == 1, daemon.messages


def test_a_damaged_live_status_file_from_before_is_one_warning(daemon: Daemon) -> None:
    from sentinel import livestatus

    path = livestatus.path_for(daemon.state)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps({"durable": False, "pid": "not a pid", "alarms": 5}))
    daemon.start()
    daemon.wait_message("READY=1")
    logs = daemon.logs()
    assert "Traceback" not in logs, logs
    assert len([line for line in logs.splitlines() if "live status file" in line]) == 1, logs
