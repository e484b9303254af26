"""The Modbus RTU source against pymodbus's own server on a socat pty pair."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sensors.modbus import ModbusSource, Register, modbus_binding
from sensors.sim.modbus_device import ModbusDeviceSim, to_register
from tests.sensors.helpers import Collector, match


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[ModbusDeviceSim]:
    async with ModbusDeviceSim(tmp_path / "rs485", [1, 2, 3]) as sim:
        yield sim


def source(sim: ModbusDeviceSim, *bindings: object) -> ModbusSource:
    return ModbusSource(
        "modbus:bus1",
        sim.port,
        bindings,  # type: ignore[arg-type]
        interval=0.05,
        timeout=0.3,
        reconnect_min=0.05,
        reconnect_max=0.2,
    )


async def test_xy_md02_negative_temperature_and_humidity(bus: ModbusDeviceSim) -> None:
    await bus.set_xy_md02(1, temperature=-20.5, humidity=55.3)
    assert to_register(-20.5) == 0xFF33  # what the probe sends on the wire
    collector = Collector(
        source(
            bus,
            modbus_binding("cold", "temperature", 1, preset="xy-md02"),
            modbus_binding("hum", "humidity", 1, preset="xy-md02", offset=-0.3),
        )
    )
    try:
        temp = await collector.wait_for(match("cold", "temperature"))
        assert temp.value == -20.5 and temp.unit == "°C"
        assert (await collector.wait_for(match("hum", "humidity"))).value == pytest.approx(55.0)
        await bus.set_registers(1, 1, [0x7FFF])  # the probe's "no sensor" code
        fault = await collector.wait_for(lambda r: r.sensor_id == "cold" and r.fault is not None)
        assert fault.value is None and "0x7FFF" in (fault.fault or "")
    finally:
        await collector.stop()


async def test_silent_device_loses_only_its_sensors(bus: ModbusDeviceSim) -> None:
    await bus.set_xy_md02(1, temperature=22.0, humidity=40.0)
    await bus.set_leak(2, leak=False)
    src = source(
        bus,
        modbus_binding("temp", "temperature", 1, preset="xy-md02"),
        modbus_binding("leak", "water_leak", 2, preset="leak-controller"),
    )
    collector = Collector(src)
    try:
        await collector.wait_for(match("leak", "water_leak", False))
        await collector.wait_for(match("temp", "temperature"))

        bus.silence(2)
        lost = await collector.wait_for(match("leak", "availability", False))
        seen = collector.readings.index(lost)
        await bus.set_xy_md02(1, temperature=23.5, humidity=40.0)
        assert (await collector.wait_for(match("temp", "temperature", 23.5), after=seen)).value
        assert not [
            r
            for r in collector.readings
            if r.sensor_id == "temp" and r.kind == "availability" and r.value is False
        ]
        health = src.health()
        assert health["devices_down"] == [2]
        assert "device 2 not answering" in health["last_error"]

        bus.silence(2, False)
        await bus.set_leak(2, leak=True)
        assert (await collector.wait_for(match("leak", "availability", True), after=seen)).value
        assert (await collector.wait_for(match("leak", "water_leak", True), after=seen)).value
        await collector.wait_health(lambda h: h["devices_down"] == [])
    finally:
        await collector.stop()


async def test_leak_cable_break_is_a_fault_and_generic_registers(bus: ModbusDeviceSim) -> None:
    await bus.set_leak(2, leak=True, cable_break=True)
    await bus.set_registers(3, 5, [0xFFF6, 1234])  # -10 signed; 1234 unsigned
    collector = Collector(
        source(
            bus,
            modbus_binding("leak", "water_leak", 2, preset="leak-controller"),
            modbus_binding(
                "supply", "temperature", 3, register=Register(5, function=3, scale=0.5, signed=True)
            ),
            modbus_binding("rh", "humidity", 3, register=Register(6, function=4, scale=0.01)),
        )
    )
    try:
        leak = await collector.wait_for(match("leak", "water_leak"))
        assert leak.value is None and leak.fault == "leak cable break"
        assert (await collector.wait_for(match("supply", "temperature"))).value == -5.0
        assert (await collector.wait_for(match("rh", "humidity"))).value == pytest.approx(12.34)
    finally:
        await collector.stop()


async def test_missing_bus_is_retried_and_reported(tmp_path: Path) -> None:
    src = ModbusSource(
        "modbus:gone",
        str(tmp_path / "no-such-tty"),
        [modbus_binding("temp", "temperature", 1, preset="xy-md02")],
        interval=0.05,
        timeout=0.2,
        reconnect_min=0.05,
        reconnect_max=0.1,
    )
    collector = Collector(src)
    try:
        assert (await collector.wait_for(match("temp", "availability"))).value is False
        health = await collector.wait_health(lambda h: h["state"] == "disconnected")
        assert "unavailable" in health["last_error"]
    finally:
        await collector.stop()
