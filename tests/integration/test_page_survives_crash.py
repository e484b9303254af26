"""The whole daemon, real parts: mosquitto -> sentinel run -> Apprise json:// -> loopback HTTP.

What an on-call admin cares about: a leak pages exactly once, a page is not lost when the
daemon is killed before it could deliver, a restart does not page again, and no secret
leaks into logs or status.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.http_sink import HttpSink
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until_sync

PYTHON = sys.executable
MQTT_PASSWORD = "mqtt-Pa55-planted-7731"
APPRISE_TOKEN = "tok-planted-5512-secret"


def private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


class Deployment:
    """A config, an Apprise file and the daemon process on a temp dir."""

    def __init__(self, tmp: Path, broker: Mosquitto, sink: HttpSink) -> None:
        self.tmp = tmp
        self.broker = broker
        self.sink = sink
        self.log_path = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        url = sink.json_url("/sms", query=f"token={APPRISE_TOKEN}&cto=1&rto=1")
        private(tmp / "apprise.yml", f'urls:\n  - "{url}":\n      tag: critical, warning\n')
        # mosquitto runs anonymous: the password is sent and ignored, and must never show
        self.config = private(
            tmp / "sentinel.toml",
            f"""
[site]
name = "test county"

[daemon]
state_dir = "{tmp / "state"}"
heartbeat = "0.5s"

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "sentinel"
password = "{MQTT_PASSWORD}"

[[sensors]]
id = "leak-ups"
location = "UPS floor"
kind = "water_leak"
topic = "zigbee2mqtt/leak-ups"

[alerts]
apprise_config = "apprise.yml"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"
""",
        )

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        until_sync(lambda: self.mqtt_connected(), 30, "daemon connected to the broker")

    def kill_leftover(self) -> None:
        """At a test's end: a daemon still running is killed (even a SIGSTOPped one)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def cli_output(self, *args: str) -> str:
        """stdout and stderr of one run (running the command once per stream cost a second)."""
        proc = self.cli(*args)
        return proc.stdout + proc.stderr

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json").stdout)

    def mqtt_connected(self) -> bool:
        proc = self.cli("status", "--json")
        if not proc.stdout:
            return False
        report = json.loads(proc.stdout)
        mqtt = report.get("components", {}).get("source:mqtt", {})
        return report["daemon"]["state"] == "up" and mqtt.get("state") == "connected"

    def publish(self, leak: bool) -> None:
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                self.broker.host,
                "-p",
                str(self.broker.port),
                "-t",
                "zigbee2mqtt/leak-ups",
                "-m",
                json.dumps({"water_leak": leak, "battery": 90}),
            ],
            check=True,
            timeout=10,
        )

    def pages(self) -> list[str]:
        return [r.message for r in self.sink.delivered("/sms")]

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def wait_for(predicate: Callable[[], object], timeout: float = 30, what: str = "it") -> None:
    """Kept only because tests/alarm (another helper's files this round) imports it; new
    code uses tests.fixtures.poll.until_sync. Remove once tests/alarm has switched."""
    until_sync(predicate, timeout, what)


def alarm_ids(status: dict) -> list[str]:
    return [a["id"] for a in status["alarms"]]


def test_page_survives_kill_9_and_restart_does_not_page_again(deployment: Deployment) -> None:
    d = deployment
    d.sink.fail("/sms", times=10_000)  # the SMS gateway is down: the page stays in the outbox
    d.start()
    d.publish(leak=True)
    until_sync(lambda: alarm_ids(d.status()), 30, "the leak alarm")
    until_sync(lambda: d.sink.requests("/sms"), 30, "a delivery attempt")
    [alarm] = alarm_ids(d.status())
    assert d.pages() == []
    d.kill9()  # between the alarm and its delivery

    d.sink.fail("/sms", times=0)  # the gateway is back
    d.start()
    until_sync(lambda: d.pages(), 30, "the page after restart")
    assert alarm_ids(d.status()) == [alarm]  # the same alarm, not forgotten
    time.sleep(2)  # give a wrong second page the chance to arrive
    firing = [m for m in d.pages() if alarm in m]
    assert len(firing) == 1, d.pages()

    # A restart while the alarm is still firing must not page again.
    d.terminate()
    d.start()
    d.publish(leak=True)
    time.sleep(2)
    assert len([m for m in d.pages() if alarm in m]) == 1, d.pages()

    # When the water is gone, exactly one all-clear follows.
    d.publish(leak=False)
    until_sync(lambda: len(d.pages()) == 2, 30, "the resolved message")
    assert alarm in d.pages()[1]
    d.terminate()


def test_no_secret_in_logs_status_or_errors(deployment: Deployment) -> None:
    d = deployment
    d.sink.fail("/sms", times=3)  # failures get logged, with the channel named
    d.start()
    d.publish(leak=True)
    until_sync(lambda: d.pages(), 30, "the page after retries")
    outputs = [
        d.logs(),
        d.cli("status").stdout,
        d.cli("status", "--json").stdout,
        d.cli("status", "--nagios").stdout,
        d.cli_output("check-config"),
        d.cli_output("test-alert"),
    ]
    d.terminate()
    outputs.append(d.logs())
    assert "failed" in d.logs().lower() or "500" in d.logs()  # the failures were logged
    for text in outputs:
        assert MQTT_PASSWORD not in text
        assert APPRISE_TOKEN not in text


def test_credential_file_readable_by_others_refuses_to_start(deployment: Deployment) -> None:
    d = deployment
    (d.tmp / "apprise.yml").chmod(0o644)
    proc = d.cli("run")
    assert proc.returncode == 2
    assert "apprise.yml" in proc.stderr
    assert "chmod" in proc.stderr
    assert APPRISE_TOKEN not in proc.stderr


def retained(d: Deployment, topic: str) -> str:
    """The retained message on `topic`, as a new subscriber (Home Assistant) would see it."""
    proc = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            d.broker.host,
            "-p",
            str(d.broker.port),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "5",
            "--retained-only",
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )
    return proc.stdout.strip()


def test_availability_and_alarms_are_published_and_last_will_says_offline(
    deployment: Deployment,
) -> None:
    d = deployment
    d.start()
    until_sync(lambda: retained(d, "sentinel/availability") == "online", 30, "online")
    d.publish(leak=True)
    until_sync(lambda: "leak-ups" in retained(d, "sentinel/alarms"), 30, "alarms published")
    [alarm] = json.loads(retained(d, "sentinel/alarms"))
    assert alarm["severity"] == "critical" and alarm["sensor"] == "leak-ups"
    d.kill9()  # no clean disconnect: the broker publishes the last will
    until_sync(lambda: retained(d, "sentinel/availability") == "offline", 30, "last will")
