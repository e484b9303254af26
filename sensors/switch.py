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
import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sensors.mqtt import MqttSettings

# MQTT 5's PUBACK reason "Not authorized" (0x87): what mosquitto 2 answers a v5 client whose
# publish its ACL drops.
NOT_AUTHORIZED = 0x87


class SwitchError(Exception):
    """A write that did not reach the device; the text is safe to show (no secrets)."""


class Switch(Protocol):
    name: str

    def describe(self) -> str: ...

    async def set(self, on: bool) -> None: ...


class CoilWriter(Protocol):
    """What a Modbus coil needs of its bus: `sensors.modbus.ModbusSource.write_coil`."""

    async def write_coil(self, device_id: int, address: int, value: bool) -> None: ...


class _AckedClient(aiomqtt.Client):
    """An aiomqtt client that keeps each PUBACK's reason code, which aiomqtt drops.

    Why MQTT 5: over 3.1.1 a broker whose ACL refuses a publish still answers PUBACK (3.1.1
    has no negative PUBACK), so a locked broker swallowing the siren's command looked like a
    switched siren. Over 5 mosquitto answers 0x87 Not authorized. Subscribing to our own
    command topic to see it come back would need read access too and a wait for a message
    that may never come; the reason code is the broker's own word, on the same round trip.
    aiomqtt binds `_on_publish` as paho's on_publish callback; we extend it and call it, so
    its own confirmation of the publish still happens. Should aiomqtt stop calling it, no
    code is recorded and `MqttSwitch.set` fails loudly instead of trusting the publish."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.acks: dict[int, ReasonCode] = {}

    def _on_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        self.acks[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)


@dataclass
class MqttSwitch:
    """Publishes `payload_on`/`payload_off` to `topic` (QoS 1, MQTT 5) over a short
    connection of its own: the sensor connections must not wait behind it, and it holds no
    session to lose. A PUBACK with a failure reason code (an ACL that does not let our
    account write `topic`) is a SwitchError, not a switched siren."""

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
                async with _AckedClient(
                    s.host,
                    s.port,
                    identifier=f"{s.client_id}-output-{self.name}",
                    username=s.username,
                    password=s.password,
                    tls_params=tls,
                    keepalive=s.keepalive,
                    protocol=aiomqtt.ProtocolVersion.V5,
                ) as client:
                    payload = self.payload_on if on else self.payload_off
                    await client.publish(self.topic, payload, qos=1, retain=self.retain)
                    # One publish per connection: its PUBACK is the only one.
                    acks = list(client.acks.values())
        except TimeoutError:
            raise SwitchError(f"no answer from the broker within {self.timeout:g}s") from None
        except (aiomqtt.MqttError, OSError) as exc:
            raise SwitchError(f"broker {s.host}:{s.port}: {exc}") from None
        if len(acks) != 1:
            raise SwitchError(
                f"broker {s.host}:{s.port}: no PUBACK reason code for {self.topic} "
                "(aiomqtt no longer reports it); the command may not have been taken"
            )
        self._check(acks[0])

    def _check(self, ack: ReasonCode) -> None:
        if not ack.is_failure:  # 0x00 Success, 0x10 No matching subscribers: taken
            return
        s = self.settings
        why = f"broker {s.host}:{s.port} refused the command on {self.topic}: {ack}"
        why += f" (0x{ack.value:02x})"
        if ack.value == NOT_AUTHORIZED:
            account = s.username or "(anonymous)"
            why += (
                f"; its ACL does not let account {account} write {self.topic} "
                f"(add the line 'topic write {self.topic}' under 'user {account}', "
                "docs/mqtt-broker.md)"
            )
        raise SwitchError(why)


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
