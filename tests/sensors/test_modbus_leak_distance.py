"""Leak location along a sensing cable (issue 15): a leak controller that reports where
(RLE SeaHawk 10K map: FC4 reg 0 status, reg 1 distance, reg 2 unit 0 = decimeters /
1 = feet) on pymodbus's simulator, through a real `sentinel run`, to the page at a loopback
json:// channel: "누수 감지 (위치 12.4 m)"."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sensors.modbus import ModbusSource, modbus_binding
from sensors.sim.modbus_device import ModbusDeviceSim
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until
from tests.sensors.helpers import Collector, match

PYTHON = sys.executable


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[ModbusDeviceSim]:
    async with ModbusDeviceSim(tmp_path / "rs485", [1, 2]) as sim:
        yield sim


async def test_leak_reading_says_where_in_either_unit(bus: ModbusDeviceSim) -> None:
    src = ModbusSource(
        "modbus:bus1",
        bus.port,
        [
            modbus_binding("cable", "water_leak", 1, preset="leak-controller", leak_distance=True),
            # a controller without the distance registers: read as before, one register
            modbus_binding("plain", "water_leak", 2, preset="leak-controller"),
        ],
        interval=0.05,
        timeout=0.3,
    )
    await bus.set_registers(1, 0, [0x1, 124, 0])  # leak at 124 dm
    await bus.set_leak(2, leak=True)
    collector = Collector(src)
    try:
        leak = await collector.wait_for(match("cable", "water_leak", True))
        assert (leak.cause, leak.params, leak.detail) == (
            "leak_at",
            {"distance": 12.4, "unit": "m"},
            "leak at 12.4 m",
        )
        plain = await collector.wait_for(match("plain", "water_leak", True))
        assert plain.cause is None and plain.detail is None
        mark = len(collector.readings)
        await bus.set_registers(1, 0, [0x1, 41, 1])  # the controller set to feet
        feet = await collector.wait_for(
            lambda r: r.sensor_id == "cable" and r.detail == "leak at 41 ft", after=mark
        )
        assert feet.params == {"distance": 41.0, "unit": "ft"}
        # a leak the controller has not located (0) or an invalid distance: the leak
        # still pages, without a place that would send people to the wrong spot
        for unlocated in (0, 0xFFFF):
            await bus.set_registers(1, 0, [0x1, 7, 0])
            await collector.wait_for(lambda r: r.detail == "leak at 0.7 m", after=mark)
            mark = len(collector.readings)
            await bus.set_registers(1, 0, [0x1, unlocated, 0])
            where = await collector.wait_for(
                lambda r: r.sensor_id == "cable" and r.detail != "leak at 0.7 m", after=mark
            )
            assert where.value is True and where.detail is None and where.cause is None, where
            assert not where.params
        await bus.set_registers(1, 0, [0x0, 41, 1])  # dry: no location to carry
        dry = await collector.wait_for(match("cable", "water_leak", False), after=mark)
        assert dry.detail is None
    finally:
        await collector.stop()


async def test_leak_page_says_leak_at_distance(
    tmp_path: Path, bus: ModbusDeviceSim, http_sink: HttpSink
) -> None:
    url = http_sink.json_url("/sms", query="cto=1&rto=1")
    apprise = tmp_path / "apprise.yml"
    apprise.write_text(f'urls:\n  - "{url}":\n      tag: critical, warning\n')
    config = tmp_path / "sentinel.toml"
    config.write_text(
        f"""
[site]
name = "test county"

[daemon]
state_dir = "{tmp_path / "state"}"
heartbeat = "0.5s"

[[modbus]]
name = "bus1"
port = "{bus.port}"
interval = "0.2s"

[[sensors]]
id = "leak-cable"
location = "전산실 항온항습기 하부"
kind = "water_leak"
format = "modbus"
source = "bus1"
device = 1
preset = "leak-controller"
leak_distance = true

[alerts]
apprise_config = "apprise.yml"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"
"""
    )
    for path in (apprise, config):
        path.chmod(0o600)
    log = (tmp_path / "daemon.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "sentinel", "--config", str(config), "run", stdout=log, stderr=log
    )
    try:

        async def polled() -> bool:
            done = await asyncio.to_thread(
                subprocess.run,
                [PYTHON, "-m", "sentinel", "--config", str(config), "status", "--json"],
                capture_output=True,
                text=True,
            )
            report = json.loads(done.stdout or "{}")
            bus_health = report.get("components", {}).get("source:modbus:bus1", {})
            return bool(bus_health.get("polls"))

        await until(polled, 30, "the daemon polling the bus", interval=0.2)
        await bus.set_registers(1, 0, [0x1, 124, 0])
        page = (await http_sink.wait_delivered(1, "/sms"))[0]
        assert page.message.startswith("[위험] 전산실 항온항습기 하부 누수 감지 (위치 12.4 m)"), (
            page.message
        )
    finally:
        proc.terminate()
        await proc.wait()
        log.close()


def test_leak_distance_is_for_the_leak_controller_preset_only() -> None:
    from pydantic import ValidationError

    from sentinel.config.sensors import SensorConfig

    with pytest.raises(ValidationError, match='leak_distance needs preset = "leak-controller"'):
        SensorConfig(
            id="t",
            kind="temperature",
            format="modbus",
            source="bus1",
            device=1,
            preset="xy-md02",
            leak_distance=True,
        )
