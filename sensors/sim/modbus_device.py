"""Modbus RTU devices on a pty pair, answered by pymodbus's own serial server.

`socat` joins two ptys: the server opens one end, the source under test opens `port`.
Register values change at run time; `silence(id)` makes one device stop answering while
the others on the same line go on (its replies are dropped before they reach the wire).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

REGISTERS = 16  # each simulated device answers registers 0..15 of FC3 and FC4
START_TIMEOUT = 5.0


def to_register(value: float, scale: float = 10.0) -> int:
    """A value as the unsigned 16-bit register a device sends (x10, two's complement)."""
    return round(value * scale) & 0xFFFF


class ModbusDeviceSim:
    """Several Modbus RTU devices on one simulated RS-485 line."""

    def __init__(self, workdir: Path, device_ids: list[int], *, baudrate: int = 9600) -> None:
        self.workdir = workdir
        self.device_ids = list(device_ids)
        self.baudrate = baudrate
        self.port = str(workdir / "ttyRS485")  # what the source opens
        self._server_port = str(workdir / "ttyRS485-device")
        self._socat: asyncio.subprocess.Process | None = None
        self._server: ModbusSerialServer | None = None
        self._silenced: set[int] = set()

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        socat = shutil.which("socat") or "/usr/bin/socat"
        self._socat = await asyncio.create_subprocess_exec(
            socat,
            f"pty,raw,echo=0,link={self._server_port}",
            f"pty,raw,echo=0,link={self.port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while not (Path(self.port).exists() and Path(self._server_port).exists()):
            if loop.time() > deadline or self._socat.returncode is not None:
                await self.stop()
                raise RuntimeError("socat did not create the pty pair")
            await asyncio.sleep(0.01)
        devices = [
            SimDevice(
                id=device_id,
                simdata=[SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
            )
            for device_id in self.device_ids
        ]
        self._server = ModbusSerialServer(
            devices,
            framer=FramerType.RTU,
            port=self._server_port,
            baudrate=self.baudrate,
            trace_packet=self._trace_packet,
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
        if self._socat is not None:
            with contextlib.suppress(ProcessLookupError):
                self._socat.kill()
            await self._socat.wait()
            self._socat = None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # An RTU frame starts with the device id: dropping the reply is a dead device.
        if sending and data and data[0] in self._silenced:
            return b""
        return data

    def silence(self, device_id: int, silent: bool = True) -> None:
        if silent:
            self._silenced.add(device_id)
        else:
            self._silenced.discard(device_id)

    async def set_registers(self, device_id: int, address: int, values: list[int]) -> None:
        if self._server is None:
            raise RuntimeError("simulator is not running")
        # FC16 (write multiple) writes the device's one shared block that FC3 and FC4 read.
        error = await self._server.context.async_setValues(device_id, 16, address, values)
        if error:
            raise RuntimeError(f"cannot set registers of device {device_id}: {error}")

    async def set_xy_md02(self, device_id: int, temperature: float, humidity: float) -> None:
        """An XY-MD02 probe: reg 1 temperature x10 signed, reg 2 humidity x10."""
        await self.set_registers(device_id, 1, [to_register(temperature), to_register(humidity)])

    async def set_leak(self, device_id: int, leak: bool, cable_break: bool = False) -> None:
        """A leak controller: reg 0 status bits (bit0 leak, bit1 cable break)."""
        await self.set_registers(device_id, 0, [int(leak) | (int(cable_break) << 1)])

    async def coil(self, device_id: int, address: int) -> bool:
        """A coil's state as the device holds it (what a siren relay would do)."""
        if self._server is None:
            raise RuntimeError("simulator is not running")
        bits = await self._server.context.async_getValues(device_id, 1, address, 1)
        if not isinstance(bits, list):
            raise RuntimeError(f"cannot read coil {address} of device {device_id}: {bits}")
        return bool(bits[0])

    async def __aenter__(self) -> ModbusDeviceSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.stop()
