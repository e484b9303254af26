"""Every alarm the engine holds, one per (subject, condition), and the id allocator new
trips draw from."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from sentinel.alarm.alarm import NORMAL, Alarm, Transition
from sentinel.alarm.evaluation import NO_PRIOR, Prior, Verdict
from sentinel.alarm.ids import IdAllocator
from sentinel.alarm.policies import Policies
from sentinel.alarm.registry import SensorInfo
from sentinel.alarm.rules import Policy

# The kind an alarm about the sensor itself carries in its messages.
CONDITION_KINDS = {
    "lost": "sensor_lost",
    "fault": "sensor_fault",
    "battery": "battery_low",
    "rate": "rate_of_rise",
    "combined": "combined",
}


class AlarmBook:
    def __init__(self, policies: Policies, ids: IdAllocator) -> None:
        self._policies = policies
        self.ids = ids
        self._alarms: dict[tuple[str, str], Alarm] = {}

    def __iter__(self) -> Iterator[Alarm]:
        return iter(list(self._alarms.values()))

    def get(self, subject: str, condition: str) -> Alarm | None:
        return self._alarms.get((subject, condition))

    def by_id(self, wanted: str) -> Alarm | None:
        for alarm in self._alarms.values():
            if alarm.alarm_id == wanted:
                return alarm
        return None

    def active(self) -> list[Alarm]:
        return [a for a in self._alarms.values() if a.state != NORMAL]

    def prior(self, subject: str, condition: str) -> Prior:
        alarm = self._alarms.get((subject, condition))
        return NO_PRIOR if alarm is None else Prior(alarm.target, alarm.direction)

    def open(
        self,
        subject: str,
        condition: str,
        sensor_id: str,
        kind: str,
        unit: str,
        location: str,
        policy: Policy | None = None,
    ) -> Alarm:
        """The alarm of (subject, condition), created if there is none yet."""
        key = (subject, condition)
        alarm = self._alarms.get(key)
        if alarm is None:
            alarm = self._alarms[key] = Alarm(
                subject,
                condition,
                sensor_id=sensor_id,
                location=location,
                kind=CONDITION_KINDS.get(condition, kind),
                unit=unit,
                policy=policy or self._policies.for_alarm(subject, condition, kind),
            )
        return alarm

    def restore(self, row: sqlite3.Row) -> Alarm:
        """An alarm that was open when the daemon stopped, from its alarm_alarms row."""
        alarm = self.open(
            row["subject"],
            row["condition"],
            row["sensor_id"],
            row["kind"],
            row["unit"],
            row["location"],
        )
        alarm.load(row)
        return alarm

    def apply(self, info: SensorInfo, verdict: Verdict, now: float) -> list[Transition]:
        """The sensor's alarm for the verdict's condition takes it in."""
        alarm = self._alarms.get((info.id, verdict.condition))
        if alarm is None:
            if verdict.target is None:
                return []
            alarm = self.open(
                info.id,
                verdict.condition,
                info.id,
                verdict.kind,
                verdict.unit,
                info.location,
                verdict.policy,
            )
        if verdict.target is not None and verdict.direction is not None:
            alarm.direction = verdict.direction
        return alarm.update(
            verdict.target, verdict.value, verdict.reason, now, self.ids, verdict.cause
        )
