"""Which hold/repeat/escalation policy an alarm lives by, and which alarms the config still
knows (an alarm whose sensor or rule left the config is resolved at start)."""

from __future__ import annotations

from collections.abc import Sequence

from sentinel.alarm.registry import SensorRegistry
from sentinel.alarm.rules import SELF_KINDS, CombinedRule, Policy, RuleBook
from sentinel.config import Config


class Policies:
    def __init__(self, config: Config, sensors: SensorRegistry) -> None:
        settings = config.alarms
        self.rules = RuleBook(config.rules, settings, {s.id: s.kind for s in config.sensors})
        self._sensors = sensors
        # side conditions (lost, battery) and faults are never the reading's own rule
        self.side = self.rules.side_policy()
        self.fault = self.rules.side_policy(settings.fault_hold)
        self._combined_by_sensor: dict[str, list[CombinedRule]] = {}
        for rule in self.rules.combined:
            for term in rule.terms:
                bucket = self._combined_by_sensor.setdefault(term.sensor, [])
                if rule not in bucket:
                    bucket.append(rule)

    @property
    def combined(self) -> tuple[CombinedRule, ...]:
        return self.rules.combined

    def combined_for(self, sensor_id: str) -> Sequence[CombinedRule]:
        """The combined rules a reading of this sensor may change."""
        return self._combined_by_sensor.get(sensor_id, ())

    def for_alarm(self, subject: str, condition: str, kind: str) -> Policy:
        if condition == "combined":
            for rule in self.rules.combined:
                if rule.name == subject:
                    return rule.policy
            return self.side
        if condition == "fault":
            return self.fault
        if condition in ("lost", "battery"):
            return self.side
        if condition == "rate":
            info = self._sensors.get(subject)
            return self.rules.rule(subject, info.kind if info else "temperature").policy
        return self.rules.rule(subject, condition).policy

    def known(self, subject: str, condition: str, kind: str) -> bool:
        if condition == "combined":
            return any(rule.name == subject for rule in self.rules.combined)
        return subject in self._sensors or kind in SELF_KINDS
