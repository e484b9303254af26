"""Safety actions: the ack/silence/unsilence commands the CLI leaves in alarm_commands,
applied by the engine, each leaving a line in the alarm_actions trail."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from alerts.event import AlarmEvent, EventType, Severity
from sentinel.alarm.actor import Actor
from sentinel.alarm.alarm import Transition
from sentinel.alarm.book import AlarmBook
from sentinel.alarm.ids import normalize
from sentinel.alarm.registry import SensorRegistry
from sentinel.alarm.repository import Command
from sentinel.alarm.silence import Silence, Silences, silence_limit
from sentinel.alarm.writes import AddAction, SendEvent, Write
from sentinel.config import format_duration
from sentinel.config.rules import AlarmsConfig

log = logging.getLogger("sentinel.alarm")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What applying one command said, the alarm transitions it caused, and its writes."""

    result: str
    transitions: tuple[Transition, ...] = ()
    writes: tuple[Write, ...] = ()


class SafetyActions:
    def __init__(
        self,
        book: AlarmBook,
        silences: Silences,
        sensors: SensorRegistry,
        settings: AlarmsConfig,
    ) -> None:
        self._book = book
        self._silences = silences
        self._sensors = sensors
        self._settings = settings

    def apply(self, command: Command, now: float) -> Outcome:
        """A malformed row is rejected (its result says why), never an exception."""
        try:
            args = json.loads(command.args)
            return self._apply(command.command, args, command.created, now)
        except (ValueError, TypeError, KeyError) as exc:
            return Outcome(f"rejected: {exc}")

    def _apply(self, command: str, args: dict[str, Any], created: float, now: float) -> Outcome:
        actor = Actor.from_args(args)
        reason = str(args.get("reason") or "")
        target: Any = ""
        until: float | None = None
        transitions: list[Transition] = []
        writes: list[Write] = []
        if command == "ack":
            target = normalize(str(args["alarm"]))
            result, transitions = self._acknowledge(target, actor, reason, now)
        elif command == "silence":
            target = args.get("sensor")
            result, until = self._silence(
                target, float(args["duration"]), reason, actor, created, now, writes
            )
        elif command == "unsilence":
            target = args.get("target")
            result = self._unsilence(target, reason, actor, now, writes)
        else:
            return Outcome(f"unknown command {command!r}")
        writes.append(
            AddAction(
                ts=now,
                requested=created,
                command=command,
                target="all" if target is None else str(target),
                until=until,
                reason=reason,
                actor=actor,
                result=result,
            )
        )
        return Outcome(result, tuple(transitions), tuple(writes))

    def _acknowledge(
        self, alarm_id: str, actor: Actor, reason: str, now: float
    ) -> tuple[str, list[Transition]]:
        alarm = self._book.by_id(alarm_id)
        if alarm is None:
            return "no such active alarm (already resolved?)", []
        result, transitions = alarm.acknowledge(actor.declared, now)
        out = []
        for t in transitions:
            if t.event == EventType.ACKNOWLEDGED:
                t = replace(t, actor=actor)
                if reason:
                    t = replace(
                        t, reason=f"{t.reason}: {reason}", params={**t.params, "memo": reason}
                    )
            out.append(t)
        return result, out

    def _silence(
        self,
        sensor: str | None,
        duration: float,
        reason: str,
        actor: Actor,
        created: float,
        now: float,
        writes: list[Write],
    ) -> tuple[str, float | None]:
        limit, key = silence_limit(self._settings, everything=sensor is None)
        if duration > limit:
            # the CLI refuses this already; a row from elsewhere meets the same limit
            return (
                f"rejected: {format_duration(duration)} is longer than [alarms] {key} "
                f"({format_duration(limit)})"
            ), None
        # the silence began when the person asked, even if the daemon was down then
        until = now + duration - max(0.0, now - created)
        if until <= now:
            return "expired before the daemon could apply it", None
        silence, write = self._silences.start(sensor, until, reason, actor.declared, now)
        writes.append(write)
        writes.append(self._announce(EventType.SILENCED, silence, reason, actor, now))
        log.warning(
            "silence #%d of %s for %s by %s: %s",
            silence.id,
            silence.describe(),
            format_duration(until - now),
            actor.describe(),
            reason,
        )
        return (
            f"silence #{silence.id} of {silence.describe()} for {format_duration(until - now)}"
        ), until

    def _unsilence(
        self, target: Any, reason: str, actor: Actor, now: float, writes: list[Write]
    ) -> str:
        ended, ending = self._silences.end(target, now, actor.declared or "unsilence")
        for s, write in zip(ended, ending, strict=True):
            writes.append(write)
            writes.append(self._announce(EventType.UNSILENCED, s, reason, actor, now))
        if not ended:
            return "no active silence matched"
        return "ended " + ", ".join(f"#{s.id} ({s.describe()})" for s in ended)

    def _announce(
        self, event: EventType, silence: Silence, reason: str, actor: Actor, now: float
    ) -> SendEvent:
        """A silence begun or ended reaches the info route, whatever is silenced: nobody
        should learn only from the next missed flood that the alarms were off."""
        info = None if silence.sensor_id is None else self._sensors.get(silence.sensor_id)
        location = "" if silence.sensor_id is None else silence.sensor_id
        return SendEvent(
            AlarmEvent(
                alarm_id=f"S{silence.id}",
                event=event,
                severity=Severity.INFO,
                sensor_id=silence.sensor_id or "",
                location=info.location if info else location,
                kind=info.kind if info else "",
                value=None,
                unit="",
                reason=reason or "-",
                ts=now,
                by=actor.describe(),
                who=actor.short(),
                until=silence.until if event == EventType.SILENCED else None,
            )
        )
