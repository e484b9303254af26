"""The alarm engine's tables: what it reads at start, and typed writes it commits together.

Every change the engine decides is a `Write`. They queue up and go to SQLite in one
transaction with the outbox rows `SendEvent` adds, so a page is never recorded without its
message nor sent without its record. A failed commit leaves them queued for the next try.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, assert_never

import aiosqlite

from alerts.event import AlarmEvent
from sentinel.alarm.alarm import ROW_COLUMNS
from sentinel.alarm.rollup import BUCKET
from sentinel.alarm.silence import Silence
from sentinel.alarm.writes import (
    AddAction,
    AddSilence,
    AddTransition,
    DeclareSensor,
    EndSilence,
    ExpireSilence,
    MarkCommand,
    SaveAlarm,
    SaveAlarmNumber,
    SendEvent,
    ShortenSilence,
    Write,
)
from sentinel.command_rows import ALARM
from sentinel.store import Store

log = logging.getLogger("sentinel.alarm")

# the outbox returns how many rows it added; the engine does not need the count
Enqueue = Callable[[aiosqlite.Connection, AlarmEvent], Awaitable[object]]

_UPSERT_ALARM = (
    f"INSERT INTO alarm_alarms({', '.join(ROW_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in ROW_COLUMNS)}) ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ROW_COLUMNS if c != "id")
)
_INSERT_TRANSITION = (
    "INSERT INTO alarm_transitions(alarm_id, ts, from_state, to_state, severity, reason, "
    "event, notified) VALUES (:alarm_id, :ts, :from_state, :to_state, :severity, :reason, "
    ":event, :notified)"
)
_UPSERT_SENSOR = (
    "INSERT INTO alarm_sensors(id, kind, location, unit, max_age, configured, value, value_ts, "
    "fault) VALUES (:id, :kind, :location, :unit, :max_age, :configured, :value, :value_ts, "
    ":fault) ON CONFLICT(id, kind) DO UPDATE SET "
    "location = excluded.location, unit = excluded.unit, max_age = excluded.max_age, "
    "configured = excluded.configured, value = excluded.value, value_ts = excluded.value_ts, "
    "fault = excluded.fault"
)
_INSERT_ACTION = (
    "INSERT INTO alarm_actions(ts, requested, command, target, until, reason, declared_by, uid, "
    "user, sudo_uid, sudo_user, address, result) VALUES (:ts, :requested, :command, :target, "
    ":until, :reason, :declared_by, :uid, :user, :sudo_uid, :sudo_user, :address, :result)"
)
_DECLARE_SENSOR = (
    "INSERT INTO alarm_sensors(id, kind, location, max_age, configured) "
    "VALUES (:id, :kind, :location, :max_age, 1) "
    "ON CONFLICT(id, kind) DO UPDATE SET location = excluded.location, "
    "max_age = excluded.max_age, configured = 1"
)


# -- what is read ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredSensor:
    """An alarm_sensors row: a sensor seen before, and its last value if it had one."""

    id: str
    kind: str
    location: str
    configured: bool
    value: str | None
    value_ts: float | None
    unit: str
    fault: str | None


@dataclass(frozen=True, slots=True)
class Command:
    """An alarm_commands row the CLI wrote and the engine has not applied yet."""

    id: int
    command: str
    args: str  # JSON
    created: float


@dataclass(frozen=True, slots=True)
class SensorSample:
    """The latest value of one (sensor, kind), for alarm_sensors."""

    id: str
    kind: str
    location: str
    unit: str
    max_age: float | None
    configured: int
    value: str | None
    value_ts: float
    fault: str | None


@dataclass(frozen=True, slots=True)
class HistorySample:
    sensor_id: str
    kind: str
    ts: float
    value: str | None


class Repository:
    """The alarm tables of one store; `enqueue` writes an event into the outbox."""

    def __init__(self, store: Store, enqueue: Enqueue) -> None:
        self._store = store
        self._enqueue = enqueue

    async def last_alarm_number(self) -> int:
        return await self._scalar("SELECT n AS value FROM alarm_seq WHERE id = 1")

    async def last_silence_number(self) -> int:
        return await self._scalar("SELECT coalesce(max(id), 0) AS value FROM alarm_silences")

    async def sensors(self) -> list[StoredSensor]:
        async with self._store.db.execute(
            "SELECT id, kind, location, configured, value, value_ts, unit, fault FROM alarm_sensors"
        ) as cur:
            return [
                StoredSensor(
                    id=r["id"],
                    kind=r["kind"],
                    location=r["location"],
                    configured=bool(r["configured"]),
                    value=r["value"],
                    value_ts=r["value_ts"],
                    unit=r["unit"],
                    fault=r["fault"],
                )
                for r in await cur.fetchall()
            ]

    async def open_alarms(self) -> list[aiosqlite.Row]:
        """Rows of alarms not closed, read by column name (`Alarm.load`)."""
        async with self._store.db.execute("SELECT * FROM alarm_alarms WHERE closed IS NULL") as cur:
            return list(await cur.fetchall())

    async def active_silences(self) -> list[Silence]:
        async with self._store.db.execute(
            "SELECT id, sensor_id, until, reason, created_by FROM alarm_silences "
            "WHERE ended IS NULL"
        ) as cur:
            return [
                Silence(r["id"], r["sensor_id"], r["until"], r["reason"], r["created_by"])
                for r in await cur.fetchall()
            ]

    async def pending_commands(self) -> list[Command]:
        async with self._store.db.execute(ALARM.pending_sql) as cur:
            return [
                Command(r["id"], r["command"], r["args"], r["created"])
                for r in await cur.fetchall()
            ]

    async def commit(self, writes: Sequence[Write]) -> None:
        """All of `writes` in one transaction, or none of them (the exception propagates)."""
        async with self._store.write() as db:
            for write in writes:
                await self._apply(db, write)

    async def save_samples(
        self,
        sensors: Sequence[SensorSample],
        history: Sequence[HistorySample],
        prune_before: float | None,
    ) -> None:
        """Latest values and history in one transaction; with `prune_before`, forget history
        and closed alarms older than that."""
        async with self._store.write() as db:
            if sensors:
                await db.executemany(_UPSERT_SENSOR, [_params(s) for s in sensors])
            if history:
                await db.executemany(
                    "INSERT INTO alarm_history(sensor_id, kind, ts, value) "
                    "VALUES (:sensor_id, :kind, :ts, :value)",
                    [_params(h) for h in history],
                )
            if prune_before is not None:
                horizon = prune_before
                await db.execute("DELETE FROM alarm_history WHERE ts < ?", (horizon,))
                # a ten-minute roll-up goes with the last of its samples
                await db.execute(
                    "DELETE FROM alarm_history_rollup WHERE bucket < ?", (horizon - BUCKET,)
                )
                await db.execute(
                    "DELETE FROM alarm_transitions WHERE ts < ? AND alarm_id IN "
                    "(SELECT id FROM alarm_alarms WHERE closed < ?)",
                    (horizon, horizon),
                )
                await db.execute("DELETE FROM alarm_alarms WHERE closed < ?", (horizon,))
                await db.execute("DELETE FROM alarm_commands WHERE applied < ?", (horizon,))
                await db.execute("DELETE FROM alarm_actions WHERE ts < ?", (horizon,))

    async def _scalar(self, sql: str) -> int:
        async with self._store.db.execute(sql) as cur:
            row = await cur.fetchone()
        return int(row["value"]) if row else 0

    async def _apply(self, db: aiosqlite.Connection, write: Write) -> None:
        match write:
            case SaveAlarm(row):
                await db.execute(_UPSERT_ALARM, row.as_params())
            case AddTransition():
                params = _params(write)
                params["notified"] = int(write.notified)
                await db.execute(_INSERT_TRANSITION, params)
            case SaveAlarmNumber(n):
                await db.execute("UPDATE alarm_seq SET n = max(n, ?) WHERE id = 1", (n,))
            case DeclareSensor():
                await db.execute(_DECLARE_SENSOR, _params(write))
            case AddSilence():
                await db.execute(
                    "INSERT INTO alarm_silences(id, sensor_id, reason, created_by, created, "
                    "until) VALUES (:id, :sensor_id, :reason, :created_by, :created, :until)",
                    _params(write),
                )
            case ShortenSilence(id_, until):
                await db.execute("UPDATE alarm_silences SET until = ? WHERE id = ?", (until, id_))
            case EndSilence(id_, ended, ended_by):
                await db.execute(
                    "UPDATE alarm_silences SET ended = ?, ended_by = ? WHERE id = ?",
                    (ended, ended_by, id_),
                )
            case ExpireSilence(id_, ended):
                await db.execute(
                    "UPDATE alarm_silences SET ended = ?, ended_by = 'expired' "
                    "WHERE id = ? AND ended IS NULL",
                    (ended, id_),
                )
            case MarkCommand(id_, applied, result):
                await db.execute(ALARM.finish_sql, (applied, result, id_))
            case AddAction():
                actor = write.actor
                await db.execute(
                    _INSERT_ACTION,
                    {
                        "ts": write.ts,
                        "requested": write.requested,
                        "command": write.command,
                        "target": write.target,
                        "until": write.until,
                        "reason": write.reason,
                        "declared_by": actor.declared,
                        "uid": actor.uid,
                        "user": actor.user,
                        "sudo_uid": actor.sudo_uid,
                        "sudo_user": actor.sudo_user,
                        "address": actor.address,
                        "result": write.result,
                    },
                )
            case SendEvent(event):
                await self._enqueue(db, event)
            case _:
                # mypy proves every Write is handled; this stops a new one being dropped
                assert_never(write)


def _params(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


class WriteQueue:
    """Writes decided but not yet committed. A failed commit keeps them, in order, for the
    next try: a transition is never dropped because SQLite was busy or the disk full."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo
        self._writes: list[Write] = []
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._writes)

    def add(self, writes: Iterable[Write]) -> None:
        self._writes.extend(writes)

    async def commit(self) -> bool:
        """False when the commit failed (everything stays queued)."""
        async with self._lock:
            if not self._writes:
                return True
            writes, self._writes = self._writes, []
            try:
                await self._repo.commit(writes)
            except Exception as exc:
                self._writes[:0] = writes
                log.error(
                    "alarm engine: cannot record %d changes (kept, retried next tick): %s",
                    len(writes),
                    exc,
                )
                return False
            return True
