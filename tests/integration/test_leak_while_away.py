"""A leak published while sentinel is not connected still pages: the whole daemon against a
real mosquitto with persistence (mosquitto -> sentinel run -> Apprise json:// -> loopback HTTP).

Leak sensors report only on change, so a message lost while sentinel is killed, restarting or
reconnecting is a missed flood. sentinel keeps a persistent session per connection (fixed
client id, clean session off, QoS 1 subscriptions): the broker queues what arrives meanwhile.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.http_sink import HttpSink
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until_sync
from tests.integration.test_page_survives_crash import Deployment, alarm_ids, private

# A telemetry sensor beside the leak: the leak then has a connection of its own
# (source:mqtt-safety), and both connections must keep their sessions.
EXTRA_SENSOR = """
[[sensors]]
id = "temp-rack1"
location = "rack 1"
kind = "temperature"
format = "tasmota"
topic = "climate-rack1"
"""


class AwayDeployment(Deployment):
    def __init__(self, tmp: Path, broker: Mosquitto, sink: HttpSink) -> None:
        super().__init__(tmp, broker, sink)
        private(self.config, self.config.read_text(encoding="utf-8") + EXTRA_SENSOR)

    def mqtt_connected(self) -> bool:
        proc = self.cli("status", "--json")
        if not proc.stdout:
            return False
        report = json.loads(proc.stdout)
        components = report.get("components", {})
        return report["daemon"]["state"] == "up" and all(
            components.get(name, {}).get("state") == "connected"
            for name in ("source:mqtt", "source:mqtt-safety")
        )

    def client_ids(self) -> list[str]:
        components = self.status()["components"]
        return [components[f"source:{name}"]["client_id"] for name in ("mqtt", "mqtt-safety")]

    def publish_leak_qos1(self) -> None:
        """What a leak sensor sends on change (the issue's repro: `mosquitto_pub -q 1`)."""
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                self.broker.host,
                "-p",
                str(self.broker.port),
                "-q",
                "1",
                "-t",
                "zigbee2mqtt/leak-ups",
                "-m",
                json.dumps({"water_leak": True}),
            ],
            check=True,
            timeout=10,
        )

    def leak_pages(self) -> list[str]:
        return [m for m in self.pages() if "leak-ups" in m or "UPS floor" in m]


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto", persistence=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def away(
    tmp_path: Path, persistent_broker: Mosquitto, http_sink: HttpSink
) -> Iterator[AwayDeployment]:
    d = AwayDeployment(tmp_path, persistent_broker, http_sink)
    try:
        yield d
    finally:
        d.kill_leftover()


def test_leak_published_while_daemon_is_killed_pages_once_after_start(
    away: AwayDeployment,
) -> None:
    d = away
    d.start()  # the first connection creates the sessions on the broker
    ids = d.client_ids()
    assert len(set(ids)) == 2, ids  # one session per connection
    d.kill9()
    d.publish_leak_qos1()  # nobody is connected to take it: the broker must queue it
    d.start()
    until_sync(lambda: d.leak_pages(), 30, "the page for the leak published while down")
    [alarm] = alarm_ids(d.status())
    assert d.client_ids() == ids  # the same sessions were taken up again
    time.sleep(2)  # give a wrong second page the chance to arrive
    assert len([m for m in d.pages() if alarm in m]) == 1, d.pages()
    d.terminate()


def test_leak_published_before_daemon_reconnects_after_broker_restart_pages(
    away: AwayDeployment,
) -> None:
    d = away
    d.start()
    assert d.proc is not None
    # Freezing the daemon holds it where its reconnect back-off would: not connected, its
    # session kept on the broker. That makes "published before sentinel is back" certain.
    d.proc.send_signal(signal.SIGSTOP)
    try:
        d.broker.stop(graceful=True)  # systemctl restart mosquitto: sessions are saved
        d.broker.start()
        d.publish_leak_qos1()
    finally:
        d.proc.send_signal(signal.SIGCONT)
    until_sync(lambda: d.leak_pages(), 30, "the page for the leak published during reconnect")
    assert len(alarm_ids(d.status())) == 1
    d.terminate()
