"""The MQTT source against a real mosquitto: every decoder end to end, restarts, retained state."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest

import sensors.mqtt as mqtt_module
from sensors.mqtt import MqttSettings, MqttSource, mqtt_binding
from tests.fixtures.mosquitto import Mosquitto
from tests.sensors.helpers import Collector, match


def settings(broker: Mosquitto, **kw: object) -> MqttSettings:
    return MqttSettings(
        host=broker.host,
        port=broker.port,
        client_id="sentinel-test",
        reconnect_min=0.05,
        reconnect_max=0.3,
        **kw,  # type: ignore[arg-type]
    )


async def publish(broker: Mosquitto, *messages: tuple[str, str | bytes, bool]) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for topic, payload, retain in messages:
            await client.publish(topic, payload, qos=1, retain=retain)


async def connected(collector: Collector, connects: int = 1) -> None:
    await collector.wait_health(lambda h: h["state"] == "connected" and h["connects"] >= connects)


async def test_each_decoder_end_to_end(mosquitto: Mosquitto) -> None:
    bindings = [
        mqtt_binding("z-leak", "water_leak", "zigbee2mqtt", "zigbee2mqtt/leak1"),
        mqtt_binding("z-smoke", "smoke", "zigbee2mqtt", "zigbee2mqtt/smoke1"),
        mqtt_binding("t-temp", "temperature", "tasmota", "rack1", offset=-0.6),
        mqtt_binding("t-hum", "humidity", "tasmota", "rack1"),
        mqtt_binding("e-leak", "water_leak", "esphome", "node1/binary_sensor/leak"),
        mqtt_binding(
            "j-temp",
            "temperature",
            "json",
            "room/probe",
            field="data.t",
            availability_topic="room/probe/up",
        ),
        mqtt_binding(
            "j-leak", "water_leak", "json", "room/cable", value_map={"WET": True, "DRY": False}
        ),
    ]
    source = MqttSource(settings(mosquitto), bindings)
    collector = Collector(source)
    try:
        await connected(collector)
        await publish(
            mosquitto,
            ("zigbee2mqtt/leak1", json.dumps({"water_leak": True, "battery": 90}), False),
            ("zigbee2mqtt/smoke1", json.dumps({"smoke_state": "alarm"}), False),
            (
                "tele/rack1/SENSOR",
                '{"Time":"x","AM2301":{"Temperature":24.6,"Humidity":58.2}}',
                False,
            ),
            ("node1/binary_sensor/leak/state", "ON", False),
            ("room/probe", '{"data":{"t":-12.5}}', False),
            ("room/cable", "WET", False),
            ("room/probe/up", "offline", False),
        )
        assert (await collector.wait_for(match("z-leak", "water_leak"))).value is True
        assert (await collector.wait_for(match("z-smoke", "smoke"))).value is True
        temp = await collector.wait_for(match("t-temp", "temperature"))
        assert temp.value == 24.0 and temp.unit == "°C" and temp.source == "mqtt"
        assert (await collector.wait_for(match("t-hum", "humidity"))).value == 58.2
        assert (await collector.wait_for(match("e-leak", "water_leak"))).value is True
        assert (await collector.wait_for(match("j-temp", "temperature"))).value == -12.5
        assert (await collector.wait_for(match("j-leak", "water_leak"))).value is True
        assert (await collector.wait_for(match("j-temp", "availability"))).value is False
    finally:
        await collector.stop()


async def test_malformed_and_fault_payloads(mosquitto: Mosquitto) -> None:
    bindings = [
        mqtt_binding("leak", "water_leak", "zigbee2mqtt", "zigbee2mqtt/leak1"),
        mqtt_binding("temp", "temperature", "zigbee2mqtt", "zigbee2mqtt/temp1"),
    ]
    source = MqttSource(settings(mosquitto), bindings)
    collector = Collector(source)
    try:
        await connected(collector)
        await publish(
            mosquitto,
            ("zigbee2mqtt/leak1", b"\xff\x00not json", False),
            ("zigbee2mqtt/leak1", '{"water_leak": "maybe"}', False),
            ("zigbee2mqtt/temp1", '{"temperature": -127}', False),
            ("zigbee2mqtt/leak1", '{"water_leak": false}', False),
        )
        fault = await collector.wait_for(match("temp", "temperature"))
        assert fault.value is None and "error value" in (fault.fault or "")
        assert (await collector.wait_for(match("leak", "water_leak"))).value is False
        health = source.health()
        assert health["rejected"] == 2
        assert "not an on/off value" in health["last_reject"]
        # The broken messages produced no readings at all.
        assert [r.value for r in collector.readings if r.sensor_id == "leak"] == [False]
    finally:
        await collector.stop()


async def test_retained_offline_before_connect_makes_device_sensors_unavailable(
    mosquitto: Mosquitto,
) -> None:
    await publish(
        mosquitto,
        ("zigbee2mqtt/leak1/availability", '{"state":"offline"}', True),
        ("tele/rack1/LWT", "Offline", True),
    )
    bindings = [
        mqtt_binding("leak", "water_leak", "zigbee2mqtt", "zigbee2mqtt/leak1"),
        mqtt_binding("leak-batt", "battery", "zigbee2mqtt", "zigbee2mqtt/leak1"),
        mqtt_binding("rack-temp", "temperature", "tasmota", "rack1"),
        mqtt_binding("other", "water_leak", "zigbee2mqtt", "zigbee2mqtt/leak2"),
    ]
    collector = Collector(MqttSource(settings(mosquitto), bindings))
    try:
        for sensor_id in ("leak", "leak-batt", "rack-temp"):
            reading = await collector.wait_for(match(sensor_id, "availability"))
            assert reading.value is False
        await publish(mosquitto, ("zigbee2mqtt/leak1/availability", '{"state":"online"}', True))
        assert (await collector.wait_for(match("leak", "availability", True))).value is True
        assert not [r for r in collector.readings if r.sensor_id == "other"]
    finally:
        await collector.stop()


async def test_broker_restart_shows_disconnected_and_readings_resume(mosquitto: Mosquitto) -> None:
    source = MqttSource(
        settings(mosquitto),
        [mqtt_binding("leak", "water_leak", "zigbee2mqtt", "zigbee2mqtt/leak1")],
    )
    collector = Collector(source)
    try:
        await connected(collector)
        await publish(mosquitto, ("zigbee2mqtt/leak1", '{"water_leak": false}', False))
        await collector.wait_for(match("leak", "water_leak", False))

        mosquitto.stop()
        health = await collector.wait_health(lambda h: h["state"] == "disconnected")
        assert health["last_error"].startswith("broker disconnected")
        await source.publish_state([{"alarm_id": 1}])  # must not raise while down
        assert source.health()["publish_dropped"] == 1

        mosquitto.start()
        await connected(collector, connects=2)
        seen = len(collector.readings)
        await publish(mosquitto, ("zigbee2mqtt/leak1", '{"water_leak": true}', False))
        assert (await collector.wait_for(match("leak", "water_leak", True), after=seen)).value
        # The state kept while down was published again after the reconnect.
        assert await retained(mosquitto, "sentinel/alarms") == b'[{"alarm_id": 1}]'
    finally:
        await collector.stop()


async def retained(broker: Mosquitto, topic: str) -> bytes:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                return message.payload
    raise AssertionError("unreachable")


async def test_publishes_own_availability_and_alarms(mosquitto: Mosquitto) -> None:
    source = MqttSource(settings(mosquitto, publish_prefix="site/sentinel"), [])
    collector = Collector(source)
    try:
        await connected(collector)
        assert await retained(mosquitto, "site/sentinel/availability") == b"online"
        alarms = [{"sensor_id": "leak", "location": "전산실 UPS 하단 누수", "severity": "critical"}]
        await source.publish_state(alarms)
        payload = await retained(mosquitto, "site/sentinel/alarms")
        assert json.loads(payload) == alarms
        assert source.health()["published"] == 1
    finally:
        await collector.stop()


async def test_health_never_shows_the_password(mosquitto: Mosquitto) -> None:
    source = MqttSource(settings(mosquitto, username="u", password="hunter2-secret"), [])
    assert "hunter2" not in repr(source.settings)
    assert "hunter2" not in json.dumps(source.health())


async def test_a_message_is_acknowledged_only_after_its_reading_was_taken(
    mosquitto: Mosquitto,
) -> None:
    """sentinel dying between receiving a leak and handing its reading on (kill -9, a crash
    in the engine) must not lose it: the broker redelivers what was never acknowledged."""
    binding = [mqtt_binding("leak", "water_leak", "zigbee2mqtt", "zigbee2mqtt/leak1")]
    first = MqttSource(settings(mosquitto), binding)
    readings = first.readings()
    taking = asyncio.ensure_future(readings.__anext__())
    for _ in range(750):  # up to 15 s
        if first.health()["state"] == "connected":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"never connected: {first.health()}")
    await publish(mosquitto, ("zigbee2mqtt/leak1", '{"water_leak": true}', False))
    async with asyncio.timeout(15):
        reading = await taking
    assert reading.value is True
    await readings.aclose()  # gone before the consumer asked for the next reading

    collector = Collector(MqttSource(settings(mosquitto), binding))  # the same client id
    try:
        assert (await collector.wait_for(match("leak", "water_leak"))).value is True
    finally:
        await collector.stop()


async def test_a_burst_is_taken_in_batches(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source drains the messages already queued in one wakeup (BENCHMARKS.md: 2,786 ->
    24,000 readings/s). Taken one per wait, a burst of N is N wakeups."""
    sizes: list[int] = []
    real = mqtt_module._batches

    async def counted(*args: Any, **kw: Any) -> AsyncIterator[list[aiomqtt.Message]]:
        async for batch in real(*args, **kw):
            if batch:
                sizes.append(len(batch))
            yield batch

    monkeypatch.setattr(mqtt_module, "_batches", counted)
    burst = 300
    binding = [mqtt_binding("temp", "temperature", "zigbee2mqtt", "zigbee2mqtt/t1")]
    collector = Collector(MqttSource(settings(mosquitto), binding))
    try:
        await connected(collector)
        # a burst for certain: published by another process while this loop is held, so
        # the messages are queued before the source can take the first (published from
        # this loop, 4 test workers on 2 cores let it take them nearly one by one)
        lines = "".join(f'{{"temperature": {n / 100}}}\n' for n in range(burst))
        pub = ["mosquitto_pub", "-h", mosquitto.host, "-p", str(mosquitto.port)]
        done = subprocess.run(  # noqa: ASYNC221 (holding the loop is the point)
            [*pub, "-t", "zigbee2mqtt/t1", "-l", "-q", "0"],
            input=lines.encode(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        await collector.wait_for(match("temp", "temperature", (burst - 1) / 100))
        assert sum(sizes) == burst
        assert len(sizes) < burst / 2, f"{len(sizes)} wakeups for {burst} messages"
    finally:
        await collector.stop()
