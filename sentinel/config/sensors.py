"""Config for sensor sources ([mqtt], [[serial]], [[modbus]], [[nut]]) and the [[sensors]] list.

Owned by the sensors work (issue 4). A sensor's `source` names where it comes from: "mqtt",
the `name` of a [[serial]] port (format "line") or of a [[modbus]] bus (format "modbus").
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from common.kinds import SENSOR_KINDS, UPS_KINDS
from sentinel.config.types import ConfigPath, Duration, Model

MQTT_FORMATS = ("zigbee2mqtt", "tasmota", "esphome", "json")
_NAME = r"^[A-Za-z0-9_.:-]+$"


class MqttConfig(Model):
    """[mqtt]: the broker, its credentials and TLS, and where sentinel publishes its state."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    # None: derived from [site] name (sentinel.sources.default_client_id). It must stay the
    # same across restarts: the broker keeps sentinel's session (and what arrived while it
    # was away) under this id.
    client_id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    keepalive: int = Field(60, ge=5, le=3600)
    publish_prefix: str = Field("sentinel", min_length=1)
    reconnect_min: Duration = Field(1.0, gt=0)
    reconnect_max: Duration = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate)")
        if self.password is not None and self.username is None:
            raise ValueError("password needs username")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must not be less than reconnect_min")
        if any(ch in self.publish_prefix for ch in "+#"):
            raise ValueError("publish_prefix cannot contain MQTT wildcards + or #")
        return self


class SerialPortConfig(Model):
    """[[serial]]: a text-line device; `url` is a device path or a pyserial URL."""

    name: str = Field(pattern=_NAME)
    url: str = Field(min_length=1)
    baudrate: int = Field(9600, gt=0, le=4_000_000)
    reconnect_min: Duration = Field(1.0, gt=0)
    reconnect_max: Duration = Field(30.0, gt=0)


class ModbusBusConfig(Model):
    """[[modbus]]: one RS-485 bus polled in turn, device by device."""

    name: str = Field(pattern=_NAME)
    port: str = Field(min_length=1)
    baudrate: int = Field(9600, gt=0, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    interval: Duration = Field(10.0, gt=0)
    timeout: Duration = Field(1.0, gt=0)


class NutConfig(Model):
    """[[nut]]: a NUT server (upsd); sensors with format "nut" name it as their source."""

    name: str = Field(pattern=_NAME)
    host: str = "127.0.0.1"
    port: int = Field(3493, ge=1, le=65535)
    # upsd lets anyone its LISTEN/ACL admits read; a login matters only where a site's
    # upsd is built to ask for one
    username: str | None = None
    password: SecretStr | None = None
    interval: Duration = Field(2.0, gt=0)
    timeout: Duration = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> NutConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password needs username")
        return self


class SensorConfig(Model):
    """[[sensors]]: one sensor, where it is, what it measures and how it is bound."""

    id: str = Field(pattern=_NAME)
    location: str = ""
    kind: str = Field(min_length=1)
    source: str = "mqtt"
    format: Literal["zigbee2mqtt", "tasmota", "esphome", "json", "line", "modbus", "nut"] = (
        "zigbee2mqtt"
    )
    topic: str | None = None
    field: str | None = None
    availability_topic: str | None = None
    value_map: dict[str, bool | float | str] = {}
    device: int | None = Field(None, ge=0, le=247)
    preset: Literal["xy-md02", "leak-controller"] | None = None
    # "register" in TOML; renamed here because pydantic's BaseModel has a `register` method.
    reg: int | None = Field(None, alias="register", ge=0, le=0xFFFF)
    function: Literal[3, 4] = 4
    # calibration: a sensor reads within a few degrees or percent of the truth; a huge value
    # (offset = -1e308) would make every reading normal and hide the alarm it exists for
    scale: float = Field(1.0, ge=-1000.0, le=1000.0)
    signed: bool = False
    offset: float = Field(0.0, ge=-1000.0, le=1000.0)
    max_age: Duration = 300.0
    # preset "leak-controller": the controller also says where along its cable (RLE
    # SeaHawk 10K's registers 1 and 2); the leak page then says "leak at 12.4 m"
    leak_distance: bool = False
    # format "nut": the UPS's name on its upsd (`upsc -l` lists them)
    ups: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("topic", "availability_topic")
    @classmethod
    def _no_wildcards(cls, topic: str | None) -> str | None:
        # sentinel subscribes to these per sensor: a wildcard would bind every matching
        # device's messages (and its online/offline state) to this one sensor
        if topic is not None and any(ch in topic for ch in "+#"):
            raise ValueError("cannot contain MQTT wildcards + or # (name one device's topic)")
        return topic

    @model_validator(mode="after")
    def _check_binding(self) -> SensorConfig:
        if self.kind not in SENSOR_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(SENSOR_KINDS)}")
        if self.format in MQTT_FORMATS:
            if self.source != "mqtt":
                raise ValueError(f'format {self.format!r} needs source = "mqtt"')
            if not self.topic:
                raise ValueError(f"format {self.format!r} needs a topic")
        elif self.source == "mqtt":
            section = {"line": "[[serial]] port", "nut": "[[nut]] server"}
            raise ValueError(
                f"format {self.format!r} needs source = the name of a "
                f"{section.get(self.format, '[[modbus]] bus')}"
            )
        if self.format == "modbus":
            if self.device is None:
                raise ValueError("a modbus sensor needs device (its Modbus device id)")
            if (self.preset is None) == (self.reg is None):
                raise ValueError("a modbus sensor needs exactly one of preset or register")
        elif self.device is not None or self.preset is not None or self.reg is not None:
            raise ValueError('device, preset and register are only for format = "modbus"')
        if self.leak_distance and self.preset != "leak-controller":
            raise ValueError('leak_distance needs preset = "leak-controller"')
        if (self.format == "nut") != (self.ups is not None):
            raise ValueError('format = "nut" needs ups (the UPS name), and only it has one')
        if self.format == "nut" and self.kind not in UPS_KINDS:
            raise ValueError(f'format = "nut" reads the kinds {", ".join(UPS_KINDS)}')
        return self
