"""A lost MQTT session is said, not silent (issue 12, review F6).

sentinel connects with a persistent session so the broker queues what arrives while it is
away. When another client takes sentinel's client id, or the broker restarts without
persistence, that session and its queue are gone; CONNACK then says "no session present"
and sentinel raises a warning alarm `mqtt_session_lost`. A broker restarted with its
persistence keeps the session and nothing is raised. Real mosquitto, real daemon.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

import sensors.mqtt
from sensors.mqtt import SESSION_LOST_KIND, MqttSettings, MqttSource, mqtt_binding
from sensors.reading import Reading
from sentinel.heartbeat import beat
from sentinel.mqtt_session import expect_sessions
from sentinel.store import Store
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.locked_mosquitto import PASSWORDS, LockedMosquitto
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until, until_sync
from tests.integration.test_locked_broker import TlsDeployment, locked  # noqa: F401


async def test_broker_restart_keeps_the_session_with_persistence_and_pages_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sensors.mqtt, "SESSION_LOST_QUIET", 0.5)
    broker = Mosquitto(tmp_path / "broker", persistence=True)
    broker.start()
    source = MqttSource(
        MqttSettings(broker.host, broker.port, client_id="sentinel-session-test",
                     reconnect_min=0.05, reconnect_max=0.2),
        [mqtt_binding("leak", "water_leak", "zigbee2mqtt", "zigbee2mqtt/leak")],
    )  # fmt: skip
    seen: list[Reading] = []

    async def consume() -> None:
        async for reading in source.readings():
            seen.append(reading)

    task = asyncio.create_task(consume())
    try:
        await until(lambda: source.health()["connects"] == 1, 10, "the first connect")
        assert source.health()["session"] == "new"  # a fresh source cannot know: no alarm

        # `systemctl restart mosquitto` with Debian's persistence: the session comes back
        broker.stop(graceful=True)
        broker.start()
        await until(lambda: source.health()["connects"] == 2, 10, "the reconnect")
        assert source.health()["session"] == "kept"
        assert [r for r in seen if r.kind == SESSION_LOST_KIND] == []

        # the same restart without persistence: the session and its queue are gone
        broker.stop(graceful=True)
        broker.persistence = False
        broker.start()
        await until(lambda: source.health()["connects"] == 3, 10, "the reconnect")
        assert source.health()["session"] == "lost"
        await until(
            lambda: [r.value for r in seen if r.kind == SESSION_LOST_KIND][-2:] == [True, False],
            10,
            "the lost-session alarm and, after the quiet period, its end",
        )
        lost, back = [r for r in seen if r.kind == SESSION_LOST_KIND][-2:]
        assert (lost.value, back.value) == (True, False)
        assert lost.sensor_id == "source:mqtt"
        assert lost.detail is not None and "may be lost" in lost.detail
        assert "127.0.0.1" in lost.detail and "sentinel-session-test" in lost.detail
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        broker.stop()


def test_another_account_taking_sentinels_client_id_pages(
    tmp_path: Path,
    locked: LockedMosquitto,  # noqa: F811
    http_sink: HttpSink,
) -> None:
    """Any valid account may connect under sentinel's client id; mosquitto then drops
    sentinel's session with what it queued. sentinel reconnects, sees no session, pages.
    Then the same across a sentinel restart."""
    d = TlsDeployment(tmp_path, locked, http_sink)
    try:
        d.start()
        mqtt = d.mqtt()
        assert mqtt["session"] == "new" and d.pages() == []
        takeover = subprocess.run(
            ["mosquitto_pub", "-h", locked.host, "-p", str(locked.plain_port), "-q", "1",
             "-i", mqtt["client_id"], "-u", "gateway", "-P", PASSWORDS["gateway"],
             "-t", "building/serverroom/env", "-m", "{}"],
            capture_output=True, text=True, timeout=15,
        )  # fmt: skip
        assert takeover.returncode == 0, takeover.stderr
        status: dict = {}

        def alarm_shown() -> bool:
            # the alarm is written at once, the source's fields with the next heartbeat
            status.update(d.status())
            return any(a["kind"] == SESSION_LOST_KIND for a in status["alarms"]) and (
                status["components"]["source:mqtt"].get("session") == "lost"
            )

        until_sync(alarm_shown, 30, "the lost-session alarm in status")
        [alarm] = [a for a in status["alarms"] if a["kind"] == SESSION_LOST_KIND]
        assert alarm["severity"] == "warning"
        assert status["components"]["source:mqtt"]["session"] == "lost"
        assert status["components"]["source:mqtt"]["connects"] == 2
        until_sync(lambda: d.pages(), 30, "the page")
        assert "source:mqtt 브로커 세션 유실" in d.pages()[0]  # the SMS: a warning, in Korean
        assert f"MQTT session lost: broker {locked.host}:{locked.tls_port}" in d.logs()
        assert PASSWORDS["sentinel"] not in d.logs() + d.pages()[0]

        # sentinel stops; the broker restarts without persistence (the example config
        # relies on Debian's, the test's copy has none): the restarted sentinel still
        # expected its session, from its last heartbeat, and says it is gone
        d.terminate()
        locked.stop()
        locked.start()
        d.start()
        assert d.mqtt()["session"] == "lost" and d.mqtt()["connects"] == 1

        # restarted once more, the broker kept the session: the alarm left on by the run
        # before (no timer of this run's) resolves at this first connect
        d.terminate()
        d.start()
        assert d.mqtt()["session"] == "kept"
        until_sync(lambda: not any(a["kind"] == SESSION_LOST_KIND for a in d.status()["alarms"]),
                   30, "the alarm resolved")  # fmt: skip
    finally:
        d.kill_leftover()


async def test_a_restarted_sentinel_expects_the_session_its_last_run_had(
    tmp_path: Path,
) -> None:
    """The previous run's heartbeat says it held a session under this client id and broker:
    the first connect after a restart judges it. A fresh state directory expects none, and
    nor does another client id or broker (the operator changed them: a new session)."""
    store = await Store.open(tmp_path / "state")
    try:

        def fresh(**kw: object) -> MqttSource:
            settings = MqttSettings(**{"client_id": "sentinel-x", **kw})  # type: ignore[arg-type]
            return MqttSource(settings, [])

        first = fresh()
        await expect_sessions(store.db, [first])
        assert first.expect_session is False
        health = {"source:mqtt": fresh().health() | {"connects": 1, "session_alarm": True}}
        await beat(store.write, now=1.0, started=0.0, status="up", components=health,
                   config={})  # fmt: skip
        same, other_id, other_broker = fresh(), fresh(client_id="y"), fresh(port=8883)
        await expect_sessions(store.db, [same, other_id, other_broker])
        assert (same.expect_session, other_id.expect_session,
                other_broker.expect_session) == (True, False, False)  # fmt: skip
        # the alarm is on source:mqtt whatever the client id: each source resolves it
        assert same.session_alarm and other_id.session_alarm and not first.session_alarm
    finally:
        await store.close()
