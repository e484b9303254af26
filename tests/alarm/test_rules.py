"""Rules: thresholds with hysteresis, holds, rate of rise, combined rules, defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sentinel.alarm.engine import Engine
from sentinel.config.rules import RuleConfig
from sentinel.store import Store
from tests.alarm.helpers import SENSORS, MakeEngine, config, events, reading
from tests.fixtures.core import FakeClock


def severity_of(engine: Engine, sensor: str) -> str | None:
    for alarm in engine.active_alarms():
        if alarm["sensor"] == sensor:
            return alarm["severity"]
    return None


async def test_defaults_heat_warns_then_critical_with_hysteresis(
    make_engine: MakeEngine, store: Store
) -> None:
    engine = await make_engine()
    await engine.submit(reading("temp-1", "temperature", 29.0))
    assert await events(store) == []
    await engine.submit(reading("temp-1", "temperature", 30.5))
    assert await events(store) == [("firing", "warning", "temp-1")]
    await engine.submit(reading("temp-1", "temperature", 36.0))
    assert (await events(store))[-1] == ("firing", "critical", "temp-1")
    # inside the 1 °C hysteresis band below 35: still critical, nothing sent
    await engine.submit(reading("temp-1", "temperature", 34.5))
    assert severity_of(engine, "temp-1") == "critical"
    await engine.submit(reading("temp-1", "temperature", 33.9))
    assert severity_of(engine, "temp-1") == "warning"
    await engine.submit(reading("temp-1", "temperature", 29.5))
    assert severity_of(engine, "temp-1") == "warning"
    assert len(await events(store)) == 2
    await engine.submit(reading("temp-1", "temperature", 28.9))
    assert severity_of(engine, "temp-1") is None
    assert (await events(store))[-1] == ("resolved", "warning", "temp-1")


async def test_low_thresholds_and_sensor_rule_overrides_kind_rule(
    make_engine: MakeEngine, store: Store
) -> None:
    rules = [
        {"kind": "temperature", "warn_low": 10, "crit_low": 5, "hysteresis": 2},
        {"sensor": "temp-1", "crit_high": 40},
    ]
    engine = await make_engine(config(SENSORS, rules))
    await engine.submit(reading("temp-1", "temperature", 37.0))  # warn 30 from defaults
    assert severity_of(engine, "temp-1") == "warning"
    await engine.submit(reading("temp-1", "temperature", 20.0))
    await engine.submit(reading("temp-1", "temperature", 4.0))
    assert severity_of(engine, "temp-1") == "critical"
    await engine.submit(reading("temp-1", "temperature", 6.5))  # < 5 + 2: still critical
    assert severity_of(engine, "temp-1") == "critical"
    await engine.submit(reading("temp-1", "temperature", 12.5))
    assert severity_of(engine, "temp-1") is None
    assert [e[0] for e in await events(store)] == ["firing", "resolved", "firing", "resolved"]


async def test_humidity_default_warning(make_engine: MakeEngine, store: Store) -> None:
    engine = await make_engine()
    await engine.submit(reading("hum-1", "humidity", 79.0))
    await engine.submit(reading("hum-1", "humidity", 85.0))
    assert await events(store) == [("firing", "warning", "hum-1")]


async def test_trip_and_clear_hold(make_engine: MakeEngine, store: Store, clock: FakeClock) -> None:
    rules = [{"sensor": "temp-1", "trip_hold": "1m", "clear_hold": "2m"}]
    engine = await make_engine(config(SENSORS[1:2], rules))
    await engine.submit(reading("temp-1", "temperature", 31.0))
    assert engine.active_alarms()[0]["state"] == "pending"
    clock.advance(30)
    await engine.tick()
    await engine.submit(reading("temp-1", "temperature", 28.0))  # a blip: cancelled
    assert engine.active_alarms() == []
    assert await events(store) == []

    await engine.submit(reading("temp-1", "temperature", 31.0))
    clock.advance(59)
    await engine.tick()
    assert await events(store) == []
    clock.advance(1)
    await engine.tick()
    assert await events(store) == [("firing", "warning", "temp-1")]

    await engine.submit(reading("temp-1", "temperature", 28.0))
    clock.advance(100)
    await engine.tick()
    await engine.submit(reading("temp-1", "temperature", 31.0))  # back: clear hold restarts
    await engine.submit(reading("temp-1", "temperature", 28.0))
    clock.advance(119)
    await engine.tick()
    assert len(await events(store)) == 1
    clock.advance(1)
    await engine.tick()
    assert (await events(store))[-1] == ("resolved", "warning", "temp-1")


async def test_rate_of_rise(make_engine: MakeEngine, store: Store, clock: FakeClock) -> None:
    rules = [{"kind": "temperature", "rate_of_rise": 1.0, "rate_window": "5m"}]
    engine = await make_engine(config(SENSORS, rules))
    value = 20.0
    for _ in range(30):  # five flat minutes
        await engine.submit(reading("temp-1", "temperature", value))
        clock.advance(10)
    assert await events(store) == []
    for _ in range(30):  # +0.3 °C per 10 s = 1.8 °C/min, still below the 30 °C warning
        value += 0.3
        await engine.submit(reading("temp-1", "temperature", value))
        clock.advance(10)
        if await events(store):
            break
    sent = await events(store)
    assert sent == [("firing", "warning", "temp-1")]
    assert value < 30
    assert engine.active_alarms()[0]["kind"] == "rate_of_rise"
    for _ in range(40):  # flat again: the rise leaves the window and the alarm clears
        await engine.submit(reading("temp-1", "temperature", value))
        clock.advance(10)
    assert (await events(store))[-1] == ("resolved", "warning", "temp-1")


async def test_combined_rule_smoke_and_heat_is_fire(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    rules = [
        {
            "name": "fire",
            "all": [{"sensor": "smoke-1", "kind": "smoke"}, {"sensor": "temp-1", "above": 45}],
        }
    ]
    engine = await make_engine(config(SENSORS, rules))
    await engine.submit(reading("temp-1", "temperature", 50.0))
    assert [e[2] for e in await events(store)] == ["temp-1"]
    await engine.submit(reading("smoke-1", "smoke", True))
    fire = [e for e in await sent_rows(store) if e["sensor_id"] == "fire"]
    assert len(fire) == 1
    assert fire[0]["severity"] == "critical" and fire[0]["kind"] == "combined"
    assert "rack A top" in fire[0]["location"] and "ceiling" in fire[0]["location"]
    await engine.submit(reading("temp-1", "temperature", 40.0))
    fire = [e for e in await sent_rows(store) if e["sensor_id"] == "fire"]
    assert [e["event"] for e in fire] == ["firing", "resolved"]


async def test_combined_rule_ignores_stale_terms(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    rules = [
        {
            "name": "fire",
            "all": [{"sensor": "smoke-1", "kind": "smoke"}, {"sensor": "temp-1", "above": 45}],
        }
    ]
    engine = await make_engine(config(SENSORS, rules))
    await engine.submit(reading("temp-1", "temperature", 50.0))
    clock.advance(301)  # temp-1's max_age (default 5 min) passed: its 50 °C proves nothing
    await engine.submit(reading("smoke-1", "smoke", True))
    assert not [e for e in await sent_rows(store) if e["sensor_id"] == "fire"]


async def test_leak_and_smoke_critical_at_once(make_engine: MakeEngine, store: Store) -> None:
    engine = await make_engine()
    await engine.submit(reading("leak-1", "water_leak", True))
    await engine.submit(reading("smoke-1", "smoke", True))
    assert await events(store) == [
        ("firing", "critical", "leak-1"),
        ("firing", "critical", "smoke-1"),
    ]
    # repeated True readings are the same alarm
    await engine.submit(reading("leak-1", "water_leak", True))
    assert len(await events(store)) == 2


async def test_battery_low(make_engine: MakeEngine, store: Store) -> None:
    engine = await make_engine()
    await engine.submit(reading("leak-1", "battery", 50.0))
    await engine.submit(reading("leak-1", "battery", 12.0))
    sent = await sent_rows(store)
    assert [(e["event"], e["severity"], e["kind"]) for e in sent] == [
        ("firing", "warning", "battery_low")
    ]
    await engine.submit(reading("leak-1", "battery", 22.0))  # within 5 points: still low
    assert len(await sent_rows(store)) == 1
    await engine.submit(reading("leak-1", "battery", 90.0))
    await engine.submit(reading("temp-1", "battery_low", True))
    assert [e["event"] for e in await sent_rows(store)] == ["firing", "resolved", "firing"]


async def test_fault_reading_never_fires_a_leak_alarm(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine()
    await engine.submit(reading("leak-1", "water_leak", None, fault="cable break"))
    await engine.tick()
    assert await events(store) == []  # one bad reading pages nobody (fault_hold 60 s)
    clock.advance(60)
    await engine.submit(reading("leak-1", "water_leak", None, fault="cable break"))
    sent = await sent_rows(store)
    assert [(e["event"], e["severity"], e["kind"]) for e in sent] == [
        ("firing", "warning", "sensor_fault")
    ]
    assert "cable break" in sent[0]["reason"]
    await engine.submit(reading("leak-1", "water_leak", False))
    kinds = {e["kind"] for e in await sent_rows(store)}
    assert kinds == {"sensor_fault"}
    assert (await events(store))[-1][0] == "resolved"


async def test_replication_readings_alarm_and_unknown_ids_are_ignored(
    make_engine: MakeEngine, store: Store
) -> None:
    engine = await make_engine()
    await engine.submit(reading("replication:docs", "replication_lag", 30.0, unit="s"))
    await engine.submit(reading("replication:docs", "replication_lag", 90.0, unit="s"))
    sent = await sent_rows(store)
    assert [(e["event"], e["severity"], e["location"]) for e in sent] == [
        ("firing", "warning", "replication:docs")
    ]
    await engine.submit(reading("replication:docs", "replication_guard", True))
    assert (await events(store))[-1] == ("firing", "critical", "replication:docs")
    await engine.submit(reading("replication:docs", "replication_verify", True))
    assert (await events(store))[-1] == ("firing", "critical", "replication:docs")

    await engine.submit(reading("bogus-7", "temperature", 99.0))
    assert engine.health()["ignored_unknown_sensor"] == 1
    assert len(await events(store)) == 3


async def test_disabled_rule_sends_nothing(make_engine: MakeEngine, store: Store) -> None:
    engine = await make_engine(config(SENSORS, [{"kind": "smoke", "enabled": False}]))
    await engine.submit(reading("smoke-1", "smoke", True))
    assert await events(store) == []


def test_rule_config_errors_are_clear() -> None:
    with pytest.raises(ValidationError, match="needs a name"):
        RuleConfig.model_validate({"all": [{"sensor": "smoke-1"}]})
    with pytest.raises(ValidationError, match="needs `sensor`, `kind` or `all`"):
        RuleConfig.model_validate({"warn_high": 3})
    with pytest.raises(ValidationError, match="warn_high must be below crit_high"):
        RuleConfig.model_validate({"kind": "temperature", "warn_high": 40, "crit_high": 35})
    rule = RuleConfig.model_validate({"kind": "temperature", "trip_hold": "2m"})
    assert rule.trip_hold == 120.0


async def sent_rows(store: Store) -> list[dict]:
    from tests.alarm.helpers import sent

    return await sent(store)
