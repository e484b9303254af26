"""Config for sensor sources ([mqtt], [[serial]], [[modbus]]) and the [[sensors]] list.

Owned by the sensors work (issue 4); extend freely, keep `Model` as the base.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sentinel.config.types import Duration, Model


class MqttConfig(Model):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = "sentinel"
    username: str | None = None
    password: str | None = None
    publish_prefix: str = "sentinel"


class SensorConfig(Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    location: str = ""
    kind: str
    source: str = "mqtt"
    format: Literal["zigbee2mqtt", "tasmota", "esphome", "json", "line", "modbus", "sim"] = (
        "zigbee2mqtt"
    )
    topic: str | None = None
    field: str | None = None
    offset: float = 0.0
    max_age: Duration = 300.0
