"""Pure evaluation: a reading, its rule and the prior state of its alarms give verdicts.

No SQLite, no clock, no engine: `evaluate` says, for each condition a reading speaks to
(the value itself, a battery, the rate of rise), what severity that condition now asks
for. Applying a verdict to an `Alarm` (hold timers, ids, transitions) is the alarm's own
business (`AlarmBook.apply`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from alerts import reasons
from sensors.reading import Reading
from sentinel.alarm.alarm import NO_CAUSE, Cause
from sentinel.alarm.conditions import RateBook, battery_low, threshold
from sentinel.alarm.rules import BOOLEAN_KINDS, BOOLEAN_REASONS, CRITICAL, WARNING, Policy, Rule

# NamedTuples, not frozen dataclasses: several are built per reading on the hot path, and a
# frozen dataclass's __init__ costs an object.__setattr__ per field (half the throughput).


class Prior(NamedTuple):
    """What one condition's alarm asked for before this reading (hysteresis needs it)."""

    target: str | None = None
    direction: str | None = None


NO_PRIOR = Prior()


class Verdict(NamedTuple):
    """What one condition asks of its alarm: `target` is a severity, or None for "clear".

    An alarm is opened only for a verdict with a target; a clearing verdict for a condition
    without an alarm changes nothing.
    """

    condition: str
    kind: str
    target: str | None
    value: Any
    unit: str
    reason: str
    policy: Policy
    cause: Cause = NO_CAUSE
    direction: str | None = None  # thresholds: the side the value tripped on


class Evaluation(NamedTuple):
    verdicts: tuple[Verdict, ...] = ()
    rejected: bool = False  # a value no rule can judge (a decoder bug upstream)


NOTHING = Evaluation()


def evaluate(
    reading: Reading,
    unit: str,
    rule: Rule,
    side_policy: Policy,
    prior: Callable[[str], Prior],
    rates: RateBook,
    now: float,
) -> Evaluation:
    """The verdicts of one healthy reading (not a fault, not availability) under `rule`.

    `prior(condition)` is that condition's alarm state; `rates` keeps the samples the rate
    of rise is computed from (the only state evaluation itself carries)."""
    if not rule.enabled:
        return NOTHING
    kind = reading.kind
    value = reading.value
    if isinstance(value, bool):
        return Evaluation(_boolean(reading, unit, rule, side_policy))
    if not isinstance(value, int | float):
        return Evaluation(rejected=kind in BOOLEAN_KINDS or rule.has_thresholds)
    if kind == "battery":
        was_low = prior("battery").target is not None
        low = battery_low(value, rule.battery_below, was_low)
        return Evaluation(
            (
                Verdict(
                    "battery",
                    kind,
                    WARNING if low else None,
                    value,
                    unit,
                    f"battery {value:g}% (below {rule.battery_below:g}%)",
                    side_policy,
                    (reasons.BATTERY, {"value": value, "below": rule.battery_below}),
                ),
            )
        )
    verdicts: list[Verdict] = []
    if rule.has_thresholds:
        verdicts.append(_threshold(kind, value, unit, rule, prior(kind)))
    if rule.rate_of_rise is not None:
        rate = rates.rise(reading.sensor_id, rule.rate_window, now, float(value))
        if rate is not None:
            verdicts.append(_rate(kind, value, unit, rule, rate))
    return Evaluation(tuple(verdicts))


def _boolean(reading: Reading, unit: str, rule: Rule, side_policy: Policy) -> tuple[Verdict, ...]:
    kind = reading.kind
    value = reading.value
    if kind == "battery_low":
        return (
            Verdict(
                "battery",
                kind,
                WARNING if value else None,
                value,
                "",
                "battery low",
                side_policy,
                (reasons.BATTERY_LOW, {}),
            ),
        )
    if rule.severity is None:
        return ()
    reason = reading.detail or BOOLEAN_REASONS.get(kind) or f"{kind.replace('_', ' ')} detected"
    # a detail without a code is already worded in the alerts' language
    cause: Cause = (
        (reading.cause or reasons.TEXT, dict(reading.params or {}))
        if reading.detail
        else (reasons.DETECTED, {})
    )
    return (
        Verdict(
            kind, kind, rule.severity if value else None, value, unit, reason, rule.policy, cause
        ),
    )


def _threshold(kind: str, value: float, unit: str, rule: Rule, prior: Prior) -> Verdict:
    target, direction, reason = threshold(rule, value, prior.target, prior.direction, unit)
    cause = (
        NO_CAUSE
        if target is None
        else (
            reasons.HIGH if direction == "high" else reasons.LOW,
            {"value": value, "limit": _limit(rule, target, direction), "unit": unit},
        )
    )
    return Verdict(kind, kind, target, value, unit, reason, rule.policy, cause, direction)


def _rate(kind: str, value: float, unit: str, rule: Rule, rate: float) -> Verdict:
    assert rule.rate_of_rise is not None
    return Verdict(
        "rate",
        kind,
        rule.rate_severity if rate >= rule.rate_of_rise else None,
        value,
        unit,
        f"rising {rate:.1f}{unit}/min (limit {rule.rate_of_rise:g}{unit}/min)",
        rule.policy,
        (reasons.RATE, {"rate": round(rate, 1), "limit": rule.rate_of_rise, "unit": unit}),
    )


def _limit(rule: Rule, severity: str | None, direction: str | None) -> float | None:
    """The threshold a level of `threshold()` is judged against, for the message."""
    high = direction == "high"
    if severity == CRITICAL:
        return rule.crit_high if high else rule.crit_low
    return rule.warn_high if high else rule.warn_low
