"""Which rule applies to a reading: sensor rule over kind rule over built-in defaults.

Rules are resolved once per (sensor, kind) and cached, so the hot path does a dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.kinds import (
    BOOLEAN_KINDS,
    COMPONENT_KIND,
    KEEPER_KINDS,
    REPLICATION_KINDS,
    SELF_KINDS,
    SESSION_KIND,
)
from common.states import SEVERITY_RANK, Severity
from sentinel.config.hours import Hours
from sentinel.config.rules import AlarmsConfig, RuleConfig

__all__ = [
    "BOOLEAN_KINDS",
    "BOOLEAN_REASONS",
    "BUILTIN",
    "COMPONENT_KIND",
    "CRITICAL",
    "KEEPER_KINDS",
    "RANK",
    "REPLICATION_KINDS",
    "SELF_KINDS",
    "SESSION_KIND",
    "WARNING",
    "CombinedRule",
    "Policy",
    "Rule",
    "RuleBook",
    "Term",
]

# Kinds and severities are common/'s; named here too because the engine and the conditions
# take them from the rules they are used with.
WARNING = Severity.WARNING
CRITICAL = Severity.CRITICAL
RANK = SEVERITY_RANK

# The reason a boolean alarm states, when "<kind> detected" would read wrong.
BOOLEAN_REASONS = {
    "replication_source_missing": "source missing or not mounted",
    "replication_target_missing": "target missing or not mounted",
}

# What a minimal config gets (the issue's "sensible defaults").
BUILTIN: dict[str, dict[str, Any]] = {
    "temperature": {"warn_high": 30.0, "crit_high": 35.0, "hysteresis": 1.0, "rate_window": 300.0},
    "humidity": {"warn_high": 80.0, "hysteresis": 2.0},
    "water_leak": {"severity": CRITICAL},
    "smoke": {"severity": CRITICAL},
    "tamper": {"severity": WARNING},
    "battery": {"battery_below": 20.0},
    "replication_lag": {"warn_high": 60.0, "crit_high": 300.0},
    "replication_failures": {"warn_high": 3.0, "crit_high": 10.0},
    "replication_guard": {"severity": CRITICAL},
    "replication_verify": {"severity": CRITICAL},
    "replication_quarantine": {"warn_high": 1.0},  # count of paths set aside
    # documents the service account may not read: the rest ships, a person grants access
    "replication_unreadable": {"severity": WARNING},
    # a database's closed logs have a hole: a restore stops before it (issue 16)
    "replication_log_gap": {"severity": CRITICAL},
    "watch_limit": {"severity": WARNING},
    # critical: a part of sentinel that stays down leaves a room or the data unwatched, and
    # it does not heal by itself; `[[rules]] kind = "component"` can lower it
    "component": {"severity": CRITICAL},
    # messages may have been lost once; the connection works again, so nobody must run,
    # but a person should check the sensors' state and who else uses sentinel's client id
    "mqtt_session_lost": {"severity": WARNING},
    "replication_source_missing": {"severity": CRITICAL},
    "replication_target_missing": {"severity": CRITICAL},
    # a room gone dark pages a person: a fire or a flood may have taken the host, the
    # broker and the LAN together; `[[rules]] kind = "room_silent"` can lower it
    # the keeper stopped confirming what it keeps: the data still ships, history may not
    # be kept; a warning, the room is not in danger by it
    "replication_keeper": {"severity": WARNING},
    # the database could not be opened from the replica: the backup may not restore
    "database_drill_failed": {"severity": CRITICAL},
    # nobody has shown lately that it restores: a person should run the drill
    "database_drill_overdue": {"severity": WARNING},
    "room_silent": {"severity": CRITICAL},
    "room_disaster": {"severity": CRITICAL},
    # stays until acknowledged: the next, normal snapshot does not undo a mass deletion
    "landing_mass_change": {"severity": CRITICAL, "latching": True},
    "keeper_snapshot_failures": {"warn_high": 1.0, "crit_high": 3.0},
    "keeper_disk_free": {"warn_low": 15.0, "crit_low": 5.0, "hysteresis": 1.0},
    # a warning: most often a person is at the door; open at any hour unless `allowed` says
    # closed for a minute before the all-clear: a loose magnet reading open/closed every few
    # seconds at night is one alarm, not a page at each swing
    "door": {"severity": WARNING, "open_limit": 600.0, "clear_hold": 60.0},
    # a siren or beacon sentinel cannot switch: the critical alarms still page, and a
    # critical one here would ask the very siren that fails to sound for itself
    "output": {"severity": WARNING},
    # a UPS (issue 15). The source counts seconds on battery from 1 (0 on mains), so the
    # warning comes with the first poll that sees OB and the critical after crit_high
    # (`[[rules]] kind = "ups_on_battery" crit_high = 120` to change it)
    # The mains back for a minute before the all-clear: a UPS flapping between mains and
    # battery at every poll (brownouts) is one alarm, not a page each time it switches.
    "ups_on_battery": {"warn_high": 1.0, "crit_high": 300.0, "clear_hold": 60.0},
    "ups_battery_low": {"severity": CRITICAL},
    # seconds of runtime left; a UPS that would not carry the room this long is critical
    # even on mains
    "ups_runtime": {"crit_low": 180.0, "hysteresis": 30.0},
    "ups_replace_battery": {"severity": WARNING},
    "ups_overload": {"severity": WARNING},
    "ups_bypass": {"severity": WARNING},
    # the UPS's output is off: what it feeds has no power, mains or not
    "ups_output_off": {"severity": CRITICAL},
    # issue 16. A failing log switch loses nothing yet (the open log is in the live
    # database) but lets the data RPO grow while the database is quiet: a warning. A base
    # backup too old or missing is critical: shipped logs without one restore nothing.
    "database_switch_failing": {"severity": WARNING},
    "database_base_backup_age": {"severity": CRITICAL},
}

_FIELDS = (
    "enabled",
    "severity",
    "warn_high",
    "crit_high",
    "warn_low",
    "crit_low",
    "hysteresis",
    "trip_hold",
    "clear_hold",
    "rate_of_rise",
    "rate_window",
    "rate_severity",
    "battery_below",
    "latching",
    "repeat",
    "escalation",
    "allowed",
    "open_limit",
)


@dataclass(frozen=True, slots=True)
class Policy:
    """How an alarm lives once its condition is known: holds, latching, repeat, escalation."""

    trip_hold: float = 0.0
    clear_hold: float = 0.0
    latching: bool = False
    repeat: float | None = None  # None: by severity from [alarms]; 0: never
    escalation: tuple[tuple[float, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """The resolved rule for one (sensor, kind)."""

    enabled: bool = True
    severity: str | None = None
    warn_high: float | None = None
    crit_high: float | None = None
    warn_low: float | None = None
    crit_low: float | None = None
    hysteresis: float = 0.0
    rate_of_rise: float | None = None
    rate_window: float = 300.0
    rate_severity: str = WARNING
    battery_below: float = 20.0
    policy: Policy = field(default_factory=Policy)
    allowed: Hours | None = None  # doors: when one may stand open (None: any time)
    open_limit: float = 0.0  # doors: open longer than this (seconds; 0: no limit)

    @property
    def has_thresholds(self) -> bool:
        return any(
            v is not None for v in (self.warn_high, self.crit_high, self.warn_low, self.crit_low)
        )


@dataclass(frozen=True, slots=True)
class Term:
    sensor: str
    kind: str | None
    above: float | None
    below: float | None


@dataclass(frozen=True, slots=True)
class CombinedRule:
    """All terms true at once -> one alarm named after the rule (e.g. "fire")."""

    name: str
    terms: tuple[Term, ...]
    severity: str
    policy: Policy


class RuleBook:
    """Resolves and caches rules; rebuilt on reload."""

    def __init__(
        self,
        rules: Sequence[RuleConfig],
        alarms: AlarmsConfig,
        sensor_kinds: dict[str, str],
    ) -> None:
        self.alarms = alarms
        self._sensor_kinds = sensor_kinds
        self._by_kind: dict[str, list[RuleConfig]] = {}
        self._by_sensor: dict[str, list[RuleConfig]] = {}
        combined: list[CombinedRule] = []
        for rule in rules:
            if rule.all is not None:
                combined.append(self._combined(rule))
            elif rule.sensor is not None:
                self._by_sensor.setdefault(rule.sensor, []).append(rule)
            elif rule.kind is not None:
                self._by_kind.setdefault(rule.kind, []).append(rule)
        self.combined = tuple(combined)
        self._cache: dict[tuple[str, str], Rule] = {}

    def rule(self, sensor_id: str, kind: str) -> Rule:
        key = (sensor_id, kind)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._resolve(sensor_id, kind)
        return found

    def _layers(self, sensor_id: str, kind: str) -> Iterable[dict[str, Any]]:
        yield BUILTIN.get(kind, {})
        for rule in self._by_kind.get(kind, ()):
            yield _set_fields(rule)
        own_kind = self._sensor_kinds.get(sensor_id)
        for rule in self._by_sensor.get(sensor_id, ()):
            # a sensor rule without a kind is about what the sensor is configured to measure
            if (rule.kind or own_kind) == kind:
                yield _set_fields(rule)

    def _resolve(self, sensor_id: str, kind: str) -> Rule:
        merged: dict[str, Any] = {}
        for layer in self._layers(sensor_id, kind):
            merged.update(layer)
        return self._build(merged)

    def _build(self, merged: dict[str, Any]) -> Rule:
        policy = Policy(
            trip_hold=float(merged.get("trip_hold", 0.0)),
            clear_hold=float(merged.get("clear_hold", 0.0)),
            latching=bool(merged.get("latching", self.alarms.latching)),
            repeat=merged.get("repeat"),
            escalation=_ladder(merged.get("escalation", self.alarms.escalation)),
        )
        return Rule(
            enabled=bool(merged.get("enabled", True)),
            severity=merged.get("severity"),
            warn_high=merged.get("warn_high"),
            crit_high=merged.get("crit_high"),
            warn_low=merged.get("warn_low"),
            crit_low=merged.get("crit_low"),
            hysteresis=float(merged.get("hysteresis", 0.0)),
            rate_of_rise=merged.get("rate_of_rise"),
            rate_window=float(merged.get("rate_window", 300.0)),
            rate_severity=merged.get("rate_severity", WARNING),
            battery_below=float(merged.get("battery_below", 20.0)),
            policy=policy,
            allowed=Hours.parse(merged["allowed"]) if "allowed" in merged else None,
            open_limit=float(merged.get("open_limit", 0.0)),
        )

    def _combined(self, rule: RuleConfig) -> CombinedRule:
        assert rule.all is not None and rule.name is not None
        terms = tuple(Term(t.sensor, t.kind, t.above, t.below) for t in rule.all)
        fields = _set_fields(rule)
        built = self._build(fields)
        return CombinedRule(rule.name, terms, rule.severity or CRITICAL, built.policy)

    def side_policy(self, hold: float = 0.0) -> Policy:
        """Policy of alarms about the sensor itself (lost, fault, battery): never latching."""
        return Policy(trip_hold=hold, escalation=_ladder(self.alarms.escalation))


def _set_fields(rule: RuleConfig) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in _FIELDS if getattr(rule, name) is not None}


def _ladder(steps: Sequence[Any]) -> tuple[tuple[float, tuple[str, ...]], ...]:
    return tuple(sorted((float(s.after), tuple(s.tags)) for s in steps))
