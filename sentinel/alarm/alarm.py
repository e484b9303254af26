"""The life of one alarm: normal -> pending (hold) -> firing -> acknowledged -> resolved.

An `Alarm` object lives per (subject, condition), e.g. ("temp-1", "temperature") or
("temp-1", "lost"), and is reused: after an alarm resolves the object goes back to normal
and the next trip gets a new id. Every change returns `Transition`s; the engine records them
and turns their events into messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from alerts import reasons
from alerts.event import EventType
from common.states import ACTIVE_STATES, AlarmState
from sentinel.alarm.actor import Actor
from sentinel.alarm.ids import IdAllocator
from sentinel.alarm.rules import RANK, Policy

# the words common/states.py defines, under the short names this package uses
NORMAL = AlarmState.NORMAL
PENDING = AlarmState.PENDING
FIRING = AlarmState.FIRING
ACKNOWLEDGED = AlarmState.ACKNOWLEDGED
RESOLVED = AlarmState.RESOLVED
CANCELLED = AlarmState.CANCELLED
ACTIVE = ACTIVE_STATES

# (code, parameters) of alerts/reasons.py: the reason as each language words it
Cause = tuple[str, dict[str, Any]]
NO_CAUSE: Cause = ("", {})


@dataclass(frozen=True, slots=True)
class AlarmRow:
    """One alarm_alarms row, by column name (the field order is the table's)."""

    id: str | None
    n: int
    subject: str
    condition: str
    sensor_id: str
    location: str
    kind: str
    unit: str
    state: str
    severity: str | None
    value: str | None  # JSON, as stored
    reason: str
    opened: float
    fired: float | None
    last_notified: float | None
    escalation: int
    acked_by: str | None
    acked_at: float | None
    clear_since: float | None
    latched: int
    unpaged: int
    direction: str | None
    closed: float | None
    updated: float
    cause: str
    params: str
    peak: str | None

    def as_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ROW_COLUMNS}


ROW_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AlarmRow))


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded change. `row` is the alarm's row as it was right after the change."""

    alarm_id: str
    ts: float
    from_state: str
    to_state: str
    severity: str
    reason: str
    event: str | None
    tags: tuple[str, ...]
    row: AlarmRow
    actor: Actor | None = None  # who caused it (an acknowledgement)
    cause: str = ""
    params: dict[str, Any] = field(default_factory=dict)


