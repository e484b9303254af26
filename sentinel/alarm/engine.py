"""The alarm engine: readings in, alarm transitions and their messages out.

Evaluation is in memory (`evaluation`, `combined`, `presence`, `paging`); only a transition
touches SQLite, in one transaction with the outbox rows its messages need (`repository`).
Latest values and history are buffered (`samples`) and written by `flush()` in batches.
The tables must exist first: `sentinel.migrations.migrate(store)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from alerts import reasons
from sensors.reading import UNITS, Reading
from sentinel.alarm import combined, paging, presence
from sentinel.alarm.actions import SafetyActions
from sentinel.alarm.alarm import ACKNOWLEDGED, FIRING, NORMAL, Transition
from sentinel.alarm.book import AlarmBook
from sentinel.alarm.conditions import RateBook
from sentinel.alarm.doors import Doors
from sentinel.alarm.evaluation import evaluate
from sentinel.alarm.ids import IdAllocator
from sentinel.alarm.outage import Outages
from sentinel.alarm.policies import Policies
from sentinel.alarm.registry import SensorInfo, SensorRegistry
from sentinel.alarm.repository import Enqueue, Repository, WriteQueue
from sentinel.alarm.rules import SELF_KINDS
from sentinel.alarm.samples import Flushed, SampleBuffer
from sentinel.alarm.silence import Silences
from sentinel.alarm.writes import DeclareSensor, MarkCommand, SaveAlarmNumber
from sentinel.config import Config
from sentinel.store import Store

log = logging.getLogger("sentinel.alarm")

TICK_INTERVAL = 0.5
PRUNE_INTERVAL = 3600.0
UNKNOWN_IDS_LOGGED = 100


class Engine:
    """Turns readings into alarms with a life (hold, fire, repeat, escalate, ack, resolve).

    A `sentinel.supervisor.Component` named "alarms". `submit()` is the hot path sources
    call for every reading; `tick()` drives everything time-based and applies the commands
    the CLI writes into `alarm_commands`. A new config is a new Engine on the same store.
    """

    name = "alarms"

    def __init__(
        self, store: Store, config: Config, *, enqueue: Enqueue, clock: Callable[[], float]
    ) -> None:
        self._clock = clock
        self._settings = config.alarms
        self._repo = Repository(store, enqueue)
        self._sensors = SensorRegistry(config)
        self._policies = Policies(config, self._sensors)
        self._book = AlarmBook(self._policies, IdAllocator())
        self._samples = SampleBuffer(self._settings.history_interval)
        self._presence = presence.Presence()
        self._rates = RateBook()
        self._doors = Doors()
        self._outages = Outages()
        self._silences = Silences()
        self._actions = SafetyActions(self._book, self._silences, self._sensors, self._settings)
        self._pager = paging.Pager(config.alerts.routes)
        self._writes = WriteQueue(self._repo)
        self._started_at: float | None = None
        self._last_prune = float("-inf")
        self._last_flush: float | None = None
        self._unknown_ids: set[str] = set()
        self.received = 0
        self.ignored = 0
        self.rejected = 0
        self.write_errors = 0

    async def start(self) -> None:
        """Load persisted alarms, values and silences; declare the configured sensors."""
        now = self._clock()
        self._started_at = now
        repo = self._repo
        self._book.ids = IdAllocator(await repo.last_alarm_number())
        for stored in await repo.sensors():
            if not stored.configured:
                self._sensors.remember(stored.id, stored.location, stored.kind)
            self._samples.restore(stored)
            if stored.kind == "door" and stored.value == "true" and stored.value_ts is not None:
                # open at its last reading before the restart: open at least since then
                self._doors.seen(stored.id, True, stored.value_ts)
            if stored.kind == "ups_on_battery":
                # on battery at its last reading: the same outage goes on counting
                self._outages.restored(stored.id, stored.value, stored.value_ts, now)
        out: list[Transition] = []
        for row in await repo.open_alarms():
            alarm = self._book.restore(row)
            if not self._policies.known(alarm.subject, alarm.condition, alarm.kind):
                removed = "its sensor or rule was removed from the config"
                out += alarm.resolve(now, removed, (reasons.REMOVED, {}))
        self._silences.restore(await repo.active_silences(), await repo.last_silence_number())
        self._writes.add(self._silences.limit(now, self._settings))
        self._presence.restarted(self._sensors, now)
        self._record(out)
        self._writes.add(
            DeclareSensor(s.id, s.kind, s.location, s.max_age)
            for s in self._sensors
            if s.configured
        )
        await self._commit()
        await self._apply_commands()

    async def run(self) -> None:
        """tick() every half second, flush() every flush_interval; a final flush on stop."""
        if self._started_at is None:
            await self.start()
        next_flush = self._clock() + self._settings.flush_interval
        try:
            while True:
                await self.tick()
                now = self._clock()
                # A wall clock stepped back (NTP, an operator) must not hold the buffered
                # values and history until it catches up again.
                if now >= next_flush or next_flush - now > self._settings.flush_interval:
                    await self.flush()
                    next_flush = self._clock() + self._settings.flush_interval
                await asyncio.sleep(TICK_INTERVAL)
        except asyncio.CancelledError:
            await asyncio.shield(self._final_flush())
            raise

    async def submit(self, reading: Reading) -> None:
        """Evaluate one reading. Writes SQLite only when an alarm changes state."""
        self.received += 1
        sid = reading.sensor_id
        info = self._sensors.get(sid)
        if info is None:
            if reading.kind not in SELF_KINDS:
                self._unknown(sid)
                return
            info = self._sensors.adopt(sid, reading.kind)
        now = self._clock()
        out = self._observe(info, reading, now)
        for rule in self._policies.combined_for(sid):
            out += combined.evaluate(rule, self._book, self._sensors, self._samples, now)
        if out:
            self._record(out)
        if self._writes:
            await self._commit()

    def _observe(self, info: SensorInfo, reading: Reading, now: float) -> list[Transition]:
        sid, kind, book, policies = info.id, reading.kind, self._book, self._policies
        if kind == "availability":
            if reading.value is False:
                self._presence.offline(sid)
                return book.apply(info, presence.offline(info, policies.side), now)
            if reading.value is True:
                self._presence.seen(sid, now)
                return self._presence.back(book, sid, now)
            return []
        self._presence.seen(sid, now)
        if reading.fault is not None:
            self._samples.remember(sid, kind, None, reading.unit, now, reading.fault)
            return book.apply(info, presence.fault(kind, reading.fault, policies.fault), now)
        out = self._presence.back(book, sid, now)
        if kind == "ups_on_battery" and isinstance(reading.value, float):
            reading = replace(reading, value=self._outages.seconds(sid, reading.value, now))
        unit = reading.unit or UNITS.get(kind, "")
        self._samples.remember(sid, kind, reading.value, unit, now, None)
        rule = policies.rules.rule(sid, kind)
        if kind == "door" and isinstance(reading.value, bool):
            # judged again on every tick too: the hours can end while it stands open
            self._doors.seen(sid, reading.value, now)
            return out + book.apply(info, self._doors.verdict(sid, rule, now), now)
        prior = partial(book.prior, sid)
        result = evaluate(reading, unit, rule, policies.side, prior, self._rates, now)
        if result.rejected:
            self.rejected += 1
        for verdict in result.verdicts:
            out += book.apply(info, verdict, now)
        return out

    async def tick(self) -> None:
        """Hold timers, lost sensors, silence expiry, repeats, escalation, CLI commands."""
        if self._started_at is None:
            await self.start()
        await self._apply_commands()
        now = self._clock()
        book = self._book
        self._writes.add(self._silences.expire(now))
        out: list[Transition] = []
        for info, silent_for in self._presence.silent(self._sensors, now):
            out += book.apply(info, presence.silent(info, silent_for, self._policies.side), now)
        for sid in self._doors.open_doors():
            door = self._sensors.get(sid)
            if door is not None:
                verdict = self._doors.verdict(sid, self._policies.rules.rule(sid, "door"), now)
                out += book.apply(door, verdict, now)
        for rule in self._policies.combined:
            alarm = book.get(rule.name, "combined")
            if alarm is not None and alarm.active:  # a term may have gone stale
                out += combined.evaluate(rule, book, self._sensors, self._samples, now)
        for alarm in book:
            if alarm.state == NORMAL:
                continue
            out += alarm.advance(now, book.ids)
            if alarm.state == FIRING and not self._silences.covers(
                (alarm.subject, alarm.sensor_id), now
            ):
                out += paging.due(alarm, now, self._settings)
        self._record(out)
        await self._commit()

    async def flush(self) -> None:
        """Write the buffered latest values and history; prune history once an hour."""
        now = self._clock()
        prune = now - self._last_prune >= PRUNE_INTERVAL
        keep_after = now - self._settings.history_keep if prune else None
        flushed = await self._samples.flush(self._repo, self._sensors, keep_after)
        if flushed is Flushed.FAILED:
            self.write_errors += 1
        if flushed is not Flushed.WRITTEN:
            return
        if prune:
            self._last_prune = now
        self._last_flush = now

    async def _final_flush(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # shutting down: report, do not mask the cancellation
            log.warning("alarm engine: last flush failed: %s", exc)

    async def _apply_commands(self) -> None:
        commands = await self._repo.pending_commands()
        if not commands:
            return
        now = self._clock()
        for command in commands:
            outcome = self._actions.apply(command, now)
            log.info("command #%d %s: %s", command.id, command.command, outcome.result)
            self._writes.add(outcome.writes)
            self._record(outcome.transitions)
            self._writes.add((MarkCommand(command.id, now, outcome.result),))
        await self._commit()

    def _record(self, transitions: Sequence[Transition]) -> None:
        self._writes.add(self._pager.record(transitions, self._silences, self._book))

    async def _commit(self) -> None:
        n = self._book.ids.unsaved()
        if n is not None:
            self._writes.add((SaveAlarmNumber(n),))
        if not await self._writes.commit():
            self.write_errors += 1

    def _unknown(self, sid: str) -> None:
        self.ignored += 1
        if sid not in self._unknown_ids and len(self._unknown_ids) < UNKNOWN_IDS_LOGGED:
            self._unknown_ids.add(sid)
            log.warning("reading for unknown sensor %r ignored (not in [[sensors]])", sid)

    # -- what others see --------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        states = [a.state for a in self._book.active()]
        return {
            "received": self.received,
            "ignored_unknown_sensor": self.ignored,
            "rejected": self.rejected,
            "active_alarms": len(states),
            "firing": states.count(FIRING),
            "acknowledged": states.count(ACKNOWLEDGED),
            "silences": len(self._silences),
            "unwritten_changes": len(self._writes),
            "write_errors": self.write_errors,
            "history_buffered": len(self._samples),
            "history_dropped": self._samples.dropped,
            "last_flush": self._last_flush,
        }

    def active_alarms(self) -> list[dict[str, Any]]:
        now = self._clock()
        out = []
        for alarm in self._book.active():
            item = alarm.as_dict()
            item["silenced"] = self._silences.covers((alarm.subject, alarm.sensor_id), now)
            out.append(item)
        out.sort(key=lambda a: (a["severity"] != "critical", a["since"]))
        return out
