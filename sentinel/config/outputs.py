"""[[outputs]]: a siren or beacon sentinel switches on while a critical alarm is firing.

[[outputs]]
name = "siren"
kind = "mqtt"                 # on the [mqtt] broker
topic = "cmnd/beacon/POWER"   # e.g. a Tasmota relay
payload_on = "ON"
payload_off = "OFF"

[[outputs]]
name = "beacon"
kind = "modbus"               # a relay module on a [[modbus]] bus
bus = "rs485"
device = 5
coil = 0
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sentinel.config.types import Duration, Model

_NAME = r"^[A-Za-z0-9_.:-]+$"


class OutputConfig(Model):
    name: str = Field(pattern=_NAME)
    kind: Literal["mqtt", "modbus"]
    # mqtt: a command topic on the [mqtt] broker
    topic: str | None = Field(None, min_length=1)
    payload_on: str = "ON"
    payload_off: str = "OFF"
    # retained by default: a relay that reconnects (or power-cycled) reads the state the
    # broker kept, and a sentinel that crashed while the siren sounded leaves it sounding
    # (loud and wrong is found; silent and wrong is not) until it starts and sets it again
    retain: bool = True
    # modbus: a coil (function 5) of a device on a [[modbus]] bus
    bus: str | None = None
    device: int | None = Field(None, ge=1, le=247)
    coil: int | None = Field(None, ge=0, le=0xFFFF)
    # written again this often even unchanged: a device that lost power forgets its state
    reassert: Duration = Field(60.0, gt=0)
    # a failed write is tried again after `retry`; after `alarm_after` failures in a row the
    # alarm "output:<name>" says the siren would not sound
    retry: Duration = Field(5.0, gt=0)
    alarm_after: int = Field(3, ge=1, le=1000)
    timeout: Duration = Field(5.0, gt=0)
    # only critical alarms of these kinds sound it (e.g. ["water_leak", "smoke", "combined"]:
    # not a replication or crash-loop page at night); None: every critical alarm
    kinds: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> OutputConfig:
        if self.kind == "mqtt":
            if self.topic is None:
                raise ValueError('kind = "mqtt" needs a topic (the command topic)')
            if any(ch in self.topic for ch in "+#"):
                raise ValueError("topic cannot contain MQTT wildcards + or #")
            if self.bus is not None or self.device is not None or self.coil is not None:
                raise ValueError('bus, device and coil are only for kind = "modbus"')
        else:
            if self.bus is None or self.device is None or self.coil is None:
                raise ValueError('kind = "modbus" needs bus, device and coil')
            if self.topic is not None:
                raise ValueError('topic is only for kind = "mqtt"')
        if self.kinds is not None:
            from sensors.reading import Kind  # the kinds sentinel reads, and combined rules'

            unknown = [k for k in self.kinds if k not in {str(k) for k in Kind} | {"combined"}]
            if unknown:
                raise ValueError(
                    f"kinds: {', '.join(map(repr, unknown))} not a kind sentinel reads"
                )
        if self.payload_on == self.payload_off:
            raise ValueError("payload_on and payload_off must differ")
        return self
