"""Modbus RTU source: polls several devices on one RS-485 bus in turn.

Uses pymodbus's AsyncModbusSerialClient (`device_id=`). Each device is read with a
per-request timeout; a device that does not answer makes only its own sensors unavailable,
and the bus goes on with its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient

from common.kinds import Kind
from sensors.binding import Binding, ConversionError
from sensors.fault import register_fault
from sensors.reading import Reading, SourceHealth
from sensors.source import Backoff, RateLimitedLog

log = logging.getLogger("sensors.modbus")

# the cause code alerts/reasons.py words as "leak at 12.4 m" (a leaf cannot import it)
LEAK_AT = "leak_at"
# reg 2 of a locating leak controller: how reg 1 counts, as (divisor, unit shown)
DISTANCE_UNITS = {0: (10.0, "m"), 1: (1.0, "ft")}

# Presets: which registers a known device model answers, read as one block.
# XY-MD02 / SHT20 probes: FC4 reg 1 temperature x10 (signed), reg 2 humidity x10.
# Leak controllers (RLE SeaHawk style): FC4 reg 0 status bits: bit0 leak, bit1 cable break.
# Those that locate the leak along the sensing cable (RLE SeaHawk 10K, User Guide v2.5.a,
# table 4.5) go on with reg 1 leak distance and reg 2 its unit: 0 = decimeters, 1 = feet;
# `leak_distance` reads the three as one block (a controller without them would refuse it).
PRESETS: dict[str, tuple[str, ...]] = {
    "xy-md02": ("temperature", "humidity"),
    "leak-controller": ("leak", "cable_break"),
}


@dataclass(frozen=True, slots=True)
class Register:
    """A generic register: address, function 3 (holding) or 4 (input), scale, signedness."""

    address: int
    function: int = 4
    scale: float = 1.0
    signed: bool = False

    def __post_init__(self) -> None:
        if self.function not in (3, 4):
            raise ValueError(f"function must be 3 or 4, not {self.function}")
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"register address {self.address} out of 0..65535")


@dataclass(frozen=True, slots=True)
class ModbusBinding:
    """A sensor on a Modbus device: a preset field (`temperature`, `leak`...) or a register."""

    binding: Binding
    device_id: int
    preset: str | None = None
    field: str | None = None
    register: Register | None = None
    leak_distance: bool = False

    def __post_init__(self) -> None:
        if self.leak_distance and self.preset != "leak-controller":
            raise ValueError("leak_distance is for the leak-controller preset")
        if not 0 <= self.device_id <= 247:
            raise ValueError(f"device id {self.device_id} out of 0..247")
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise ValueError(f"unknown preset {self.preset!r}; known: {sorted(PRESETS)}")
            if self.field not in PRESETS[self.preset]:
                raise ValueError(
                    f"preset {self.preset!r} has fields {PRESETS[self.preset]}, not {self.field!r}"
                )
        elif self.register is None:
            raise ValueError("a Modbus sensor needs a preset and field, or a register")


def modbus_binding(
    sensor_id: str,
    kind: str,
    device_id: int,
    *,
    preset: str | None = None,
    field: str | None = None,
    register: Register | None = None,
    offset: float = 0.0,
    leak_distance: bool = False,
) -> ModbusBinding:
    """Builds a binding; a preset's field defaults from the kind (water_leak -> leak)."""
    if preset is not None and field is None:
        field = "leak" if kind == Kind.WATER_LEAK else kind
    return ModbusBinding(
        Binding(sensor_id, kind, (), offset), device_id, preset, field, register, leak_distance
    )


