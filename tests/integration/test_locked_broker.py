"""The shipped broker lock (examples/mosquitto.conf + examples/mosquitto.acl) against forgery.

A real mosquitto runs those two files (tests/fixtures/locked_mosquitto.py says exactly what
the copy changes: ports, paths, and `user root` when run as root). sentinel runs as in
production, over TLS with its own account and a throwaway CA. What an attacker on the LAN
would try (issue 12): an all-clear {"water_leak": false} for a firing leak, a fake
availability, a retained "sentinel/availability online" after sentinel died. Each is judged
by what sentinel does: the alarm stays firing, sentinel never receives the message, the
retained availability still says offline.
"""

from __future__ import annotations

import asyncio
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensors.mqtt import MqttSettings, MqttSource, mqtt_binding
from sensors.mqtt_failure import BrokerRefused
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.locked_mosquitto import EXAMPLES, OTHER_DEVICE, PASSWORDS, LockedMosquitto
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until_sync
from tests.integration.test_page_survives_crash import PYTHON, Deployment, alarm_ids, private

LEAK_TOPIC = "zigbee2mqtt/leak-ups"
# Accounts that may log in but must not write the leak sensor's topics, and no login at all.
INTRUDERS: list[str | None] = [None, "climate-rack1", OTHER_DEVICE, "gateway", "monitor"]


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[LockedMosquitto]:
    broker = LockedMosquitto(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class TlsDeployment(Deployment):
    """The daemon with its own account on the broker's TLS listener."""

    def __init__(self, tmp: Path, broker: LockedMosquitto, sink: HttpSink) -> None:
        super().__init__(tmp, Mosquitto(tmp / "unused"), sink)
        text = self.config.read_text(encoding="utf-8")
        head, tail = text.split("[mqtt]", 1)
        tail = tail.split("[[sensors]]", 1)[1]
        private(
            self.config,
            f"""{head}[mqtt]
host = "{broker.host}"
port = {broker.tls_port}
username = "sentinel"
password = "{PASSWORDS["sentinel"]}"
tls = true
ca_file = "{broker.ca.cert}"

[[sensors]]{tail}""",
        )

    def launch(self) -> None:
        """Starts the daemon without waiting for it to connect (it may be refused)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "sentinel", "--config", str(self.config), "run"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def mqtt(self) -> dict:
        return self.status()["components"]["source:mqtt"]


def test_forged_all_clear_availability_and_online_never_reach_sentinel(
    tmp_path: Path, locked: LockedMosquitto, http_sink: HttpSink
) -> None:
    d = TlsDeployment(tmp_path, locked, http_sink)
    try:
        d.start()  # connected over TLS with its own account, or this times out
        assert locked.pub(LEAK_TOPIC, '{"water_leak": true}', user="zigbee2mqtt").returncode == 0
        # (the sink and few `sentinel status` runs: each is a Python start, slow on a busy CI)
        until_sync(lambda: d.pages(), 30, "the leak page")
        before = d.status()
        [alarm] = alarm_ids(before)
        received = before["components"]["source:mqtt"]["received"]

        for user in INTRUDERS:
            for tls in (False, True):
                locked.pub(LEAK_TOPIC, '{"water_leak": false}', user=user, tls=tls)
                locked.pub(f"{LEAK_TOPIC}/availability", '{"state":"offline"}', user=user,
                           tls=tls, retain=True)  # fmt: skip
        # A barrier: the real gateway's next message. The broker handles messages in order,
        # so once sentinel has it, any forged message it let through would have come first.
        assert locked.pub(LEAK_TOPIC, '{"water_leak": true}', user="zigbee2mqtt").returncode == 0
        after: dict = {}

        def barrier_seen() -> bool:
            after.update(d.status())
            return after["components"]["source:mqtt"]["received"] > received

        until_sync(barrier_seen, 30, "the gateway's next message")
        assert after["components"]["source:mqtt"]["received"] == received + 1, (
            "a forged message reached sentinel"
        )
        assert alarm_ids(after) == [alarm]  # still firing, no fake "sensor lost"
        assert len(d.pages()) == 1

        # The lock is not a wall: the gateway's own all-clear still resolves the alarm.
        assert locked.pub(LEAK_TOPIC, '{"water_leak": false}', user="zigbee2mqtt").returncode == 0
        until_sync(lambda: len(d.pages()) == 2, 30, "the resolved message for the real all-clear")
        assert alarm in d.pages()[1]

        # sentinel's own account may write sentinel/#: its retained "online" is there
        assert locked.retained("sentinel/availability", user="monitor") == "online"
        # sentinel dies; its last will says offline, and nobody can say online for it.
        d.kill9()
        until_sync(lambda: locked.retained("sentinel/availability", user="monitor") == "offline",
                   30, "sentinel's last will")  # fmt: skip
        for user in [*INTRUDERS, "zigbee2mqtt"]:
            locked.pub("sentinel/availability", "online", user=user, retain=True)
        assert locked.retained("sentinel/availability", user="monitor") == "offline"
        # without a login the broker does not even take the connection (not just the message)
        refused = locked.pub(LEAK_TOPIC, "{}", user=None)
        assert refused.returncode != 0 and "not authori" in refused.stderr.lower()
    finally:
        d.kill_leftover()


def test_a_tasmota_device_cannot_forge_another_devices_telemetry_or_last_will(
    locked: LockedMosquitto,
) -> None:
    """Each Tasmota device has its own account (its %topic%): the office plug's password,
    readable in its web UI and config backup, does not write the rack's temperature or its
    LWT, and neither does any other account. Judged by what sentinel's account is handed."""
    rack, reading = "tele/climate-rack1", '{"AM2301":{"Temperature":24.5}}'
    assert locked.pub(f"{rack}/LWT", "Online", user="climate-rack1", retain=True).returncode == 0
    assert locked.pub(f"{rack}/SENSOR", reading, user="climate-rack1", retain=True).returncode == 0
    # the office plug writes its own topics (the ACL's pattern lines, no line of its own)
    assert locked.pub(f"tele/{OTHER_DEVICE}/LWT", "Online", user=OTHER_DEVICE,
                      retain=True).returncode == 0  # fmt: skip
    assert locked.retained(f"tele/{OTHER_DEVICE}/LWT", user="sentinel") == "Online"
    for user in (OTHER_DEVICE, "zigbee2mqtt", "esphome", "gateway", "monitor", "sentinel"):
        locked.pub(f"{rack}/LWT", "Offline", user=user, retain=True)
        locked.pub(f"{rack}/SENSOR", '{"AM2301":{"Temperature":18.0}}', user=user,
                   retain=True)  # fmt: skip
    assert locked.retained(f"{rack}/LWT", user="sentinel") == "Online"
    assert locked.retained(f"{rack}/SENSOR", user="sentinel") == reading


def test_refused_login_pages_without_waiting_for_max_age(
    tmp_path: Path, locked: LockedMosquitto, http_sink: HttpSink
) -> None:
    """The broker's password was changed and sentinel's was not: the leak sensor's max_age
    is a day, so the refusal itself must page (a component alarm) and say why."""
    d = TlsDeployment(tmp_path, locked, http_sink)
    text = d.config.read_text(encoding="utf-8")
    text = text.replace(PASSWORDS["sentinel"], "stale-pw-5151")
    text = text.replace('heartbeat = "0.5s"', 'heartbeat = "0.5s"\nrestart_alarm_count = 1\n'
                        'restart_alarm_window = "1m"')  # fmt: skip
    private(d.config, text)
    apprise = tmp_path / "apprise.yml"  # the long form, which carries the component's error
    private(apprise, apprise.read_text().replace("tag: critical,", "tag: lms, critical,"))
    try:
        d.launch()
        until_sync(lambda: d.pages(), 30, "a page about the refused login")
        [sent] = d.sink.delivered("/sms")
        page = f"{sent.title}\n{sent.message}"
        assert "component:source:mqtt" in page
        assert "not authorised: the broker refused the login of user 'sentinel'" in page
        assert "stale-pw-5151" not in page + d.logs() + d.cli("status").stdout
        status = d.cli("status").stdout
        assert "not authorised" in " ".join(status.split())
    finally:
        d.kill_leftover()


def source(broker: LockedMosquitto, **kw: object) -> MqttSource:
    settings = MqttSettings(
        **{  # type: ignore[arg-type]
            "host": broker.host,
            "port": broker.tls_port,
            "client_id": "sentinel-test",
            "reconnect_min": 0.05,
            "reconnect_max": 0.3,
            **kw,
        }
    )
    return MqttSource(settings, [mqtt_binding("leak", "water_leak", "zigbee2mqtt", LEAK_TOPIC)])


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "server cert from another CA",
            "TLS certificate verify failed: the broker's certificate is not signed by ca_file",
        ),
        (
            "host not in the certificate",
            "TLS certificate verify failed: the broker's "
            "certificate is not for this host (Hostname mismatch",
        ),
        ("wrong password", "not authorised: the broker refused the login of user 'sentinel'"),
        ("no login", "not authorised: the broker refused an anonymous login"),
    ],
)
async def test_refused_connection_says_why_in_plain_words(
    locked: LockedMosquitto, case: str, expected: str
) -> None:
    """What status (`last_error` of source:mqtt) says when the broker refuses, and that the
    source gives up to the supervisor (which pages past restart_alarm_count) instead of
    retrying quietly until the sensors' max_age."""
    kw: dict[str, object] = {"tls": True, "ca_file": str(locked.ca.cert),
                             "username": "sentinel", "password": "wrong-pw-0000"}  # fmt: skip
    if case == "server cert from another CA":
        kw |= {"ca_file": str(locked.other_ca.cert), "password": PASSWORDS["sentinel"]}
    elif case == "host not in the certificate":
        kw |= {"host": "localhost", "password": PASSWORDS["sentinel"]}
    elif case == "no login":
        kw |= {"username": None, "password": None}
    mqtt = source(locked, **kw)
    with pytest.raises(BrokerRefused) as refused:
        async with asyncio.timeout(15):
            async for reading in mqtt.readings():
                raise AssertionError(f"a refused connection gave a reading: {reading}")
    health = mqtt.health()
    assert health["state"] == "disconnected"
    assert health["last_error"].startswith(expected), health["last_error"]
    assert str(refused.value).endswith(f":{locked.tls_port}: {health['last_error']}")
    for raw in ("_ssl.c", "[code:", "SSLCertVerificationError", "wrong-pw-0000"):
        assert raw not in health["last_error"]


