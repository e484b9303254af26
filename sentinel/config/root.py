"""The whole sentinel.toml as one validated object."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from sentinel.config.alerts import AlertsConfig
from sentinel.config.replication import ReplicationConfig
from sentinel.config.rules import RuleConfig
from sentinel.config.sensors import MqttConfig, SensorConfig
from sentinel.config.types import Duration, Model


class SiteConfig(Model):
    name: str = "server room"


class DaemonConfig(Model):
    state_dir: Path = Path("/var/lib/sentinel")
    heartbeat: Duration = Field(5.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class Config(Model):
    site: SiteConfig = SiteConfig()
    daemon: DaemonConfig = DaemonConfig()
    mqtt: MqttConfig | None = None
    sensors: list[SensorConfig] = []
    rules: list[RuleConfig] = []
    alerts: AlertsConfig = AlertsConfig()
    replication: list[ReplicationConfig] = []

    @model_validator(mode="after")
    def _unique_sensor_ids(self) -> Config:
        seen: set[str] = set()
        for sensor in self.sensors:
            if sensor.id in seen:
                raise ValueError(f"sensor id {sensor.id!r} is used twice")
            seen.add(sensor.id)
        return self

    def summary(self) -> str:
        return (
            f"{len(self.sensors)} sensors, {self.channel_count()} alert channels, "
            f"{len(self.replication)} replication sources"
        )

    def channel_count(self) -> int:
        """How many Apprise URLs the referenced Apprise config holds (0 if none)."""
        path = self.alerts.apprise_config
        if path is None or not path.exists():
            return 0
        from alerts.channels import count_channels

        return count_channels(path)
