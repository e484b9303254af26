"""Every change the alarm engine decides, as a typed record for `Repository.commit`."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.event import AlarmEvent
from sentinel.alarm.actor import Actor
from sentinel.alarm.alarm import AlarmRow


@dataclass(frozen=True, slots=True)
class SaveAlarm:
    row: AlarmRow


@dataclass(frozen=True, slots=True)
class AddTransition:
    alarm_id: str | None
    ts: float
    from_state: str
    to_state: str
    severity: str | None
    reason: str
    event: str | None
    notified: bool


@dataclass(frozen=True, slots=True)
class SaveAlarmNumber:
    """The alarm counter reached `n` (ids are never reused, across restarts too)."""

    n: int


@dataclass(frozen=True, slots=True)
class DeclareSensor:
    id: str
    kind: str
    location: str
    max_age: float | None


@dataclass(frozen=True, slots=True)
class AddSilence:
    id: int
    sensor_id: str | None
    reason: str
    created_by: str
    created: float
    until: float


@dataclass(frozen=True, slots=True)
class ShortenSilence:
    id: int
    until: float


@dataclass(frozen=True, slots=True)
class EndSilence:
    """Someone ended it (unsilence)."""

    id: int
    ended: float
    ended_by: str


@dataclass(frozen=True, slots=True)
class ExpireSilence:
    """Its time ran out; a person may have ended it already, which then stands."""

    id: int
    ended: float


@dataclass(frozen=True, slots=True)
class MarkCommand:
    id: int
    applied: float
    result: str


@dataclass(frozen=True, slots=True)
class AddAction:
    """One line of the safety-action trail (ack, silence, unsilence)."""

    ts: float
    requested: float
    command: str
    target: str
    until: float | None
    reason: str
    actor: Actor
    result: str


@dataclass(frozen=True, slots=True)
class SendEvent:
    """A message for the outbox, committed with the writes around it."""

    event: AlarmEvent


Write = (
    SaveAlarm
    | AddTransition
    | SaveAlarmNumber
    | DeclareSensor
    | AddSilence
    | ShortenSilence
    | EndSilence
    | ExpireSilence
    | MarkCommand
    | AddAction
    | SendEvent
)
