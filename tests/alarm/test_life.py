"""The life of an alarm: latching, repeat, escalation, silences, lost sensors, restarts."""

from __future__ import annotations

import aiosqlite

from sentinel.alarm.ids import ALPHABET
from sentinel.store import Store
from tests.alarm.helpers import (
    SENSORS,
    MakeEngine,
    Outbox,
    acknowledge,
    config,
    events,
    reading,
    sent,
    silence,
    started_engine,
    unsilence,
)
from tests.fixtures.core import FakeClock

LEAK = [SENSORS[0]]


async def transitions(store: Store) -> list[tuple[str, str, str | None, int]]:
    async with store.db.execute(
        "SELECT from_state, to_state, event, notified FROM alarm_transitions ORDER BY seq"
    ) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def test_latching_stays_until_acknowledged(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config(LEAK, [{"kind": "water_leak", "latching": True}]))
    await engine.submit(reading("leak-1", "water_leak", True))
    await engine.submit(reading("leak-1", "water_leak", False))
    [alarm] = engine.active_alarms()
    assert alarm["state"] == "firing" and alarm["latched"]
    assert [e[0] for e in await events(store)] == ["firing"]
    result = await acknowledge(engine, store, clock, alarm["id"].lower(), "kim")
    assert "resolved" in result
    assert [e[0] for e in await events(store)] == ["firing", "acknowledged", "resolved"]
    assert engine.active_alarms() == []


async def test_without_latching_ack_then_clear_resolves(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config(LEAK))
    await engine.submit(reading("leak-1", "water_leak", True))
    [alarm] = engine.active_alarms()
    assert await acknowledge(engine, store, clock, alarm["id"], "kim") == "acknowledged"
    assert engine.active_alarms()[0]["acked_by"] == "kim"
    await engine.submit(reading("leak-1", "water_leak", False))
    assert [e[0] for e in await events(store)] == ["firing", "acknowledged", "resolved"]
    assert [t[:2] for t in await transitions(store)] == [
        ("normal", "firing"),
        ("firing", "acknowledged"),
        ("acknowledged", "resolved"),
    ]


async def test_repeat_until_acknowledged(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config([{**SENSORS[0], "max_age": "1d"}]))
    await engine.submit(reading("leak-1", "water_leak", True))
    for _ in range(3):
        clock.advance(60)
        await engine.submit(reading("leak-1", "water_leak", True))  # same alarm, no new page
    clock.advance(15 * 60 - 181)
    await engine.tick()
    assert [e[0] for e in await events(store)] == ["firing"]
    clock.advance(1)
    await engine.tick()
    await engine.tick()
    assert [e[0] for e in await events(store)] == ["firing", "repeat"]
    [alarm] = engine.active_alarms()
    await acknowledge(engine, store, clock, alarm["id"], "lee")
    clock.advance(60)
    await engine.submit(reading("leak-1", "water_leak", True))
    clock.advance(15 * 60)
    await engine.submit(reading("leak-1", "water_leak", True))
    await engine.tick()
    assert [e[0] for e in await events(store)] == ["firing", "repeat", "acknowledged"]


