"""Simulators and `sentinel simulate` against a real broker, read back by the MQTT source."""

from __future__ import annotations

import asyncio

import pytest

from sensors.mqtt import MqttSettings, MqttSource, mqtt_binding
from sensors.sim.publisher import messages, run_scenario
from sensors.sim.scenario import build_scenario
from sentinel.cli.main import main
from tests.fixtures.mosquitto import Mosquitto
from tests.sensors.helpers import Collector, match


def room(fmt: str) -> list:
    if fmt == "zigbee2mqtt":
        return [
            mqtt_binding("leak", "water_leak", fmt, "zigbee2mqtt/leak-ups"),
            mqtt_binding("temp", "temperature", fmt, "zigbee2mqtt/climate-rack1"),
            mqtt_binding("smoke", "smoke", fmt, "zigbee2mqtt/smoke-ceiling"),
        ]
    return [
        mqtt_binding("leak", "water_leak", fmt, "leak-ups"),
        mqtt_binding("temp", "temperature", fmt, "climate-rack1"),
        mqtt_binding("smoke", "smoke", fmt, "smoke-ceiling"),
    ]


@pytest.mark.parametrize("fmt", ["zigbee2mqtt", "tasmota"])
async def test_leak_scenario_reaches_the_source(mosquitto: Mosquitto, fmt: str) -> None:
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, reconnect_min=0.05)
    source = MqttSource(settings, room(fmt))
    collector = Collector(source)
    try:
        await collector.wait_health(lambda h: h["state"] == "connected")
        await run_scenario("leak", mosquitto.host, mosquitto.port, speed=100.0, fmt=fmt)
        dry = await collector.wait_for(match("leak", "water_leak", False))
        wet = await collector.wait_for(match("leak", "water_leak", True))
        assert dry.ts <= wet.ts
        assert (await collector.wait_for(match("temp", "temperature"))).value == 23.5
        assert (await collector.wait_for(match("smoke", "smoke"))).value is False
        assert source.health()["rejected"] == 0
    finally:
        await collector.stop()


def test_heat_scenario_rises_at_the_given_rate() -> None:
    events = build_scenario("heat", rate=3.0, duration=120.0, step=60.0)
    temps = [e.fields["temperature"] for e in events if "temperature" in e.fields]
    assert temps == [23.5, 23.5, 26.5, 29.5]
    with pytest.raises(ValueError, match="unknown scenario"):
        build_scenario("flood")


def test_offline_scenario_is_retained_availability() -> None:
    event = next(e for e in build_scenario("offline") if e.online is False)
    assert messages(event, "zigbee2mqtt") == [
        ("zigbee2mqtt/leak-ups/availability", b'{"state": "offline"}', True)
    ]
    assert messages(event, "tasmota") == [("tele/leak-ups/LWT", b"Offline", True)]


async def test_cli_simulate_offline(mosquitto: Mosquitto) -> None:
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port, reconnect_min=0.05)
    collector = Collector(MqttSource(settings, room("zigbee2mqtt")))
    try:
        await collector.wait_health(lambda h: h["state"] == "connected")
        argv = ["simulate", "offline", "--broker", f"{mosquitto.host}:{mosquitto.port}"]
        code = await asyncio.to_thread(main, [*argv, "--speed", "50", "--at", "1"])
        assert code == 0
        assert (await collector.wait_for(match("leak", "availability", False))).value is False
    finally:
        await collector.stop()


def test_cli_simulate_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "leak", "--broker", "nohost"])
    assert exc.value.code == 2
    assert "HOST:PORT" in capsys.readouterr().err
