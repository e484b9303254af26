"""`/metrics` against `sentinel status --json`: a real daemon (mosquitto, rsync replication to
a local target, Apprise json:// to a loopback sink that fails at first) with a leak.

What a person running Prometheus cares about: the numbers Prometheus stores are the numbers
`sentinel status` shows (sensor values, alarms, RPO, outbox, per-channel sends and
failures), a value sentinel does not have is absent rather than 0, and no secret from the
Apprise or MQTT config ends up in a scrape.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sentinel.web.metrics import CONTENT_TYPE, render
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until_sync

PYTHON = sys.executable
APPRISE_TOKEN = "tok-planted-8841-secret"
MQTT_PASSWORD = "mqtt-Pa55-planted-3390"
SMS_FAILURES = 2

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


class Room:
    """A config with a leak sensor, a rack thermometer, a humidity sensor that never
    reports, one replication and two channels (an SMS gateway that fails at first)."""

    def __init__(self, tmp: Path, broker: Mosquitto, sink: HttpSink) -> None:
        self.tmp = tmp
        self.broker = broker
        self.sink = sink
        self.log_path = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.source = tmp / "docs"
        self.source.mkdir()
        for n in range(3):
            (self.source / f"minutes-{n}.hwp").write_bytes(b"x" * 1000 * (n + 1))
        sms = sink.json_url("/sms", query=f"token={APPRISE_TOKEN}&cto=1&rto=1")
        mail = sink.json_url("/mail", query="cto=1&rto=1")
        private(
            tmp / "apprise.yml",
            f'urls:\n  - "{sms}":\n      tag: critical, warning, sms\n'
            f'  - "{mail}":\n      tag: critical, warning, mail\n',
        )
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
location = "전산실 UPS 하단 누수"
kind = "water_leak"
topic = "zigbee2mqtt/leak-ups"

[[sensors]]
id = "temp-rack1"
location = "1번 랙 상단"
kind = "temperature"
topic = "zigbee2mqtt/temp-rack1"

[[sensors]]
id = "hum-room"
location = "전산실 중앙"
kind = "humidity"
topic = "zigbee2mqtt/hum-room"

[alerts]
apprise_config = "apprise.yml"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"

[[replication]]
name = "docs"
source = "{self.source}"
target = "{tmp / "replica"}"

[web]
port = 0
""",
        )

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "sentinel", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def status(self) -> dict[str, Any]:
        proc = subprocess.run(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return json.loads(proc.stdout) if proc.stdout else {}

    def scrape(self) -> tuple[str, str]:
        """GET /metrics over HTTP from the daemon's own web server: (content type, body)."""
        urls = self.status()["components"]["web"]["urls"]
        with urllib.request.urlopen(urls[0] + "metrics", timeout=10) as response:
            return response.headers["Content-Type"], response.read().decode("utf-8")

    def publish(self, sensor: str, payload: dict[str, Any]) -> None:
        subprocess.run(
            [
                "mosquitto_pub",
                *("-h", self.broker.host, "-p", str(self.broker.port)),
                *("-t", f"zigbee2mqtt/{sensor}", "-m", json.dumps(payload)),
            ],
            check=True,
            timeout=10,
        )


@pytest.fixture
def room(tmp_path: Path, mosquitto: Mosquitto, http_sink: HttpSink) -> Iterator[Room]:
    r = Room(tmp_path, mosquitto, http_sink)
    try:
        yield r
    finally:
        r.stop()


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def pick(found: Samples, name: str, **labels: str) -> list[float]:
    """Values of the samples called `name` whose labels include `labels`."""
    want = set(labels.items())
    return [v for (n, ls), v in found.items() if n == name and want <= ls]


def one(found: Samples, name: str, **labels: str) -> float:
    values = pick(found, name, **labels)
    assert len(values) == 1, f"{name}{labels}: {values}"
    return values[0]


def settled(room: Room) -> dict[str, Any]:
    """A report once the leak paged (after the SMS gateway's failures), the thermometer
    reported and the documents were replicated."""

    def ready() -> dict[str, Any] | None:
        report = room.status()
        if report.get("daemon", {}).get("state") != "up":
            return None
        channels = report.get("alerts", {}).get("channels", [])
        values = {s["id"]: s.get("value") for s in report.get("sensors", [])}
        docs = next((r for r in report.get("replication", []) if r["name"] == "docs"), {})
        if (
            report.get("alarms")
            and values.get("temp-rack1") == 23.5
            and len(channels) == 2
            and all(c["sent"] >= 1 for c in channels)
            and docs.get("last_success")
            and report["components"].get("web", {}).get("urls")
        ):
            return report
        return None

    return until_sync(ready, 60, lambda: f"a settled report: {room.status()}")


def test_metrics_carry_the_status_reports_numbers_and_no_secret(room: Room) -> None:
    room.sink.fail("/sms", times=SMS_FAILURES)
    room.start()
    until_sync(
        lambda: (
            room.status().get("components", {}).get("source:mqtt", {}).get("state") == "connected"
        ),
        30,
        "the daemon connected to the broker",
    )
    room.publish("temp-rack1", {"temperature": 23.5})
    room.publish("leak-ups", {"water_leak": True})
    report = settled(room)

    text = render(report).decode("utf-8")
    found = samples(text)

    # sensors: the reading in its unit, a leak as 1, and no value for a sensor never seen
    by_id = {s["id"]: s for s in report["sensors"]}
    assert one(found, "sentinel_sensor_value", sensor="temp-rack1") == 23.5
    assert by_id["temp-rack1"]["value"] == 23.5
    assert one(found, "sentinel_sensor_value", sensor="leak-ups", kind="water_leak", unit="") == 1.0
    assert pick(found, "sentinel_sensor_value", location="1번 랙 상단") == [23.5]
    assert by_id["hum-room"]["value"] is None
    assert pick(found, "sentinel_sensor_value", sensor="hum-room") == []
    assert pick(found, "sentinel_sensor_age_seconds", sensor="hum-room") == []
    assert one(found, "sentinel_sensor_state", sensor="hum-room", state="never-seen") == 1.0
    assert one(found, "sentinel_sensor_state", sensor="leak-ups", state="alarm") == 1.0
    assert one(found, "sentinel_sensor_state", sensor="leak-ups", state="ok") == 0.0
    assert one(found, "sentinel_sensor_age_seconds", sensor="temp-rack1") == pytest.approx(
        by_id["temp-rack1"]["age"]
    )

    # alarms: one series per active alarm, counts by severity, the verdict
    [alarm] = report["alarms"]
    assert (
        one(
            found,
            "sentinel_alarm_active",
            alarm=alarm["id"],
            sensor="leak-ups",
            severity="critical",
            state=alarm["state"],
        )
        == 1.0
    )
    assert one(found, "sentinel_alarms_active", severity="critical") == 1.0
    assert one(found, "sentinel_alarms_active", severity="warning") == 0.0
    assert report["overall"]["state"] == "CRITICAL"
    assert one(found, "sentinel_overall_state") == 2.0
    assert one(found, "sentinel_daemon_up") == 1.0
    assert one(found, "sentinel_up") == 1.0
    assert one(found, "sentinel_silences_active") == len(report["silences"]) == 0
    assert one(found, "sentinel_heartbeat_age_seconds") == pytest.approx(
        report["daemon"]["heartbeat_age"]
    )
    assert one(found, "sentinel_build_info", version=report["version"]) == 1.0

    # replication: RPO, pending, failures, guard, last success; no verify has run: absent
    [docs] = report["replication"]
    assert one(found, "sentinel_replication_rpo_seconds", replication="docs") == pytest.approx(
        docs["rpo_seconds"]
    )
    assert one(found, "sentinel_replication_pending_changes", replication="docs") == docs["pending"]
    assert (
        one(found, "sentinel_replication_consecutive_failures", replication="docs")
        == docs["consecutive_failures"]
        == 0
    )
    assert one(found, "sentinel_replication_guard_tripped", replication="docs") == 0.0
    assert one(
        found, "sentinel_replication_last_success_timestamp_seconds", replication="docs"
    ) == pytest.approx(docs["last_success"])
    assert docs["last_verify"] is None
    assert pick(found, "sentinel_replication_last_verify_timestamp_seconds") == []
    assert pick(found, "sentinel_replication_last_verify_ok") == []

    # outbox and channels: sends and failed attempts per channel, as status counts them
    alerts = report["alerts"]
    assert one(found, "sentinel_outbox_pending_messages") == alerts["outbox_pending"]
    if alerts["oldest_pending_age"] is None:
        assert pick(found, "sentinel_outbox_oldest_pending_age_seconds") == []
    assert one(found, "sentinel_alert_channels_all_failing") == 0.0
    failed_attempts = [r for r in room.sink.requests("/sms") if r.status >= 500]
    assert len(failed_attempts) == SMS_FAILURES
    for channel in alerts["channels"]:
        labels = {"channel": channel["name"], "key": channel["key"]}
        assert one(found, "sentinel_alert_channel_sent_total", **labels) == channel["sent"]
        assert one(found, "sentinel_alert_channel_failed_total", **labels) == channel["failed"]
        assert one(found, "sentinel_alert_channel_consecutive_failures", **labels) == 0.0
        assert one(
            found, "sentinel_alert_channel_last_success_timestamp_seconds", **labels
        ) == pytest.approx(channel["last_success"])
    by_path = {("/sms" if "sms" in c["tags"] else "/mail"): c for c in alerts["channels"]}
    assert by_path["/sms"]["failed"] == SMS_FAILURES  # every failed attempt, kept after success
    assert by_path["/sms"]["consecutive_failures"] == 0
    assert by_path["/mail"]["failed"] == 0
    sms_labels = {"channel": by_path["/sms"]["name"], "key": by_path["/sms"]["key"]}
    assert one(
        found, "sentinel_alert_channel_last_failure_timestamp_seconds", **sms_labels
    ) == pytest.approx(by_path["/sms"]["last_failure"])
    assert (
        pick(
            found,
            "sentinel_alert_channel_last_failure_timestamp_seconds",
            key=by_path["/mail"]["key"],
        )
        == []
    )

    # components: restarts and failing, one series per supervised part
    for name, component in report["components"].items():
        if "restarts" in component:
            assert (
                one(found, "sentinel_component_restarts_total", component=name)
                == component["restarts"]
            )
            assert one(found, "sentinel_component_failing", component=name) == float(
                component["failing"]
            )

    # secrets from apprise.yml and sentinel.toml never reach a scrape
    assert APPRISE_TOKEN not in text
    assert MQTT_PASSWORD not in text
    assert APPRISE_TOKEN in (room.tmp / "apprise.yml").read_text()  # the plant is real
    assert all(name.startswith("sentinel_") for name, _ in found)

    # the same numbers over HTTP from the daemon's /metrics (its own snapshot of the report,
    # so only what does not move between two reports is compared)
    content_type, scraped_text = room.scrape()
    assert content_type == CONTENT_TYPE
    scraped = samples(scraped_text)
    again = room.status()
    assert pick(scraped, "sentinel_sensor_value", sensor="temp-rack1") == [23.5]
    assert pick(scraped, "sentinel_sensor_value", sensor="leak-ups") == [1.0]
    assert pick(scraped, "sentinel_sensor_value", sensor="hum-room") == []
    assert one(scraped, "sentinel_alarm_active", alarm=alarm["id"]) == 1.0
    assert one(scraped, "sentinel_alarms_active", severity="critical") == len(again["alarms"])
    assert one(scraped, "sentinel_overall_state") == 2.0
    assert one(scraped, "sentinel_outbox_pending_messages") == again["alerts"]["outbox_pending"]
    assert one(scraped, "sentinel_replication_rpo_seconds", replication="docs") == pytest.approx(
        again["replication"][0]["rpo_seconds"]
    )
    for channel in again["alerts"]["channels"]:
        labels = {"channel": channel["name"], "key": channel["key"]}
        assert one(scraped, "sentinel_alert_channel_sent_total", **labels) == channel["sent"]
        assert one(scraped, "sentinel_alert_channel_failed_total", **labels) == channel["failed"]
    assert one(scraped, "sentinel_component_restarts_total", component="web") == 0.0
    assert APPRISE_TOKEN not in scraped_text and MQTT_PASSWORD not in scraped_text
