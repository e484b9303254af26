"""The whole sentinel.toml as one validated object."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from sentinel.config.alerts import AlertsConfig
from sentinel.config.keeper import KeeperConfig
from sentinel.config.outputs import OutputConfig
from sentinel.config.replication import ReplicationConfig, stream_keys_apart, targets_apart
from sentinel.config.reports import ReportsConfig
from sentinel.config.rules import AlarmsConfig, RuleConfig
from sentinel.config.sensors import (
    MQTT_FORMATS,
    ModbusBusConfig,
    MqttConfig,
    NutConfig,
    SensorConfig,
    SerialPortConfig,
)
from sentinel.config.types import ConfigPath, Duration, Model, format_duration
from sentinel.config.web import WebConfig
from sentinel.supervisor import BACKOFF_MAX, RESTART_ALARM_COUNT, RESTART_ALARM_WINDOW


class SiteConfig(Model):
    name: str = "server room"


class DaemonConfig(Model):
    state_dir: ConfigPath = Path("/var/lib/sentinel")
    heartbeat: Duration = Field(5.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # more than this many failures of one component within the window page (a restart loop)
    restart_alarm_count: int = Field(RESTART_ALARM_COUNT, ge=1, le=1000, strict=True)
    restart_alarm_window: Duration = Field(RESTART_ALARM_WINDOW, ge=60.0, le=86400.0)

    @field_validator("restart_alarm_window")
    @classmethod
    def _window_holds_the_count(cls, window: float, info: ValidationInfo) -> float:
        # restarts back off to one every BACKOFF_MAX: a shorter window could never see the
        # count, and a component failing at every restart would never page
        count = info.data.get("restart_alarm_count", RESTART_ALARM_COUNT)
        need = count * BACKOFF_MAX
        if window < need:
            raise ValueError(
                f"{format_duration(window)} cannot hold {count} restarts "
                f"(restart_alarm_count), which back off to one every "
                f"{format_duration(BACKOFF_MAX)}; use at least {format_duration(need)}"
            )
        return window


class Config(Model):
    site: SiteConfig = SiteConfig()
    daemon: DaemonConfig = DaemonConfig()
    mqtt: MqttConfig | None = None
    serial: list[SerialPortConfig] = []
    modbus: list[ModbusBusConfig] = []
    nut: list[NutConfig] = []
    sensors: list[SensorConfig] = []
    rules: list[RuleConfig] = []
    alarms: AlarmsConfig = AlarmsConfig()
    alerts: AlertsConfig = AlertsConfig()
    replication: list[ReplicationConfig] = []
    # the health-center role (`sentinel keeper run`): rooms whose landing areas it keeps
    keeper: KeeperConfig | None = None
    # the dashboard and /metrics (sentinel/web/); no section, no web server
    web: WebConfig | None = None
    # a siren or beacon switched on while a critical alarm fires (sentinel/outputs.py)
    outputs: list[OutputConfig] = []
    # the security-review pack and the recovery runbook (sentinel/report/)
    reports: ReportsConfig = ReportsConfig()

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        """Names must be unique and every sensor's source must exist: a typo in a source name
        would otherwise leave a sensor silently unwatched."""
        _unique("sensor id", [s.id for s in self.sensors])
        _unique("serial port name", [p.name for p in self.serial])
        _unique("modbus bus name", [b.name for b in self.modbus])
        _unique("nut server name", [n.name for n in self.nut])
        _unique("replication name", [r.name for r in self.replication])
        targets_apart(self.replication)
        stream_keys_apart(self.replication)
        ports = {p.name for p in self.serial}
        buses = {b.name for b in self.modbus}
        for i, sensor in enumerate(self.sensors):
            if sensor.format == "line" and sensor.source not in ports:
                raise ValueError(
                    f"sensors[{i}].source: {sensor.source!r} is not a [[serial]] port "
                    f"(known: {', '.join(sorted(ports)) or 'none'})"
                )
            if sensor.format == "modbus" and sensor.source not in buses:
                raise ValueError(
                    f"sensors[{i}].source: {sensor.source!r} is not a [[modbus]] bus "
                    f"(known: {', '.join(sorted(buses)) or 'none'})"
                )
            if sensor.format == "nut" and sensor.source not in {n.name for n in self.nut}:
                raise ValueError(
                    f"sensors[{i}].source: {sensor.source!r} is not a [[nut]] server "
                    f"(known: {', '.join(sorted(n.name for n in self.nut)) or 'none'})"
                )
            if sensor.format in MQTT_FORMATS and self.mqtt is None:
                raise ValueError(
                    f"sensors[{i}].format: {sensor.format!r} needs an [mqtt] section, "
                    "and there is none"
                )
        _unique("output name", [o.name for o in self.outputs])
        for i, out in enumerate(self.outputs):
            if out.kind == "modbus" and out.bus not in buses:
                raise ValueError(
                    f"outputs[{i}].bus: {out.bus!r} is not a [[modbus]] bus "
                    f"(known: {', '.join(sorted(buses)) or 'none'})"
                )
            if out.kind == "mqtt" and self.mqtt is None:
                raise ValueError(f'outputs[{i}].kind: "mqtt" needs an [mqtt] section')
        self._rules_name_what_exists()
        return self

    def _rules_name_what_exists(self) -> None:
        """A rule about a misspelt sensor or kind matches no reading: the alarm it was
        written for would never fire, and nothing would say so."""
        from sensors.reading import Kind

        sensors = (
            {s.id for s in self.sensors}
            | {f"replication:{r.name}" for r in self.replication}
            | {f"room:{r.name}" for r in (self.keeper.rooms if self.keeper else ())}
            | {f"output:{o.name}" for o in self.outputs}
        )
        kinds = {str(k) for k in Kind}
        for i, rule in enumerate(self.rules):
            terms = [(f"rules[{i}]", rule.sensor, rule.kind)] + [
                (f"rules[{i}].all[{j}]", term.sensor, term.kind)
                for j, term in enumerate(rule.all or ())
            ]
            for where, sensor, kind in terms:
                # component:<name> ids are the supervisor's, known only at run time
                if (
                    sensor is not None
                    and sensor not in sensors
                    and not sensor.startswith(("component:", "keeper:"))
                ):
                    raise ValueError(
                        f"{where}.sensor: {sensor!r} is not a [[sensors]] id, "
                        f"replication:<name>, room:<name>, keeper:<name> or component:<name> "
                        f"(known: {', '.join(sorted(sensors)) or 'none'})"
                    )
                # hours on a sensor that is no door would be ignored: the alarm never comes
                own = next((s.kind for s in self.sensors if s.id == sensor), None)
                if (
                    where == f"rules[{i}]"
                    and (rule.allowed is not None or rule.open_limit is not None)
                    and (kind or own) != "door"
                ):
                    raise ValueError(
                        f"{where}: allowed and open_limit are for doors; {sensor!r} is kind {own!r}"
                    )
                if kind is not None and kind not in kinds:
                    raise ValueError(
                        f"{where}.kind: {kind!r} is not a kind sentinel reads "
                        f"(use one of {', '.join(sorted(kinds))})"
                    )

    def summary(self) -> str:
        if self.keeper is not None:
            return (
                f"keeper of {len(self.keeper.rooms)} room(s), {self.channel_count()} alert channels"
            )
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


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} {name!r} is used twice")
        seen.add(name)