class Alarm:
    """State of one condition of one subject (a sensor or a combined rule)."""

    __slots__ = (
        "acked_at",
        "acked_by",
        "alarm_id",
        "cause",
        "clear_since",
        "condition",
        "direction",
        "escalation",
        "fired",
        "kind",
        "last_notified",
        "latched",
        "location",
        "n",
        "opened",
        "peak",
        "policy",
        "reason",
        "sensor_id",
        "severity",
        "state",
        "subject",
        "target",
        "target_cause",
        "target_reason",
        "target_since",
        "unit",
        "unpaged",
        "value",
    )

    def __init__(
        self,
        subject: str,
        condition: str,
        *,
        sensor_id: str,
        location: str,
        kind: str,
        unit: str,
        policy: Policy,
    ) -> None:
        self.subject = subject
        self.condition = condition
        self.sensor_id = sensor_id
        self.location = location
        self.kind = kind
        self.unit = unit
        self.policy = policy
        # what the condition says right now (kept even while normal: hysteresis, trip hold)
        self.target: str | None = None
        self.target_since = 0.0
        self.target_reason = ""
        self.target_cause: Cause = NO_CAUSE
        self.direction: str | None = None
        self._reset()

    def _reset(self) -> None:
        self.state = NORMAL
        self.alarm_id: str | None = None
        self.n = 0
        self.severity: str | None = None
        self.value: Any = None
        self.reason = ""
        self.cause: Cause = NO_CAUSE
        self.peak: str | None = None  # the highest severity reached since it opened
        self.opened = 0.0
        self.fired: float | None = None
        self.last_notified: float | None = None
        self.escalation = 0
        self.acked_by: str | None = None
        self.acked_at: float | None = None
        self.clear_since: float | None = None
        self.latched = False
        self.unpaged = False

    @property
    def active(self) -> bool:
        return self.state != NORMAL

    # -- condition changes ----------------------------------------------------------------

    def update(
        self,
        target: str | None,
        value: Any,
        reason: str,
        now: float,
        ids: IdAllocator,
        cause: Cause = NO_CAUSE,
    ) -> list[Transition]:
        """The condition was evaluated again: `target` is the severity it asks for, or None;
        `cause` is `reason` as a code for the messages."""
        if target is None and self.state == NORMAL:
            self.target = None  # the common case on the hot path: all quiet
            return []
        if target is not None:
            if self.target is None:
                self.target_since = now
            self.target_reason = reason
            self.target_cause = cause
        self.target = target
        if self.state != NORMAL or target is not None:
            self.value = value
        return self.advance(now, ids)

    def advance(self, now: float, ids: IdAllocator) -> list[Transition]:
        """Apply hold timers; called after every evaluation and from tick()."""
        out: list[Transition] = []
        target = self.target
        policy = self.policy
        if self.state == NORMAL:
            if target is None:
                return out
            self.n, self.alarm_id = ids.allocate()
            self.opened = now
            self._take_target(target)
            if policy.trip_hold > 0 and now - self.target_since < policy.trip_hold:
                self.state = PENDING
                out.append(self._record(now, NORMAL, f"{self.reason} (hold {policy.trip_hold:g}s)"))
                return out
            self._fire(now, NORMAL, out)
            return out
        if self.state == PENDING:
            if target is None:
                self.state = CANCELLED
                out.append(self._record(now, PENDING, "condition cleared during the hold time"))
                self._reset()
                return out
            self._take_target(target)
            if now - self.target_since >= policy.trip_hold:
                self._fire(now, PENDING, out)
            return out
        # firing or acknowledged
        if target is not None:
            self.clear_since = None
            self.reason = self.target_reason
            self.cause = self.target_cause
            if self.latched:
                self.latched = False
                out.append(self._record(now, self.state, f"condition back: {self.reason}"))
            if RANK[target] > RANK[self.severity]:
                before = self.state
                self._take_target(target)
                self.state = FIRING
                self.acked_by = self.acked_at = None
                self.last_notified = now
                raised = (self.cause[0], {**self.cause[1], "note": reasons.RAISED})
                out.append(
                    self._record(
                        now,
                        before,
                        f"severity raised: {self.reason}",
                        EventType.FIRING,
                        cause=raised,
                    )
                )
            elif RANK[target] < RANK[self.severity]:
                self.severity = target
                out.append(self._record(now, self.state, f"severity lowered: {self.reason}"))
            return out
        if self.clear_since is None:
            self.clear_since = now
        if now - self.clear_since < policy.clear_hold:
            return out
        if policy.latching and self.state == FIRING:
            if not self.latched:
                self.latched = True
                out.append(
                    self._record(now, FIRING, "condition cleared; latched until acknowledged")
                )
            return out
        self._resolve(now, "condition cleared", out, (reasons.CLEARED, {}))
        return out

    # -- people ---------------------------------------------------------------------------

    def acknowledge(self, by: str, now: float) -> tuple[str, list[Transition]]:
        """Returns (what happened, transitions)."""
        if self.state == ACKNOWLEDGED:
            return f"already acknowledged by {self.acked_by}", []
        if self.state != FIRING:
            return f"not firing ({self.state})", []
        self.state = ACKNOWLEDGED
        self.acked_by = by
        self.acked_at = now
        self.unpaged = False
        out = [self._record(now, FIRING, f"acknowledged by {by}", EventType.ACKNOWLEDGED)]
        if self.latched:
            self._resolve(
                now,
                f"acknowledged by {by} after the condition cleared",
                out,
                (reasons.ACKED_CLEARED, {"by": by}),
            )
            return "acknowledged and resolved (the condition had cleared)", out
        return "acknowledged", out

    def resolve(self, now: float, reason: str, cause: Cause = NO_CAUSE) -> list[Transition]:
        """Close the alarm whatever its condition says (e.g. its sensor left the config)."""
        out: list[Transition] = []
        if self.state == PENDING:
            self.state = CANCELLED
            out.append(self._record(now, PENDING, reason))
            self._reset()
        elif self.state in (FIRING, ACKNOWLEDGED):
            self._resolve(now, reason, out, cause)
        return out

    # -- notification timing (driven by the engine's tick) ---------------------------------

    def notify(
        self, now: float, event: str, reason: str, tags: tuple[str, ...] = (), note: str = ""
    ) -> Transition:
        """A message about an unchanged state: repeat, escalation, page after a silence."""
        cause = (self.cause[0], {**self.cause[1], "note": note}) if note else None
        return self._record(now, self.state, reason, event, tags, cause)

    # -- internals ------------------------------------------------------------------------

    def _fire(self, now: float, before: str, out: list[Transition]) -> None:
        self.state = FIRING
        self.fired = now
        self.last_notified = now
        self.escalation = 0
        self.peak = self.severity  # a level seen only during the trip hold never paged
        out.append(self._record(now, before, self.reason, EventType.FIRING))

    def _take_target(self, target: str) -> None:
        self.severity = target
        self.reason = self.target_reason
        self.cause = self.target_cause
        if RANK[target] > RANK[self.peak]:
            self.peak = target

    def _resolve(self, now: float, reason: str, out: list[Transition], cause: Cause) -> None:
        before = self.state
        self.state = RESOLVED
        out.append(self._record(now, before, reason, EventType.RESOLVED, cause=cause))
        self._reset()

    def _record(
        self,
        now: float,
        before: str,
        reason: str,
        event: str | None = None,
        tags: tuple[str, ...] = (),
        cause: Cause | None = None,
    ) -> Transition:
        """`cause` is the transition's own (cleared, acknowledged), else the condition's."""
        assert self.alarm_id is not None and self.severity is not None
        code, params = self.cause if cause is None else cause
        return Transition(
            self.alarm_id,
            now,
            before,
            self.state,
            self.severity,
            reason,
            event,
            tags,
            self.row(now),
            cause=code,
            params=params,
        )

    def row(self, now: float) -> AlarmRow:
        closed = now if self.state in (RESOLVED, CANCELLED) else None
        return AlarmRow(
            id=self.alarm_id,
            n=self.n,
            subject=self.subject,
            condition=self.condition,
            sensor_id=self.sensor_id,
            location=self.location,
            kind=self.kind,
            unit=self.unit,
            state=self.state,
            severity=self.severity,
            value=dump_value(self.value),
            reason=self.reason,
            opened=self.opened,
            fired=self.fired,
            last_notified=self.last_notified,
            escalation=self.escalation,
            acked_by=self.acked_by,
            acked_at=self.acked_at,
            clear_since=self.clear_since,
            latched=int(self.latched),
            unpaged=int(self.unpaged),
            direction=self.direction,
            closed=closed,
            updated=now,
            cause=self.cause[0],
            params=json.dumps(self.cause[1], ensure_ascii=False),
            peak=self.peak,
        )

    def load(self, row: Any) -> None:
        """Restore from an alarm_alarms row (the daemon restarted with this alarm open)."""
        self.alarm_id = row["id"]
        self.n = row["n"]
        self.state = row["state"]
        self.severity = row["severity"]
        self.value = load_value(row["value"])
        self.reason = row["reason"]
        self.opened = row["opened"]
        self.fired = row["fired"]
        self.last_notified = row["last_notified"]
        self.escalation = row["escalation"]
        self.acked_by = row["acked_by"]
        self.acked_at = row["acked_at"]
        self.clear_since = row["clear_since"]
        self.latched = bool(row["latched"])
        self.unpaged = bool(row["unpaged"])
        self.direction = row["direction"]
        self.cause = (row["cause"] or "", json.loads(row["params"] or "{}"))
        # a row from before migration 3 never recorded its peak: its severity is the best guess
        self.peak = row["peak"] or self.severity
        # the condition is assumed to still hold until a reading says otherwise
        self.target = None if self.latched or self.clear_since is not None else self.severity
        self.target_since = self.opened
        self.target_reason = self.reason
        self.target_cause = self.cause

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.alarm_id,
            "sensor": self.sensor_id,
            "location": self.location,
            "kind": self.kind,
            "condition": self.condition,
            "severity": self.severity,
            "state": self.state,
            "since": self.fired if self.fired is not None else self.opened,
            "value": self.value,
            "unit": self.unit,
            "reason": self.reason,
            "acked_by": self.acked_by,
            "latched": self.latched,
        }


def dump_value(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def load_value(text: str | None) -> Any:
    return None if text is None else json.loads(text)