def test_the_accounts_in_the_docs_are_the_accounts_in_the_acl() -> None:
    """docs/mqtt-broker.md tells the operator which mosquitto_passwd lines to run; an ACL
    account without one would be an account nobody can log in to."""
    acl = (Path(__file__).resolve().parents[2] / "examples" / "mosquitto.acl").read_text()
    users = {line.split()[1] for line in acl.splitlines() if line.startswith("user ")}
    assert users == set(PASSWORDS)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "mqtt-broker.md").read_text()
    for user in users:
        assert f"mosquitto_passwd /etc/mosquitto/passwd {user}" in doc or (
            f"mosquitto_passwd -c /etc/mosquitto/passwd {user}" in doc
        ), user
        assert f"| `{user}`" in doc, f"{user} has no row in the docs' table"
    # a Tasmota device logs in as its own %topic% (the pattern lines give it its topics):
    # each Tasmota sensor of the example config has its account, and no account is shared
    assert {"pattern write tele/%u/#", "pattern write stat/%u/#",
            "pattern read cmnd/%u/#"} <= set(acl.splitlines())  # fmt: skip
    assert "user tasmota" not in acl.splitlines()
    example = tomllib.loads((EXAMPLES / "sentinel.toml").read_text(encoding="utf-8"))
    tasmota = {s["topic"] for s in example["sensors"] if s.get("format") == "tasmota"}
    assert tasmota and tasmota <= users
