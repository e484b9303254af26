"""Pure evaluation: a reading, its rule and the prior state give the next state, with no
store, no engine and no clock (the time is an argument)."""

from __future__ import annotations

from alerts import reasons
from sensors.reading import Reading
from sentinel.alarm.alarm import FIRING, PENDING, Alarm
from sentinel.alarm.conditions import RateBook
from sentinel.alarm.evaluation import NO_PRIOR, Prior, Verdict, evaluate
from sentinel.alarm.ids import IdAllocator, alarm_id
from sentinel.alarm.rules import CRITICAL, WARNING, Policy, Rule

T0 = 1_700_000_000.0
SIDE = Policy()
HEAT = Rule(warn_high=30.0, crit_high=35.0, hysteresis=1.0)


def verdicts(
    reading: Reading,
    rule: Rule,
    prior: dict[str, Prior] | None = None,
    rates: RateBook | None = None,
    now: float = T0,
    unit: str = "°C",
) -> tuple[Verdict, ...]:
    known = prior or {}
    result = evaluate(
        reading,
        unit,
        rule,
        SIDE,
        lambda condition: known.get(condition, NO_PRIOR),
        rates or RateBook(),
        now,
    )
    assert not result.rejected
    return result.verdicts


def test_threshold_levels_and_their_cause() -> None:
    [warm] = verdicts(Reading("t", "temperature", 31.0), HEAT)
    assert (warm.condition, warm.target, warm.direction) == ("temperature", WARNING, "high")
    [hot] = verdicts(Reading("t", "temperature", 36.0), HEAT)
    assert hot.target == CRITICAL
    assert hot.cause == (reasons.HIGH, {"value": 36.0, "limit": 35.0, "unit": "°C"})
    [fine] = verdicts(Reading("t", "temperature", 22.0), HEAT)
    assert (fine.target, fine.cause) == (None, ("", {}))


def test_hysteresis_needs_the_prior_state() -> None:
    reading = Reading("t", "temperature", 34.5)  # inside the 1 °C band below critical
    [fresh] = verdicts(reading, HEAT)
    [held] = verdicts(reading, HEAT, {"temperature": Prior(CRITICAL, "high")})
    assert (fresh.target, held.target) == (WARNING, CRITICAL)


def test_battery_recovers_only_five_points_above_its_limit() -> None:
    reading = Reading("t", "battery", 22.0)
    [was_fine] = verdicts(reading, Rule(), unit="%")
    [was_low] = verdicts(reading, Rule(), {"battery": Prior(WARNING)}, unit="%")
    assert (was_fine.condition, was_fine.target, was_low.target) == ("battery", None, WARNING)
    assert was_low.policy is SIDE


def test_booleans_word_their_reason() -> None:
    leak = Rule(severity=CRITICAL)
    [wet] = verdicts(Reading("l", "water_leak", True), leak)
    assert (wet.target, wet.reason, wet.cause) == (
        CRITICAL,
        "water leak detected",
        (reasons.DETECTED, {}),
    )
    [dry] = verdicts(Reading("l", "water_leak", False), leak)
    assert dry.target is None
    [said] = verdicts(Reading("c", "component", True, detail="keeps failing"), leak)
    assert (said.reason, said.cause) == ("keeps failing", (reasons.TEXT, {}))


def test_rate_of_rise_after_half_a_window() -> None:
    rule = Rule(rate_of_rise=1.0, rate_window=120.0)
    rates = RateBook()
    assert verdicts(Reading("t", "temperature", 20.0), rule, rates=rates) == ()
    [rising] = verdicts(Reading("t", "temperature", 23.0), rule, rates=rates, now=T0 + 60)
    assert (rising.condition, rising.target) == ("rate", WARNING)
    assert rising.cause[1]["rate"] == 3.0


def test_nothing_to_judge() -> None:
    off = Rule(enabled=False, warn_high=1.0)
    assert verdicts(Reading("t", "temperature", 99.0), off) == ()
    garbled = evaluate(
        Reading("t", "temperature", "hot"),  # type: ignore[arg-type]
        "°C",
        HEAT,
        SIDE,
        lambda _: NO_PRIOR,
        RateBook(),
        T0,
    )
    assert garbled.rejected and garbled.verdicts == ()


def test_an_alarm_takes_its_id_from_the_allocator_not_the_engine() -> None:
    ids = IdAllocator(last=6)
    [hot] = verdicts(Reading("t", "temperature", 36.0), HEAT)
    alarm = Alarm(
        "t",
        "temperature",
        sensor_id="t",
        location="rack",
        kind="temperature",
        unit="°C",
        policy=Policy(trip_hold=10.0),
    )
    [held] = alarm.update(hot.target, hot.value, hot.reason, T0, ids, hot.cause)
    assert (held.to_state, held.alarm_id, held.row.n) == (PENDING, alarm_id(7), 7)
    assert ids.unsaved() == 7 and ids.unsaved() is None  # saved once with its transition
    [fired] = alarm.advance(T0 + 10, ids)
    assert (fired.to_state, fired.row.state, fired.row.peak) == (FIRING, FIRING, CRITICAL)
