"""On/off outputs sentinel drives (a siren, a beacon): an MQTT command topic or a Modbus coil.

Each `Switch` has one coroutine, `set(on)`, that either returns once the device (or the
broker) took the state, or raises `SwitchError` saying why. Deciding when to switch, and
retrying, is the caller's business.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import aiomqtt

from sensors.mqtt import MqttSettings


class SwitchError(Exception):
    """A write that did not reach the device; the text is safe to show (no secrets)."""


class Switch(Protocol):
    name: str

    def describe(self) -> str: ...

    async def set(self, on: bool) -> None: ...


class CoilWriter(Protocol):
    """What a Modbus coil needs of its bus: `sensors.modbus.ModbusSource.write_coil`."""

    async def write_coil(self, device_id: int, address: int, value: bool) -> None: ...


@dataclass
class MqttSwitch:
    """Publishes `payload_on`/`payload_off` to `topic` (QoS 1) over a short connection of its
    own: the sensor connections must not wait behind it, and it holds no session to lose."""

    name: str
    settings: MqttSettings
    topic: str
    payload_on: str = "ON"
    payload_off: str = "OFF"
    retain: bool = True
    timeout: float = 5.0

    def describe(self) -> str:
        return f"mqtt {self.settings.host}:{self.settings.port} {self.topic}"

    async def set(self, on: bool) -> None:
        s = self.settings
        tls = None
        if s.tls or s.ca_file or s.cert_file:
            tls = aiomqtt.TLSParameters(
                ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file
            )
        try:
            async with asyncio.timeout(self.timeout):
                async with aiomqtt.Client(
                    s.host,
                    s.port,
                    identifier=f"{s.client_id}-output-{self.name}",
                    username=s.username,
                    password=s.password,
                    tls_params=tls,
                    keepalive=s.keepalive,
                ) as client:
                    payload = self.payload_on if on else self.payload_off
                    await client.publish(self.topic, payload, qos=1, retain=self.retain)
        except TimeoutError:
            raise SwitchError(f"no answer from the broker within {self.timeout:g}s") from None
        except (aiomqtt.MqttError, OSError) as exc:
            raise SwitchError(f"broker {s.host}:{s.port}: {exc}") from None


@dataclass
class ModbusCoil:
    """Writes one coil (function 5) of one device through the bus's own poll loop, so the
    write never collides with a poll on the shared RS-485 line."""

    name: str
    bus: CoilWriter
    bus_name: str
    device_id: int
    address: int
    timeout: float = 5.0

    def describe(self) -> str:
        return f"modbus {self.bus_name} device {self.device_id} coil {self.address}"

    async def set(self, on: bool) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.bus.write_coil(self.device_id, self.address, on)
        except TimeoutError:
            raise SwitchError(
                f"device {self.device_id} did not take the write within {self.timeout:g}s"
            ) from None
        except (OSError, ValueError) as exc:
            raise SwitchError(str(exc) or type(exc).__name__) from None
