"""Helpers for alarm-engine tests: a recording enqueue, configs, readings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from alerts.event import AlarmEvent
from sensors.reading import Reading
from sentinel import migrations
from sentinel.alarm.commands import add_command, connect
from sentinel.alarm.engine import Engine
from sentinel.alarm.repository import Enqueue
from sentinel.config import Config
from sentinel.store import Store


class Outbox:
    """A recording enqueue: rows go into a table in the engine's own transaction."""

    def __init__(self) -> None:
        self.failing = False

    async def __call__(self, db: aiosqlite.Connection, event: AlarmEvent) -> None:
        if self.failing:
            raise RuntimeError("outbox unavailable")
        await db.execute(
            "CREATE TABLE IF NOT EXISTS test_outbox (seq INTEGER PRIMARY KEY, alarm_id TEXT, "
            "event TEXT, severity TEXT, sensor_id TEXT, location TEXT, kind TEXT, value TEXT, "
            "reason TEXT, tags TEXT, ts REAL)"
        )
        await db.execute(
            "INSERT INTO test_outbox(alarm_id, event, severity, sensor_id, location, kind, "
            "value, reason, tags, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.alarm_id,
                event.event,
                event.severity,
                event.sensor_id,
                event.location,
                event.kind,
                repr(event.value),
                event.reason,
                ",".join(event.tags),
                event.ts,
            ),
        )


async def sent(store: Store) -> list[dict[str, Any]]:
    """Every event committed to the test outbox, oldest first."""
    try:
        async with store.db.execute("SELECT * FROM test_outbox ORDER BY seq") as cur:
            return [dict(r) for r in await cur.fetchall()]
    except aiosqlite.OperationalError:
        return []


def config(
    sensors: list[dict[str, Any]] | None = None,
    rules: list[dict[str, Any]] | None = None,
    alarms: dict[str, Any] | None = None,
    **extra: Any,
) -> Config:
    # the sensors' own binding (topic) does not matter here; any valid one will do
    bound = [{"topic": f"zigbee2mqtt/{s['id']}", **s} for s in sensors or []]
    data: dict[str, Any] = {"sensors": bound, "rules": rules or [], **extra}
    if bound:
        data.setdefault("mqtt", {})
    if alarms is not None:
        data["alarms"] = alarms
    return Config.model_validate(data)


SENSORS = [
    {"id": "leak-1", "kind": "water_leak", "location": "under rack A"},
    {"id": "temp-1", "kind": "temperature", "location": "rack A top"},
    {"id": "hum-1", "kind": "humidity", "location": "room"},
    {"id": "smoke-1", "kind": "smoke", "location": "ceiling"},
]

MakeEngine = Callable[..., Awaitable[Engine]]


def reading(sensor: str, kind: str, value: Any, **kw: Any) -> Reading:
    return Reading(sensor, kind, value, **kw)


async def events(store: Store) -> list[tuple[str, str, str]]:
    """(event, severity, sensor_id) of everything sent so far."""
    return [(e["event"], e["severity"], e["sensor_id"]) for e in await sent(store)]


async def started_engine(
    store: Store, cfg: Config, enqueue: Enqueue, clock: Callable[[], float]
) -> Engine:
    """An engine as the daemon starts one: tables migrated first, then start()."""
    await migrations.migrate(store)
    engine = Engine(store, cfg, enqueue=enqueue, clock=clock)
    await engine.start()
    return engine


async def command(
    engine: Engine, store: Store, clock: Callable[[], float], name: str, **args: Any
) -> str:
    """What `sentinel ack/silence/unsilence` does (a row in alarm_commands), applied by the
    engine's next tick as in the daemon; returns the result the engine recorded."""
    conn = connect(store.path.parent)
    try:
        row_id = add_command(conn, name, args, now=clock())
    finally:
        conn.close()
    await engine.tick()
    async with store.db.execute("SELECT result FROM alarm_commands WHERE id = ?", (row_id,)) as cur:
        row = await cur.fetchone()
    assert row is not None and row["result"] is not None, f"command #{row_id} was not applied"
    return str(row["result"])


async def acknowledge(
    engine: Engine, store: Store, clock: Callable[[], float], alarm: str, by: str
) -> str:
    return await command(engine, store, clock, "ack", alarm=alarm, by=by)


async def silence(
    engine: Engine,
    store: Store,
    clock: Callable[[], float],
    sensor: str | None,
    duration: float,
    reason: str,
    by: str,
) -> str:
    return await command(
        engine, store, clock, "silence", sensor=sensor, duration=duration, reason=reason, by=by
    )


async def unsilence(
    engine: Engine, store: Store, clock: Callable[[], float], target: str | int | None, by: str
) -> str:
    return await command(engine, store, clock, "unsilence", target=target, by=by)
