"""The alarm engine: readings in, alarm transitions and their messages out.

Evaluation is in memory. Only a transition touches SQLite, in one transaction with the
outbox rows `enqueue` writes, so a page is never recorded without its message nor sent without
its record. Latest values and history are buffered and written by `flush()` in batches.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from alerts import reasons
from alerts.event import AlarmEvent, EventType, Severity
from sensors.reading import UNITS, Reading
from sentinel.alarm.actor import Actor
from sentinel.alarm.alarm import (
    ACKNOWLEDGED,
    FIRING,
    NO_CAUSE,
    NORMAL,
    ROW_COLUMNS,
    Alarm,
    Cause,
    Transition,
    dump_value,
    load_value,
)
from sentinel.alarm.conditions import RateTracker, battery_low, threshold
from sentinel.alarm.ids import alarm_id, normalize
from sentinel.alarm.rules import (
    BOOLEAN_KINDS,
    BOOLEAN_REASONS,
    CRITICAL,
    SELF_KINDS,
    WARNING,
    CombinedRule,
    Policy,
    Rule,
    RuleBook,
)
from sentinel.alarm.schema import MIGRATIONS, OWNER
from sentinel.alarm.silence import Silence, silence_limit
from sentinel.config import Config, format_duration
from sentinel.store import Store

log = logging.getLogger("sentinel.alarm")

TICK_INTERVAL = 0.5
PRUNE_INTERVAL = 3600.0
# History rows kept in memory while SQLite cannot be written; older ones are dropped (counted).
HISTORY_BUFFER_MAX = 100_000
UNKNOWN_IDS_LOGGED = 100

# The kind an alarm about the sensor itself carries in its messages.
CONDITION_KINDS = {
    "lost": "sensor_lost",
    "fault": "sensor_fault",
    "battery": "battery_low",
    "rate": "rate_of_rise",
    "combined": "combined",
}
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

Enqueue = Callable[[aiosqlite.Connection, AlarmEvent], Awaitable[None]]
Op = tuple[str, Any, Any]

_UPSERT_ALARM = (
    f"INSERT INTO alarm_alarms({', '.join(ROW_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ROW_COLUMNS)}) ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ROW_COLUMNS if c != "id")
)
_INSERT_TRANSITION = (
    "INSERT INTO alarm_transitions(alarm_id, ts, from_state, to_state, severity, reason, "
    "event, notified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_SENSOR = (
    "INSERT INTO alarm_sensors(id, kind, location, unit, max_age, configured, value, value_ts, "
    "fault) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id, kind) DO UPDATE SET "
    "location = excluded.location, unit = excluded.unit, max_age = excluded.max_age, "
    "configured = excluded.configured, value = excluded.value, value_ts = excluded.value_ts, "
    "fault = excluded.fault"
)
_INSERT_ACTION = (
    "INSERT INTO alarm_actions(ts, requested, command, target, until, reason, declared_by, uid, "
    "user, sudo_uid, sudo_user, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DECLARE_SENSOR = (
    "INSERT INTO alarm_sensors(id, kind, location, max_age, configured) VALUES (?, ?, ?, ?, 1) "
    "ON CONFLICT(id, kind) DO UPDATE SET location = excluded.location, "
    "max_age = excluded.max_age, configured = 1"
)


@dataclass(slots=True)
class SensorInfo:
    id: str
    location: str
    kind: str
    max_age: float | None  # None: never "lost" (replication health, reported on change)
    configured: bool = True


class Latest:
    """The last value of one (sensor, kind), and what went to history last."""

    __slots__ = ("fault", "hist_ts", "hist_value", "ts", "unit", "value")

    def __init__(self, value: Any, unit: str, ts: float, fault: str | None) -> None:
        self.value = value
        self.unit = unit
        self.ts = ts
        self.fault = fault
        self.hist_ts = float("-inf")
        self.hist_value: Any = object()


class Engine:
    """Turns readings into alarms with a life (hold, fire, repeat, escalate, ack, resolve).

    A `sentinel.supervisor.Component` named "alarms". `submit()` is the hot path sources
    call for every reading; `tick()` drives everything time-based and applies the commands
    the CLI writes into `alarm_commands`.
    """

    name = "alarms"

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        enqueue: Enqueue,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._enqueue = enqueue
        self._clock = clock
        self._alarms: dict[tuple[str, str], Alarm] = {}
        self._latest: dict[tuple[str, str], Latest] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._history: list[tuple[str, str, float, Any]] = []
        self._last_seen: dict[str, float] = {}
        self._offline: set[str] = set()
        self._rates: dict[str, RateTracker] = {}
        self._silences: list[Silence] = []
        self._silence_seq = 0
        self._seq = 0
        self._ops: list[Op] = []
        self._commit_lock = asyncio.Lock()
        self._started_at: float | None = None
        self._last_prune = float("-inf")
        self._last_flush: float | None = None
        self._unknown_ids: set[str] = set()
        self.received = 0
        self.ignored = 0
        self.rejected = 0
        self.write_errors = 0
        self.history_dropped = 0
        self._configure(config)

    # -- configuration ----------------------------------------------------------------------

    def _configure(self, config: Config) -> None:
        self._config = config
        self._settings = config.alarms
        previous = getattr(self, "_sensors", {})
        self._sensors: dict[str, SensorInfo] = {
            s.id: SensorInfo(s.id, s.location or s.id, s.kind, s.max_age) for s in config.sensors
        }
        keeper = getattr(config, "keeper", None)
        for room in keeper.rooms if keeper is not None else ():
            # a room's pages name where it is ("군청 전산실"), not its id
            sid = f"room:{room.name}"
            self._sensors[sid] = SensorInfo(sid, room.where, "room_silent", None, configured=False)
        for sid, info in previous.items():  # replication health seen so far stays known
            if not info.configured and sid not in self._sensors:
                self._sensors[sid] = info
        self._rules = RuleBook(config.rules, self._settings, {s.id: s.kind for s in config.sensors})
        self._combined_by_sensor: dict[str, list[CombinedRule]] = {}
        for rule in self._rules.combined:
            for term in rule.terms:
                bucket = self._combined_by_sensor.setdefault(term.sensor, [])
                if rule not in bucket:
                    bucket.append(rule)
        self._fault_policy = self._rules.side_policy(self._settings.fault_hold)
        self._side_policy = self._rules.side_policy()
        self._history_interval = self._settings.history_interval
        for alarm in self._alarms.values():
            alarm.policy = self._policy_for(alarm.subject, alarm.condition, alarm.kind)
            info = self._sensors.get(alarm.sensor_id)
            if info is not None:
                alarm.location = info.location

    def _policy_for(self, subject: str, condition: str, kind: str) -> Policy:
        if condition == "combined":
            for rule in self._rules.combined:
                if rule.name == subject:
                    return rule.policy
            return self._side_policy
        if condition == "fault":
            return self._fault_policy
        if condition in ("lost", "battery"):
            return self._side_policy
        if condition == "rate":
            info = self._sensors.get(subject)
            return self._rules.rule(subject, info.kind if info else "temperature").policy
        return self._rules.rule(subject, condition).policy

    def _known_subject(self, subject: str, condition: str, kind: str) -> bool:
        if condition == "combined":
            return any(rule.name == subject for rule in self._rules.combined)
        return subject in self._sensors or kind in SELF_KINDS

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate, load persisted alarms and silences, declare the configured sensors."""
        await self._store.migrate(OWNER, MIGRATIONS)
        now = self._clock()
        self._started_at = now
        db = self._store.db
        async with db.execute("SELECT n FROM alarm_seq WHERE id = 1") as cur:
            row = await cur.fetchone()
        self._seq = int(row[0]) if row else 0
        async with db.execute("SELECT coalesce(max(id), 0) FROM alarm_silences") as cur:
            row = await cur.fetchone()
        self._silence_seq = int(row[0]) if row else 0
        async with db.execute(
            "SELECT id, kind, location, configured, value, value_ts, unit, fault FROM alarm_sensors"
        ) as cur:
            for r in await cur.fetchall():
                if not r["configured"] and r["id"] not in self._sensors:
                    self._sensors[r["id"]] = SensorInfo(
                        r["id"], r["location"], r["kind"], None, configured=False
                    )
                if r["value_ts"] is not None:
                    latest = Latest(load_value(r["value"]), r["unit"], r["value_ts"], r["fault"])
                    self._latest[(r["id"], r["kind"])] = latest
        async with db.execute("SELECT * FROM alarm_alarms WHERE closed IS NULL") as cur:
            rows = await cur.fetchall()
        out: list[Transition] = []
        for r in rows:
            alarm = self._alarm(
                r["subject"],
                r["condition"],
                r["sensor_id"],
                r["kind"],
                r["unit"],
                location=r["location"],
            )
            alarm.load(r)
            if not self._known_subject(alarm.subject, alarm.condition, alarm.kind):
                out += alarm.resolve(
                    now, "its sensor or rule was removed from the config", (reasons.REMOVED, {})
                )
        async with db.execute(
            "SELECT id, sensor_id, until, reason, created_by FROM alarm_silences "
            "WHERE ended IS NULL"
        ) as cur:
            self._silences = [
                Silence(r["id"], r["sensor_id"], r["until"], r["reason"], r["created_by"])
                for r in await cur.fetchall()
            ]
        self._limit_silences(now)
        # the daemon was down, not the sensors: each gets a full max_age to report again
        for sid in self._sensors:
            self._last_seen[sid] = now
        self._queue(out)
        self._declare_sensors(self._sensors.values())
        await self._commit()
        await self._apply_commands()

    async def run(self) -> None:
        """tick() every half second, flush() every flush_interval; a final flush on stop."""
        if self._started_at is None:
            await self.start()
        next_flush = time.monotonic() + self._settings.flush_interval
        try:
            while True:
                await self.tick()
                if time.monotonic() >= next_flush:
                    await self.flush()
                    next_flush = time.monotonic() + self._settings.flush_interval
                await asyncio.sleep(TICK_INTERVAL)
        except asyncio.CancelledError:
            await asyncio.shield(self._final_flush())
            raise

    async def _final_flush(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # shutting down: report, do not mask the cancellation
            log.warning("alarm engine: last flush failed: %s", exc)

    async def reload(self, config: Config) -> None:
        """New sensors and rules; open alarms and their ids stay. Alarms whose sensor or
        rule left the config are resolved."""
        self._configure(config)
        now = self._clock()
        self._limit_silences(now)
        out: list[Transition] = []
        for key, alarm in list(self._alarms.items()):
            if not self._known_subject(alarm.subject, alarm.condition, alarm.kind):
                out += alarm.resolve(
                    now, "its sensor or rule was removed from the config", (reasons.REMOVED, {})
                )
                del self._alarms[key]
        for sid in self._sensors:
            self._last_seen.setdefault(sid, now)
        self._queue(out)
        self._declare_sensors(self._sensors.values())
        configured = [s.id for s in self._sensors.values() if s.configured]
        marks = ",".join("?" for _ in configured)
        self._ops.append(
            (
                "sql",
                f"DELETE FROM alarm_sensors WHERE configured = 1 AND id NOT IN ({marks})",
                tuple(configured),
            )
        )
        await self._commit()

    def _declare_sensors(self, sensors: Iterable[SensorInfo]) -> None:
        for s in sensors:
            if s.configured:
                self._ops.append(("sql", _DECLARE_SENSOR, (s.id, s.kind, s.location, s.max_age)))

    # -- the hot path -----------------------------------------------------------------------

    async def submit(self, reading: Reading) -> None:
        """Evaluate one reading. Writes SQLite only when an alarm changes state."""
        self.received += 1
        sid = reading.sensor_id
        kind = reading.kind
        info = self._sensors.get(sid)
        if info is None:
            if kind not in SELF_KINDS:
                self._unknown(sid)
                return
            info = self._sensors[sid] = SensorInfo(sid, sid, kind, None, configured=False)
        now = self._clock()
        out: list[Transition] = []
        if kind == "availability":
            self._availability(info, reading.value, now, out)
        elif reading.fault is not None:
            self._last_seen[sid] = now
            self._remember(sid, kind, None, reading.unit, now, reading.fault)
            self._update(
                out,
                info,
                "fault",
                kind,
                WARNING,
                None,
                "",
                f"sensor fault: {reading.fault}",
                now,
                self._fault_policy,
                (reasons.FAULT, {"fault": reading.fault}),
            )
        else:
            self._last_seen[sid] = now
            self._sensor_is_back(info, now, out)
            self._observe(info, reading, now, out)
        combined = self._combined_by_sensor.get(sid)
        if combined:
            for rule in combined:
                self._evaluate_combined(rule, now, out)
        if out:
            self._queue(out)
        if self._ops:
            await self._commit()

    def _observe(
        self, info: SensorInfo, reading: Reading, now: float, out: list[Transition]
    ) -> None:
        sid = info.id
        kind = reading.kind
        value = reading.value
        unit = reading.unit or UNITS.get(kind, "")
        self._remember(sid, kind, value, unit, now, None)
        rule = self._rules.rule(sid, kind)
        if not rule.enabled:
            return
        if isinstance(value, bool):
            if kind == "battery_low":
                self._update(
                    out,
                    info,
                    "battery",
                    kind,
                    WARNING if value else None,
                    value,
                    "",
                    "battery low",
                    now,
                    self._side_policy,
                    (reasons.BATTERY_LOW, {}),
                )
            elif rule.severity is not None:
                reason = (
                    reading.detail
                    or BOOLEAN_REASONS.get(kind)
                    or f"{kind.replace('_', ' ')} detected"
                )
                # a detail without a code is already worded in the alerts' language
                cause: Cause = (
                    (reading.cause or reasons.TEXT, dict(reading.params or {}))
                    if reading.detail
                    else (reasons.DETECTED, {})
                )
                self._update(
                    out,
                    info,
                    kind,
                    kind,
                    rule.severity if value else None,
                    value,
                    unit,
                    reason,
                    now,
                    rule.policy,
                    cause,
                )
            return
        if not isinstance(value, int | float):
            if kind in BOOLEAN_KINDS or rule.has_thresholds:
                self.rejected += 1  # a decoder bug upstream; nothing to evaluate
            return
        if kind == "battery":
            key = (sid, "battery")
            current = self._alarms.get(key)
            low = battery_low(
                value, rule.battery_below, current is not None and current.target is not None
            )
            self._update(
                out,
                info,
                "battery",
                kind,
                WARNING if low else None,
                value,
                unit,
                f"battery {value:g}% (below {rule.battery_below:g}%)",
                now,
                self._side_policy,
                (reasons.BATTERY, {"value": value, "below": rule.battery_below}),
            )
            return
        if rule.has_thresholds:
            key = (sid, kind)
            alarm = self._alarms.get(key)
            prev = alarm.target if alarm is not None else None
            direction = alarm.direction if alarm is not None else None
            target, new_direction, reason = threshold(rule, value, prev, direction, unit)
            if target is not None or alarm is not None:
                alarm = self._alarm(sid, kind, sid, kind, unit, info.location, rule.policy)
                if target is not None:
                    alarm.direction = new_direction
                limit = _limit(rule, target, new_direction)
                cause = (
                    NO_CAUSE
                    if target is None
                    else (
                        reasons.HIGH if new_direction == "high" else reasons.LOW,
                        {"value": value, "limit": limit, "unit": unit},
                    )
                )
                out += alarm.update(target, value, reason, now, self._new_id, cause)
        if rule.rate_of_rise is not None:
            tracker = self._rates.get(sid)
            if tracker is None or tracker.window != rule.rate_window:
                tracker = self._rates[sid] = RateTracker(rule.rate_window)
            rate = tracker.add(now, float(value))
            if rate is not None:
                target = rule.rate_severity if rate >= rule.rate_of_rise else None
                self._update(
                    out,
                    info,
                    "rate",
                    kind,
                    target,
                    value,
                    unit,
                    f"rising {rate:.1f}{unit}/min (limit {rule.rate_of_rise:g}{unit}/min)",
                    now,
                    rule.policy,
                    (
                        reasons.RATE,
                        {"rate": round(rate, 1), "limit": rule.rate_of_rise, "unit": unit},
                    ),
                )

    def _remember(
        self, sid: str, kind: str, value: Any, unit: str, now: float, fault: str | None
    ) -> None:
        key = (sid, kind)
        latest = self._latest.get(key)
        if latest is None:
            latest = self._latest[key] = Latest(value, unit, now, fault)
        else:
            latest.value = value
            latest.unit = unit
            latest.ts = now
            latest.fault = fault
        self._dirty.add(key)
        # history is sampled: one row per interval, plus every change of a boolean
        if (value.__class__ is bool and value != latest.hist_value) or (
            now - latest.hist_ts >= self._history_interval
        ):
            latest.hist_ts = now
            latest.hist_value = value
            if len(self._history) >= HISTORY_BUFFER_MAX:
                del self._history[: HISTORY_BUFFER_MAX // 10]
                self.history_dropped += HISTORY_BUFFER_MAX // 10
            self._history.append((sid, kind, now, value))

    def _update(
        self,
        out: list[Transition],
        info: SensorInfo,
        condition: str,
        kind: str,
        target: str | None,
        value: Any,
        unit: str,
        reason: str,
        now: float,
        policy: Policy,
        cause: Cause = NO_CAUSE,
    ) -> None:
        alarm = self._alarms.get((info.id, condition))
        if alarm is None:
            if target is None:
                return
            alarm = self._alarm(info.id, condition, info.id, kind, unit, info.location, policy)
        out += alarm.update(target, value, reason, now, self._new_id, cause)

    def _alarm(
        self,
        subject: str,
        condition: str,
        sensor_id: str,
        kind: str,
        unit: str,
        location: str,
        policy: Policy | None = None,
    ) -> Alarm:
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
                policy=policy or self._policy_for(subject, condition, kind),
            )
        return alarm

    def _new_id(self) -> tuple[int, str]:
        self._seq += 1
        self._ops.append(("sql", "UPDATE alarm_seq SET n = max(n, ?) WHERE id = 1", (self._seq,)))
        return self._seq, alarm_id(self._seq)

    def _unknown(self, sid: str) -> None:
        self.ignored += 1
        if sid not in self._unknown_ids and len(self._unknown_ids) < UNKNOWN_IDS_LOGGED:
            self._unknown_ids.add(sid)
            log.warning("reading for unknown sensor %r ignored (not in [[sensors]])", sid)

    # -- sensor presence --------------------------------------------------------------------

    def _availability(
        self, info: SensorInfo, value: Any, now: float, out: list[Transition]
    ) -> None:
        if value is False:
            self._offline.add(info.id)
            self._update(
                out,
                info,
                "lost",
                info.kind,
                WARNING,
                None,
                "",
                "sensor offline (its gateway says so)",
                now,
                self._side_policy,
                (reasons.OFFLINE, {}),
            )
        elif value is True:
            self._last_seen[info.id] = now
            self._sensor_is_back(info, now, out)

    def _sensor_is_back(self, info: SensorInfo, now: float, out: list[Transition]) -> None:
        sid = info.id
        self._offline.discard(sid)
        lost = self._alarms.get((sid, "lost"))
        if lost is not None and lost.target is not None:
            out += lost.update(None, None, "", now, self._new_id)
        fault = self._alarms.get((sid, "fault"))
        if fault is not None and fault.target is not None:
            out += fault.update(None, None, "", now, self._new_id)

    def _check_lost(self, now: float, out: list[Transition]) -> None:
        for sid, info in self._sensors.items():
            if sid in self._offline:
                continue  # already lost, by its own gateway's word
            if info.max_age is None:
                continue
            silent_for = now - self._last_seen.get(sid, now)
            if silent_for > info.max_age:
                self._update(
                    out,
                    info,
                    "lost",
                    info.kind,
                    WARNING,
                    None,
                    "",
                    f"no reading for {silent_for:.0f}s (max_age {info.max_age:g}s)",
                    now,
                    self._side_policy,
                    (reasons.SILENT, {"silent_for": round(silent_for), "max_age": info.max_age}),
                )

    # -- combined rules ---------------------------------------------------------------------

    def _evaluate_combined(self, rule: CombinedRule, now: float, out: list[Transition]) -> None:
        parts: list[str] = []
        coded: list[dict[str, Any]] = []
        holds = True
        for term in rule.terms:
            info = self._sensors.get(term.sensor)
            kind = term.kind or (info.kind if info else "")
            latest = self._latest.get((term.sensor, kind))
            if latest is None or latest.fault is not None:
                holds = False
                break
            if info is not None and info.max_age is not None and now - latest.ts > info.max_age:
                holds = False  # a stale value proves nothing
                break
            value = latest.value
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            said: dict[str, Any] = {
                "sensor": term.sensor,
                "kind": kind,
                "value": value,
                "unit": latest.unit,
            }
            if term.above is not None:
                ok = numeric and value > term.above
                part = f"{term.sensor} {value}{latest.unit} > {term.above:g}"
                said["above"] = term.above
            elif term.below is not None:
                ok = numeric and value < term.below
                part = f"{term.sensor} {value}{latest.unit} < {term.below:g}"
                said["below"] = term.below
            else:
                ok = value is True
                part = f"{term.sensor} {kind.replace('_', ' ')}"
            if not ok:
                holds = False
                break
            parts.append(part)
            coded.append(said)
        key = (rule.name, "combined")
        alarm = self._alarms.get(key)
        if alarm is None and not holds:
            return
        if alarm is None:
            locations = []
            for term in rule.terms:
                info = self._sensors.get(term.sensor)
                where = info.location if info else term.sensor
                if where not in locations:
                    locations.append(where)
            alarm = self._alarm(
                rule.name, "combined", rule.name, "combined", "", ", ".join(locations), rule.policy
            )
        target = rule.severity if holds else None
        out += alarm.update(
            target,
            None,
            f"{rule.name}: " + " and ".join(parts),
            now,
            self._new_id,
            (reasons.COMBINED, {"name": rule.name, "parts": coded}),
        )

    # -- time -------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Hold timers, lost sensors, silence expiry, repeats, escalation, CLI commands."""
        if self._started_at is None:
            await self.start()
        await self._apply_commands()
        now = self._clock()
        out: list[Transition] = []
        self._expire_silences(now)
        self._check_lost(now, out)
        for rule in self._rules.combined:
            alarm = self._alarms.get((rule.name, "combined"))
            if alarm is not None and alarm.active:
                self._evaluate_combined(rule, now, out)  # a term may have gone stale
        for alarm in list(self._alarms.values()):
            if alarm.state == NORMAL:
                continue
            out += alarm.advance(now, self._new_id)
            if alarm.state == FIRING:
                self._notify_due(alarm, now, out)
        self._queue(out)
        await self._commit()

    def _notify_due(self, alarm: Alarm, now: float, out: list[Transition]) -> None:
        if self._silenced(alarm, now):
            return
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
            return
        policy = alarm.policy
        if policy.escalation and alarm.fired is not None:
            due = sum(1 for after, _ in policy.escalation if now - alarm.fired >= after)
            if due > alarm.escalation:
                alarm.escalation = due
                tags = policy.escalation[due - 1][1]
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
                self._settings.repeat_critical
                if alarm.severity == "critical"
                else self._settings.repeat_warning
            )
        if repeat and alarm.last_notified is not None and now - alarm.last_notified >= repeat:
            alarm.last_notified = now
            out.append(alarm.notify(now, EventType.REPEAT, f"still firing: {alarm.reason}"))

    # -- silences ---------------------------------------------------------------------------

    def _silenced(self, alarm: Alarm, now: float) -> bool:
        if not self._silences:
            return False
        subjects = (alarm.subject, alarm.sensor_id)
        return any(s.covers(subjects, now) for s in self._silences)

    def _limit_silences(self, now: float) -> None:
        """A silence from before the limit existed (or was lowered) ends within it too."""
        for s in self._silences:
            limit, key = silence_limit(self._settings, everything=s.sensor_id is None)
            if s.until > now + limit:
                s.until = now + limit
                self._ops.append(
                    ("sql", "UPDATE alarm_silences SET until = ? WHERE id = ?", (s.until, s.id))
                )
                log.warning(
                    "silence #%d of %s now ends in %s ([alarms] %s)",
                    s.id,
                    s.describe(),
                    format_duration(limit),
                    key,
                )

    def _expire_silences(self, now: float) -> None:
        keep: list[Silence] = []
        for s in self._silences:
            if s.until <= now:
                self._ops.append(
                    (
                        "sql",
                        "UPDATE alarm_silences SET ended = ?, ended_by = ? "
                        "WHERE id = ? AND ended IS NULL",
                        (s.until, "expired", s.id),
                    )
                )
                log.info("silence #%d of %s expired", s.id, s.describe())
            else:
                keep.append(s)
        self._silences = keep

    # -- commands from the CLI --------------------------------------------------------------

    async def _apply_commands(self) -> None:
        async with self._store.db.execute(
            "SELECT id, command, args, created FROM alarm_commands WHERE applied IS NULL "
            "ORDER BY id"
        ) as cur:
            rows = await cur.fetchall()
        if not rows:
            return
        now = self._clock()
        for row in rows:
            try:
                args = json.loads(row["args"])
                out: list[Transition] = []
                result = self._command(row["command"], args, row["created"], now, out)
            except (ValueError, TypeError, KeyError) as exc:
                result = f"rejected: {exc}"
                out = []
            log.info("command #%d %s: %s", row["id"], row["command"], result)
            self._queue(out)
            self._ops.append(
                (
                    "sql",
                    "UPDATE alarm_commands SET applied = ?, result = ? WHERE id = ?",
                    (now, result, row["id"]),
                )
            )
        await self._commit()

    async def acknowledge(self, alarm: str, by: str) -> str:
        """Acknowledge in-process (e.g. from an MQTT command); the CLI uses alarm_commands."""
        return await self._run_command("ack", {"alarm": alarm, "by": by})

    async def silence(self, sensor: str | None, duration: float, reason: str, by: str) -> str:
        """Silence a sensor or rule name (None: everything) for `duration` seconds."""
        return await self._run_command(
            "silence", {"sensor": sensor, "duration": duration, "reason": reason, "by": by}
        )

    async def unsilence(self, target: str | int | None, by: str) -> str:
        """End silences of a sensor, one silence by number, or all (None)."""
        return await self._run_command("unsilence", {"target": target, "by": by})

    async def _run_command(self, command: str, args: dict[str, Any]) -> str:
        now = self._clock()
        out: list[Transition] = []
        result = self._command(command, args, now, now, out)
        self._queue(out)
        await self._commit()
        return result

    def _command(
        self, command: str, args: dict[str, Any], created: float, now: float, out: list[Transition]
    ) -> str:
        actor = Actor.from_args(args)
        reason = str(args.get("reason") or "")
        target: Any = ""
        until: float | None = None
        if command == "ack":
            target = normalize(str(args["alarm"]))
            result = "no such active alarm (already resolved?)"
            for alarm in self._alarms.values():
                if alarm.alarm_id == target:
                    result, transitions = alarm.acknowledge(actor.declared, now)
                    for t in transitions:
                        if t.event == EventType.ACKNOWLEDGED:
                            t.actor = actor
                            if reason:
                                t.reason = f"{t.reason}: {reason}"
                                t.params = {**t.params, "memo": reason}
                    out += transitions
                    break
        elif command == "silence":
            target = args.get("sensor")
            result, until = self._add_silence(
                target, float(args["duration"]), reason, actor, created, now
            )
        elif command == "unsilence":
            target = args.get("target")
            result = self._end_silences(target, reason, actor, now)
        else:
            return f"unknown command {command!r}"
        self._ops.append(
            (
                "sql",
                _INSERT_ACTION,
                (
                    now,
                    created,
                    command,
                    "all" if target is None else str(target),
                    until,
                    reason,
                    actor.declared,
                    actor.uid,
                    actor.user,
                    actor.sudo_uid,
                    actor.sudo_user,
                    result,
                ),
            )
        )
        return result

    def _add_silence(
        self,
        sensor: str | None,
        duration: float,
        reason: str,
        actor: Actor,
        created: float,
        now: float,
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
        self._silence_seq += 1
        silence = Silence(self._silence_seq, sensor, until, reason, actor.declared)
        self._silences.append(silence)
        self._ops.append(
            (
                "sql",
                "INSERT INTO alarm_silences(id, sensor_id, reason, created_by, created, until) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (silence.id, sensor, silence.reason, silence.created_by, now, until),
            )
        )
        self._announce(EventType.SILENCED, silence, reason, actor, now)
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

    def _end_silences(self, target: Any, reason: str, actor: Actor, now: float) -> str:
        ended = [s for s in self._silences if _matches(s, target)]
        for s in ended:
            self._silences.remove(s)
            self._ops.append(
                (
                    "sql",
                    "UPDATE alarm_silences SET ended = ?, ended_by = ? WHERE id = ?",
                    (now, actor.declared or "unsilence", s.id),
                )
            )
            self._announce(EventType.UNSILENCED, s, reason, actor, now)
        if not ended:
            return "no active silence matched"
        return "ended " + ", ".join(f"#{s.id} ({s.describe()})" for s in ended)

    def _announce(
        self, event: EventType, silence: Silence, reason: str, actor: Actor, now: float
    ) -> None:
        """A silence begun or ended reaches the info route, whatever is silenced: nobody
        should learn only from the next missed flood that the alarms were off."""
        info = None if silence.sensor_id is None else self._sensors.get(silence.sensor_id)
        location = "" if silence.sensor_id is None else silence.sensor_id
        self._ops.append(
            (
                "event",
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
                ),
                None,
            )
        )

    # -- writing ----------------------------------------------------------------------------

    def _queue(self, transitions: list[Transition]) -> None:
        for t in transitions:
            event: AlarmEvent | None = None
            notified = 0
            if t.event is not None:
                # the row, not the object: a resolved alarm's object is already reset
                silenced = self._silences and any(
                    s.covers((t.row[2], t.row[4]), t.ts) for s in self._silences
                )
                if t.event == EventType.ACKNOWLEDGED:
                    # an ack is also a safety action: the info route hears of it, silenced
                    # or not; those paged for the alarm hear of it unless it is silenced
                    tags = (
                        self._route("info")
                        if silenced
                        else (*(t.tags or self._route(t.severity)), *self._route("info"))
                    )
                    if tags:
                        event = self._event(t, tuple(dict.fromkeys(tags)))
                        notified = 1
                elif silenced and t.event in ALWAYS_SILENCEABLE:
                    alarm = self._by_id(t.alarm_id)
                    if t.event in PAGES and alarm is not None and alarm.state == FIRING:
                        alarm.unpaged = True  # paged when the silence ends, if still firing
                        t.row = alarm.row(t.ts)
                else:
                    event = self._event(t)
                    notified = 1
            self._ops.append(("sql", _UPSERT_ALARM, t.row))
            self._ops.append(
                (
                    "sql",
                    _INSERT_TRANSITION,
                    (
                        t.alarm_id,
                        t.ts,
                        t.from_state,
                        t.to_state,
                        t.severity,
                        t.reason,
                        t.event,
                        notified,
                    ),
                )
            )
            if event is not None:
                self._ops.append(("event", event, None))

    def _by_id(self, wanted: str) -> Alarm | None:
        for alarm in self._alarms.values():
            if alarm.alarm_id == wanted:
                return alarm
        return None

    def _route(self, severity: str) -> tuple[str, ...]:
        return tuple(self._config.alerts.routes.get(severity, ()))

    @staticmethod
    def _event(t: Transition, tags: tuple[str, ...] | None = None) -> AlarmEvent:
        row = t.row
        return AlarmEvent(
            alarm_id=t.alarm_id,
            event=str(t.event),
            severity=t.severity,
            sensor_id=row[4],
            location=row[5],
            kind=row[6],
            value=load_value(row[10]),
            unit=row[7],
            reason=t.reason,
            ts=t.ts,
            tags=t.tags if tags is None else tags,
            by=t.actor.describe() if t.actor else "",
            who=t.actor.short() if t.actor else "",
            cause=t.cause,
            params=t.params,
            peak=row[ROW_COLUMNS.index("peak")] or "",
            since=row[ROW_COLUMNS.index("fired")],
        )

    async def _commit(self) -> None:
        """Write every queued op in one transaction; on failure keep them for the next try."""
        async with self._commit_lock:
            if not self._ops:
                return
            ops, self._ops = self._ops, []
            try:
                async with self._store.write() as db:
                    for op, a, b in ops:
                        if op == "sql":
                            await db.execute(a, b)
                        else:
                            await self._enqueue(db, a)
            except Exception as exc:
                self._ops[:0] = ops
                self.write_errors += 1
                log.error(
                    "alarm engine: cannot record %d changes (kept, retried next tick): %s",
                    len(ops),
                    exc,
                )

    async def flush(self) -> None:
        """Write the buffered latest values and history; prune history once an hour."""
        now = self._clock()
        dirty, self._dirty = self._dirty, set()
        history, self._history = self._history, []
        sensors = []
        for sid, kind in dirty:
            latest = self._latest.get((sid, kind))
            info = self._sensors.get(sid)
            if latest is None or info is None:
                continue
            sensors.append(
                (
                    sid,
                    kind,
                    info.location,
                    latest.unit,
                    info.max_age,
                    int(info.configured),
                    dump_value(latest.value),
                    latest.ts,
                    latest.fault,
                )
            )
        rows = [(sid, kind, ts, dump_value(value)) for sid, kind, ts, value in history]
        prune = now - self._last_prune >= PRUNE_INTERVAL
        if not sensors and not rows and not prune:
            return
        try:
            async with self._store.write() as db:
                if sensors:
                    await db.executemany(_UPSERT_SENSOR, sensors)
                if rows:
                    await db.executemany(
                        "INSERT INTO alarm_history(sensor_id, kind, ts, value) VALUES (?, ?, ?, ?)",
                        rows,
                    )
                if prune:
                    horizon = now - self._settings.history_keep
                    await db.execute("DELETE FROM alarm_history WHERE ts < ?", (horizon,))
                    await db.execute(
                        "DELETE FROM alarm_transitions WHERE ts < ? AND alarm_id IN "
                        "(SELECT id FROM alarm_alarms WHERE closed < ?)",
                        (horizon, horizon),
                    )
                    await db.execute("DELETE FROM alarm_alarms WHERE closed < ?", (horizon,))
                    await db.execute("DELETE FROM alarm_commands WHERE applied < ?", (horizon,))
                    await db.execute("DELETE FROM alarm_actions WHERE ts < ?", (horizon,))
        except Exception as exc:
            self._dirty |= dirty
            self._history[:0] = history
            self.write_errors += 1
            log.error("alarm engine: cannot write latest values/history (kept): %s", exc)
            return
        if prune:
            self._last_prune = now
        self._last_flush = now

    # -- what others see --------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        states = [a.state for a in self._alarms.values() if a.state != NORMAL]
        return {
            "received": self.received,
            "ignored_unknown_sensor": self.ignored,
            "rejected": self.rejected,
            "active_alarms": len(states),
            "firing": states.count(FIRING),
            "acknowledged": states.count(ACKNOWLEDGED),
            "silences": len(self._silences),
            "unwritten_changes": len(self._ops),
            "write_errors": self.write_errors,
            "history_buffered": len(self._history),
            "history_dropped": self.history_dropped,
            "last_flush": self._last_flush,
        }

    def active_alarms(self) -> list[dict[str, Any]]:
        now = self._clock()
        out = []
        for alarm in self._alarms.values():
            if alarm.state == NORMAL:
                continue
            item = alarm.as_dict()
            item["silenced"] = self._silenced(alarm, now)
            out.append(item)
        out.sort(key=lambda a: (a["severity"] != "critical", a["since"]))
        return out


def _limit(rule: Rule, severity: str | None, direction: str | None) -> float | None:
    """The threshold a level of `threshold()` is judged against, for the message."""
    high = direction == "high"
    if severity == CRITICAL:
        return rule.crit_high if high else rule.crit_low
    return rule.warn_high if high else rule.warn_low


def _matches(silence: Silence, target: Any) -> bool:
    if target is None or target == "--all":
        return True
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return silence.id == int(target)
    return silence.sensor_id == target