async def test_warning_repeats_hourly_and_repeat_is_configurable(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    sensors = [{**SENSORS[2], "max_age": "1d"}]
    engine = await make_engine(config(sensors, alarms={"repeat_warning": "1h"}))
    await engine.submit(reading("hum-1", "humidity", 90.0))
    clock.advance(15 * 60)
    await engine.tick()
    assert [e[0] for e in await events(store)] == ["firing"]
    clock.advance(45 * 60)
    await engine.tick()
    assert [e[0] for e in await events(store)] == ["firing", "repeat"]


async def test_escalation_ladder(make_engine: MakeEngine, store: Store, clock: FakeClock) -> None:
    rules = [
        {
            "kind": "water_leak",
            "repeat": 0,
            "escalation": [
                {"after": "20m", "tags": ["level2"]},
                {"after": "90m", "tags": ["level3", "boss"]},
            ],
        }
    ]
    engine = await make_engine(config([{**SENSORS[0], "max_age": "1d"}], rules))
    await engine.submit(reading("leak-1", "water_leak", True))
    clock.advance(19 * 60)
    await engine.tick()
    assert len(await sent(store)) == 1
    clock.advance(60)
    await engine.tick()
    rows = await sent(store)
    assert (rows[-1]["event"], rows[-1]["tags"]) == ("escalated", "level2")
    clock.advance(70 * 60)
    await engine.tick()
    await engine.tick()
    rows = await sent(store)
    assert [(r["event"], r["tags"]) for r in rows] == [
        ("firing", ""),
        ("escalated", "level2"),
        ("escalated", "level3,boss"),
    ]


async def test_escalation_stops_on_ack_and_comes_from_alarms_section(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    alarms = {"repeat_critical": 0, "escalation": [{"after": "20m", "tags": ["level2"]}]}
    engine = await make_engine(config([{**SENSORS[0], "max_age": "1d"}], alarms=alarms))
    await engine.submit(reading("leak-1", "water_leak", True))
    [alarm] = engine.active_alarms()
    clock.advance(10 * 60)
    await acknowledge(engine, store, clock, alarm["id"], "kim")
    clock.advance(60 * 60)
    await engine.tick()
    assert [e[0] for e in await events(store)] == ["firing", "acknowledged"]


async def test_silence_suppresses_and_expiry_pages(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config([{**SENSORS[0], "max_age": "1d"}]))
    await silence(engine, store, clock, "leak-1", 3600, "plumber at work", "kim")
    await engine.submit(reading("leak-1", "water_leak", True))
    announced = [("silenced", "info", "leak-1")]  # the silence itself, on the info route
    assert await events(store) == announced
    [alarm] = engine.active_alarms()
    assert alarm["state"] == "firing" and alarm["silenced"]
    # recorded, marked as not sent
    assert await transitions(store) == [("normal", "firing", "firing", 0)]
    clock.advance(30 * 60)
    await engine.tick()  # repeat time for a critical passed, still nothing
    assert await events(store) == announced
    clock.advance(30 * 60)
    await engine.tick()
    assert await events(store) == [*announced, ("firing", "critical", "leak-1")]
    assert "silence ended" in (await sent(store))[1]["reason"]
    await engine.tick()
    assert len(await events(store)) == 2


async def test_alarm_that_clears_during_its_silence_sends_nothing(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config([{**SENSORS[0], "max_age": "1d"}]))
    await silence(engine, store, clock, None, 3600, "maintenance", "kim")
    await engine.submit(reading("leak-1", "water_leak", True))
    await engine.submit(reading("leak-1", "water_leak", False))
    clock.advance(3601)
    await engine.tick()
    assert await events(store) == [("silenced", "info", "")]  # only the silence's announcement
    assert [t[:2] for t in await transitions(store)] == [
        ("normal", "firing"),
        ("firing", "resolved"),
    ]


async def test_unsilence_pages_at_once(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config([{**SENSORS[0], "max_age": "1d"}]))
    await silence(engine, store, clock, "leak-1", 7200, "test", "kim")
    await engine.submit(reading("leak-1", "water_leak", True))
    assert "ended #1" in await unsilence(engine, store, clock, "leak-1", "kim")
    await engine.tick()
    assert await events(store) == [
        ("silenced", "info", "leak-1"),
        ("unsilenced", "info", "leak-1"),
        ("firing", "critical", "leak-1"),
    ]


async def test_sensor_lost_by_max_age(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config([{**SENSORS[1], "max_age": "1m"}]))
    await engine.submit(reading("temp-1", "temperature", 22.0))
    clock.advance(60)
    await engine.tick()
    assert await events(store) == []
    clock.advance(1)
    await engine.tick()
    rows = await sent(store)
    assert [(r["event"], r["severity"], r["kind"]) for r in rows] == [
        ("firing", "warning", "sensor_lost")
    ]
    await engine.tick()
    assert len(await sent(store)) == 1
    await engine.submit(reading("temp-1", "temperature", 22.0))
    assert [r["event"] for r in await sent(store)] == ["firing", "resolved"]


async def test_never_seen_sensor_is_lost_after_max_age_from_start(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config([{**SENSORS[1], "max_age": "2m"}]))
    clock.advance(121)
    await engine.tick()
    assert [r["kind"] for r in await sent(store)] == ["sensor_lost"]


async def test_sensor_lost_by_availability_false(make_engine: MakeEngine, store: Store) -> None:
    engine = await make_engine(config(LEAK))
    await engine.submit(reading("leak-1", "availability", False))
    rows = await sent(store)
    assert [(r["event"], r["kind"]) for r in rows] == [("firing", "sensor_lost")]
    assert "offline" in rows[0]["reason"]
    await engine.submit(reading("leak-1", "availability", True))
    assert [r["event"] for r in await sent(store)] == ["firing", "resolved"]


async def test_restart_neither_pages_again_nor_forgets(
    store: Store, clock: FakeClock, outbox: Outbox
) -> None:
    cfg = config([{**SENSORS[0], "max_age": "1d"}])
    first = await started_engine(store, cfg, outbox, clock)
    await first.submit(reading("leak-1", "water_leak", True))
    [alarm] = first.active_alarms()
    del first

    clock.advance(60)
    second = await started_engine(store, cfg, outbox, clock)
    assert [a["id"] for a in second.active_alarms()] == [alarm["id"]]
    await second.submit(reading("leak-1", "water_leak", True))
    await second.tick()
    assert await events(store) == [("firing", "critical", "leak-1")]
    clock.advance(14 * 60)  # the repeat clock survived the restart too
    await second.tick()
    rows = await sent(store)
    assert [(r["event"], r["alarm_id"]) for r in rows] == [
        ("firing", alarm["id"]),
        ("repeat", alarm["id"]),
    ]
    await second.submit(reading("leak-1", "water_leak", False))
    assert (await sent(store))[-1]["event"] == "resolved"
    assert (await sent(store))[-1]["alarm_id"] == alarm["id"]


async def test_alarm_ids_are_short_and_never_reused(
    store: Store, clock: FakeClock, outbox: Outbox
) -> None:
    cfg = config(LEAK)
    seen: set[str] = set()
    for _ in range(3):
        engine = await started_engine(store, cfg, outbox, clock)
        for _ in range(5):
            await engine.submit(reading("leak-1", "water_leak", True))
            seen.add(engine.active_alarms()[0]["id"])
            await engine.submit(reading("leak-1", "water_leak", False))
    assert len(seen) == 15
    assert all(len(i) == 4 and set(i) <= set(ALPHABET) for i in seen)


async def test_transition_and_its_message_commit_together(
    make_engine: MakeEngine, store: Store, outbox: Outbox
) -> None:
    engine = await make_engine(config(LEAK))
    outbox.failing = True
    await engine.submit(reading("leak-1", "water_leak", True))
    async with store.db.execute("SELECT count(*) FROM alarm_alarms") as cur:
        assert (await cur.fetchone())[0] == 0  # rolled back with the failed outbox write
    assert engine.health()["unwritten_changes"] > 0
    outbox.failing = False
    await engine.tick()  # kept in memory and retried: nothing lost
    assert await events(store) == [("firing", "critical", "leak-1")]
    async with store.db.execute("SELECT state FROM alarm_alarms") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["firing"]


async def test_reload_keeps_alarms_and_resolves_removed_sensors(
    make_engine: MakeEngine, store: Store
) -> None:
    engine = await make_engine(config(SENSORS))
    await engine.submit(reading("leak-1", "water_leak", True))
    await engine.submit(reading("temp-1", "temperature", 31.0))
    leak_id = next(a["id"] for a in engine.active_alarms() if a["sensor"] == "leak-1")
    # a reload is a new Runtime, so a new engine on the same store
    engine = await make_engine(config(SENSORS[:1], [{"kind": "water_leak", "repeat": "5m"}]))
    assert [a["id"] for a in engine.active_alarms()] == [leak_id]
    assert (await events(store))[-1] == ("resolved", "warning", "temp-1")


async def test_flush_writes_latest_values_and_sampled_history(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config(SENSORS))
    for i in range(100):  # 10 readings/s for 10 s
        await engine.submit(reading("temp-1", "temperature", 20.0 + i / 100))
        await engine.submit(reading("leak-1", "water_leak", i in (50, 51)))
        clock.advance(0.1)
    await engine.flush()
    db: aiosqlite.Connection = store.db
    async with db.execute(
        "SELECT sensor_id, count(*) FROM alarm_history GROUP BY sensor_id ORDER BY sensor_id"
    ) as cur:
        counts = dict(tuple(r) for r in await cur.fetchall())
    assert counts["temp-1"] <= 2  # sampled: one row per 10 s
    assert counts["leak-1"] >= 3  # every change of a boolean
    async with db.execute(
        "SELECT value FROM alarm_sensors WHERE id = 'temp-1' AND kind = 'temperature'"
    ) as cur:
        assert (await cur.fetchone())[0] == "20.99"


async def test_restart_keeps_hysteresis_of_an_open_alarm(
    store: Store, clock: FakeClock, outbox: Outbox
) -> None:
    cfg = config([{**SENSORS[1], "max_age": "1d"}])
    first = await started_engine(store, cfg, outbox, clock)
    await first.submit(reading("temp-1", "temperature", 36.0))
    second = await started_engine(store, cfg, outbox, clock)
    await second.submit(reading("temp-1", "temperature", 34.5))  # inside the 1 °C band
    assert second.active_alarms()[0]["severity"] == "critical"
    assert await events(store) == [("firing", "critical", "temp-1")]
