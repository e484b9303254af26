"""The serial text-line source on real pty pairs: decoding, garbage, unplug and replug."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sensors.binding import Binding
from sensors.line import LineSource
from sensors.sim.line_device import PtyLineDevice
from tests.sensors.helpers import Collector, match


@pytest.fixture
def device(tmp_path: Path) -> Iterator[PtyLineDevice]:
    dev = PtyLineDevice(tmp_path / "ttyUSB-leak")
    dev.plug()
    try:
        yield dev
    finally:
        dev.close()


def line_source(device: PtyLineDevice) -> LineSource:
    return LineSource(
        "serial:board1",
        str(device.link),
        [
            Binding("leak", "water_leak", ("leak",)),
            Binding("temp", "temperature", ("temp",), offset=0.5),
            Binding("hum", "humidity", ("hum",)),
        ],
        reconnect_min=0.05,
        reconnect_max=0.2,
    )


async def test_key_value_and_json_lines_are_decoded(device: PtyLineDevice) -> None:
    source = line_source(device)
    collector = Collector(source)
    try:
        await collector.wait_health(lambda h: h["state"] == "connected")
        device.write_line("leak=1 temp=24.5 extra=3")
        assert (await collector.wait_for(match("leak", "water_leak"))).value is True
        temp = await collector.wait_for(match("temp", "temperature"))
        assert temp.value == 25.0 and temp.source == "serial:board1"
        assert (await collector.wait_for(match("leak", "availability"))).value is True
        device.write_line('{"hum": 48.5, "leak": 0}')
        assert (await collector.wait_for(match("hum", "humidity"))).value == 48.5
        assert (await collector.wait_for(match("leak", "water_leak", False))).value is False
        assert source.health()["unbound_fields"] == ["extra"]
    finally:
        await collector.stop()


async def test_garbled_lines_are_counted_and_skipped(device: PtyLineDevice) -> None:
    source = line_source(device)
    collector = Collector(source)
    try:
        await collector.wait_health(lambda h: h["state"] == "connected")
        device.write(b"\x00\xff\xfe\x13\n")  # line noise
        device.write_line("mp=24.5 hu")  # the tail of a line after a board reset
        device.write_line('{"leak": ')
        device.write_line("temp=-127")  # a DS18B20 with no probe: a fault, not a value
        device.write_line("leak=0")
        assert (await collector.wait_for(match("leak", "water_leak"))).value is False
        fault = await collector.wait_for(match("temp", "temperature"))
        assert fault.value is None and fault.fault
        health = source.health()
        assert health["rejected"] == 3
        assert health["state"] == "connected"
        assert [r.value for r in collector.readings if r.kind == "water_leak"] == [False]
    finally:
        await collector.stop()


async def test_unplug_makes_sensors_unavailable_and_replug_resumes(device: PtyLineDevice) -> None:
    source = line_source(device)
    collector = Collector(source)
    try:
        await collector.wait_health(lambda h: h["state"] == "connected")
        device.write_line("leak=0 temp=22")
        await collector.wait_for(match("leak", "water_leak", False))

        device.unplug()
        for sensor_id in ("leak", "temp", "hum"):
            await collector.wait_for(match(sensor_id, "availability", False))
        health = await collector.wait_health(lambda h: h["state"] == "disconnected")
        assert "unavailable" in health["last_error"]

        seen = len(collector.readings)
        device.plug()  # a new tty behind the same stable link
        await collector.wait_health(lambda h: h["state"] == "connected" and h["opens"] == 2)
        device.write_line("leak=1")
        assert (await collector.wait_for(match("leak", "water_leak"), after=seen)).value is True
        assert (await collector.wait_for(match("temp", "availability"), after=seen)).value is True
    finally:
        await collector.stop()


async def test_missing_port_at_start_is_retried(tmp_path: Path) -> None:
    device = PtyLineDevice(tmp_path / "ttyUSB-late")
    source = line_source(device)
    collector = Collector(source)
    try:
        await collector.wait_for(match("leak", "availability", False))
        assert source.health()["state"] == "disconnected"
        device.plug()
        await collector.wait_health(lambda h: h["state"] == "connected")
        device.write_line("leak=1")
        assert (await collector.wait_for(match("leak", "water_leak"))).value is True
    finally:
        await collector.stop()
        device.close()