def _signed(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def _located(reading: Reading, values: dict[str, int]) -> Reading:
    """The leak reading with where along the cable it is, when the unit is one we know."""
    unit = DISTANCE_UNITS.get(values.get("distance_unit", -1))
    raw = values.get("distance")
    # 0: the controller has not located it (yet); 0xFFFF and the like: no valid distance.
    # A page that sends people to the cable's start, or to 6553.5 m, is worse than none.
    if unit is None or raw is None or raw == 0 or register_fault(raw):
        return reading
    divisor, shown = unit
    distance = round(raw / divisor, 1)
    return replace(
        reading,
        detail=f"leak at {distance:g} {shown}",
        cause=LEAK_AT,
        params={"distance": distance, "unit": shown},
    )


class _DeviceDown(Exception):
    pass


class ModbusSource:
    """One RS-485 bus and the devices on it. Implements `sensors.source.Source`."""

    def __init__(
        self,
        name: str,
        port: str,
        bindings: Iterable[ModbusBinding],
        *,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        interval: float = 10.0,
        timeout: float = 1.0,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.port = port
        self.bindings = list(bindings)
        self.serial = {
            "baudrate": baudrate,
            "parity": parity,
            "stopbits": stopbits,
            "bytesize": bytesize,
        }
        self.interval = interval
        self.timeout = timeout
        self._reconnect = (reconnect_min, reconnect_max)
        self._clock = clock
        self._health = SourceHealth()
        self._log = RateLimitedLog(log)
        self._devices: dict[int, list[ModbusBinding]] = {}
        for mb in self.bindings:
            self._devices.setdefault(mb.device_id, []).append(mb)
        self._online: dict[int, bool] = {}
        self._polls = 0
        # coil writes (a siren, issue 15) wait here for a gap between polls: one RS-485
        # line carries one request at a time
        self._writes: asyncio.Queue[tuple[int, int, bool, asyncio.Future[None]]] = asyncio.Queue()

    def health(self) -> dict[str, Any]:
        down = sorted(d for d, up in self._online.items() if not up)
        self._health.details = {
            "port": self.port,
            "devices": sorted(self._devices),
            "devices_down": down,
            "polls": self._polls,
        }
        return self._health.as_dict()

    async def readings(self) -> AsyncIterator[Reading]:
        backoff = Backoff(*self._reconnect)
        while True:
            client = AsyncModbusSerialClient(
                self.port,
                framer=FramerType.RTU,
                timeout=self.timeout,
                retries=0,
                name=self.name,
                **self.serial,  # type: ignore[arg-type]
            )
            try:
                if not await client.connect():
                    raise OSError(f"cannot open {self.port}")
                backoff.reset()
                self._health.state = "connected"
                self._health.last_error = None
                while client.connected:
                    started = time.monotonic()
                    for device_id in self._devices:
                        await self._drain_writes(client)
                        for reading in await self.poll_device(client, device_id):
                            yield reading
                    self._polls += 1
                    await self._idle(client, self.interval - (time.monotonic() - started))
                raise OSError("connection to the bus was lost")
            except OSError as exc:
                self._health.state = "disconnected"
                self._health.last_error = f"bus {self.port} unavailable: {exc}"
                self._log.warning("down", f"{self.name}: {self._health.last_error}; retrying")
                for device_id in self._devices:
                    for reading in self._set_online(device_id, False):
                        yield reading
            finally:
                client.close()
            await asyncio.sleep(backoff.next())

    async def write_coil(self, device_id: int, address: int, value: bool) -> None:
        """Writes one coil between polls; raises OSError when the device refused or did not
        answer. Waits while the bus is down: the caller bounds the wait."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._writes.put((device_id, address, value, done))
        await done

    async def _idle(self, client: AsyncModbusSerialClient, seconds: float) -> None:
        """The rest of the poll interval, taking coil writes as they come."""
        deadline = time.monotonic() + max(0.0, seconds)
        while (left := deadline - time.monotonic()) > 0:
            try:
                write = await asyncio.wait_for(self._writes.get(), left)
            except TimeoutError:
                return
            await self._write(client, *write)

    async def _drain_writes(self, client: AsyncModbusSerialClient) -> None:
        while not self._writes.empty():
            await self._write(client, *self._writes.get_nowait())

    async def _write(
        self,
        client: AsyncModbusSerialClient,
        device_id: int,
        address: int,
        value: bool,
        done: asyncio.Future[None],
    ) -> None:
        if done.done():  # the writer stopped waiting (its timeout): a newer write follows
            return
        try:
            response = await client.write_coil(address, value, device_id=device_id)
            if response.isError():
                raise OSError(f"device {device_id} refused coil {address}: {response}")
        except (TimeoutError, ModbusException, OSError) as exc:
            if not done.done():
                done.set_exception(
                    OSError(f"device {device_id} coil {address}: {str(exc) or type(exc).__name__}")
                )
            return
        if not done.done():
            done.set_result(None)

    async def poll_device(self, client: AsyncModbusSerialClient, device_id: int) -> list[Reading]:
        """Reads one device; on no answer its sensors (only) become unavailable."""
        try:
            values = await self._read_device(client, device_id)
        except (TimeoutError, _DeviceDown, ModbusException) as exc:
            self._health.rejected += 1
            reason = str(exc) or type(exc).__name__
            self._log.warning(
                f"device:{device_id}", f"{self.name}: device {device_id} not answering: {reason}"
            )
            self._health.last_error = f"device {device_id} not answering: {reason}"
            return self._set_online(device_id, False)
        now = self._clock()
        self._health.received += 1
        self._health.last_message_ts = now
        out = self._set_online(device_id, True)
        for mb in self._devices[device_id]:
            reading = self._reading(mb, values, now)
            if reading is not None:
                out.append(reading)
                self._health.decoded += 1
        if all(self._online.values()):
            self._health.last_error = None
        return out

    async def _read_device(self, client: AsyncModbusSerialClient, device_id: int) -> dict[str, int]:
        """Raw unsigned register values keyed by preset field or `f<function>:<address>`."""
        values: dict[str, int] = {}
        presets = {mb.preset for mb in self._devices[device_id] if mb.preset}
        if "xy-md02" in presets:
            regs = await self._read(client, device_id, 4, 1, 2)
            values["temperature"], values["humidity"] = regs[0], regs[1]
        if "leak-controller" in presets:
            locating = any(mb.leak_distance for mb in self._devices[device_id])
            regs = await self._read(client, device_id, 4, 0, 3 if locating else 1)
            status = regs[0]
            values["leak"] = status & 0x1
            values["cable_break"] = (status >> 1) & 0x1
            if locating:
                values["distance"], values["distance_unit"] = regs[1], regs[2]
        for mb in self._devices[device_id]:
            reg = mb.register
            if reg is not None and mb.preset is None:
                key = f"f{reg.function}:{reg.address}"
                if key not in values:
                    values[key] = (
                        await self._read(client, device_id, reg.function, reg.address, 1)
                    )[0]
        return values

    async def _read(
        self,
        client: AsyncModbusSerialClient,
        device_id: int,
        function: int,
        address: int,
        count: int,
    ) -> list[int]:
        if function == 4:
            response = await client.read_input_registers(address, count=count, device_id=device_id)
        else:
            response = await client.read_holding_registers(
                address, count=count, device_id=device_id
            )
        if response.isError() or len(response.registers) < count:
            raise _DeviceDown(f"error response to function {function} at {address}: {response}")
        return list(response.registers)

    def _reading(self, mb: ModbusBinding, values: dict[str, int], now: float) -> Reading | None:
        b = mb.binding
        if mb.preset == "leak-controller":
            if values["cable_break"]:
                return Reading(b.sensor_id, b.kind, None, "", now, self.name, "leak cable break")
            raw = values[mb.field or "leak"]
            reading = self._convert(b, bool(raw), now)
            if reading is not None and reading.value is True and mb.leak_distance:
                return _located(reading, values)
            return reading
        if mb.preset == "xy-md02":
            raw = values[mb.field or b.kind]
            fault = register_fault(raw)
            if fault:
                return Reading(b.sensor_id, b.kind, None, b.unit, now, self.name, fault)
            value = (_signed(raw) if mb.field == "temperature" else raw) / 10.0
            return self._convert(b, value, now)
        reg = mb.register
        assert reg is not None
        raw = values[f"f{reg.function}:{reg.address}"]
        fault = register_fault(raw)
        if fault:
            return Reading(b.sensor_id, b.kind, None, b.unit, now, self.name, fault)
        number = (_signed(raw) if reg.signed else raw) * reg.scale
        return self._convert(b, number, now)

    def _convert(self, b: Binding, value: float | bool, now: float) -> Reading | None:
        try:
            return b.reading(value, ts=now, source=self.name)
        except ConversionError as exc:
            self._health.rejected += 1
            self._log.warning(f"conv:{b.sensor_id}", f"{self.name}: sensor {b.sensor_id}: {exc}")
            return None

    def _set_online(self, device_id: int, online: bool) -> list[Reading]:
        if self._online.get(device_id) == online:
            return []
        self._online[device_id] = online
        now = self._clock()
        return [
            mb.binding.availability(online, ts=now, source=self.name)
            for mb in self._devices[device_id]
        ]
