"""Paging: which transitions become messages (routes, silences), and the messages due
while an alarm keeps firing (repeat, escalation, the page a silence held back)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from alerts import reasons
from alerts.event import AlarmEvent, EventType
from sentinel.alarm.alarm import FIRING, Alarm, Transition, load_value
from sentinel.alarm.book import AlarmBook
from sentinel.alarm.silence import Silences
from sentinel.alarm.writes import AddTransition, SaveAlarm, SendEvent, Write
from sentinel.config.rules import AlarmsConfig

ALWAYS_SILENCEABLE = frozenset(
    {
        EventType.FIRING,
        EventType.REPEAT,
        EventType.ESCALATED,
        EventType.RESOLVED,
        EventType.ACKNOWLEDGED,
    }
)
PAGES = frozenset({EventType.FIRING, EventType.REPEAT, EventType.ESCALATED})


def due(alarm: Alarm, now: float, settings: AlarmsConfig) -> list[Transition]:
    """The messages a firing, unsilenced alarm owes at `now`."""
    out: list[Transition] = []
    if alarm.unpaged:
        alarm.unpaged = False
        alarm.last_notified = now
        out.append(
            alarm.notify(
                now,
                EventType.FIRING,
                f"still firing after its silence ended: {alarm.reason}",
                note=reasons.AFTER_SILENCE,
            )
        )
        return out
    policy = alarm.policy
    if policy.escalation and alarm.fired is not None:
        reached = sum(1 for after, _ in policy.escalation if now - alarm.fired >= after)
        if reached > alarm.escalation:
            alarm.escalation = reached
            tags = policy.escalation[reached - 1][1]
            out.append(
                alarm.notify(
                    now,
                    EventType.ESCALATED,
                    f"unacknowledged for {now - alarm.fired:.0f}s: {alarm.reason}",
                    tags,
                )
            )
    repeat = policy.repeat
    if repeat is None:
        repeat = (
            settings.repeat_critical if alarm.severity == "critical" else settings.repeat_warning
        )
    if repeat and alarm.last_notified is not None and now - alarm.last_notified >= repeat:
        alarm.last_notified = now
        out.append(alarm.notify(now, EventType.REPEAT, f"still firing: {alarm.reason}"))
    return out


class Pager:
    """Turns transitions into their writes: the alarm row, the transition, and the message
    unless a silence holds it back (an acknowledgement always reaches the info route)."""

    def __init__(self, routes: Mapping[str, Sequence[str]]) -> None:
        self._routes = routes

    def record(
        self, transitions: Sequence[Transition], silences: Silences, book: AlarmBook
    ) -> list[Write]:
        writes: list[Write] = []
        for t in transitions:
            event: AlarmEvent | None = None
            row = t.row
            if t.event is not None:
                # the row, not the object: a resolved alarm's object is already reset
                silenced = silences.covers((row.subject, row.sensor_id), t.ts)
                if t.event == EventType.ACKNOWLEDGED:
                    # an ack is also a safety action: the info route hears of it, silenced
                    # or not; those paged for the alarm hear of it unless it is silenced
                    tags = (
                        self._route("info")
                        if silenced
                        else (*(t.tags or self._route(t.severity)), *self._route("info"))
                    )
                    if tags:
                        event = self.event(t, tuple(dict.fromkeys(tags)))
                elif silenced and t.event in ALWAYS_SILENCEABLE:
                    alarm = book.by_id(t.alarm_id)
                    if t.event in PAGES and alarm is not None and alarm.state == FIRING:
                        alarm.unpaged = True  # paged when the silence ends, if still firing
                        row = alarm.row(t.ts)
                else:
                    event = self.event(t)
            writes.append(SaveAlarm(row))
            writes.append(
                AddTransition(
                    alarm_id=t.alarm_id,
                    ts=t.ts,
                    from_state=t.from_state,
                    to_state=t.to_state,
                    severity=t.severity,
                    reason=t.reason,
                    event=t.event,
                    notified=event is not None,
                )
            )
            if event is not None:
                writes.append(SendEvent(event))
        return writes

    def _route(self, severity: str) -> tuple[str, ...]:
        return tuple(self._routes.get(severity, ()))

    @staticmethod
    def event(t: Transition, tags: tuple[str, ...] | None = None) -> AlarmEvent:
        row = t.row
        return AlarmEvent(
            alarm_id=t.alarm_id,
            event=str(t.event),
            severity=t.severity,
            sensor_id=row.sensor_id,
            location=row.location,
            kind=row.kind,
            value=load_value(row.value),
            unit=row.unit,
            reason=t.reason,
            ts=t.ts,
            tags=t.tags if tags is None else tags,
            by=t.actor.describe() if t.actor else "",
            who=t.actor.short() if t.actor else "",
            cause=t.cause,
            params=t.params,
            peak=row.peak or "",
            since=row.fired,
        )
