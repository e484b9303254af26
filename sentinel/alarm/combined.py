"""Combined rules: several sensors' latest values together ("leak and humidity > 80")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts import reasons
from sentinel.alarm.alarm import Transition
from sentinel.alarm.book import AlarmBook
from sentinel.alarm.registry import SensorRegistry
from sentinel.alarm.rules import CombinedRule
from sentinel.alarm.samples import SampleBuffer


@dataclass(frozen=True, slots=True)
class Finding:
    """Whether every term holds; `parts` and `coded` word the terms checked until one failed."""

    holds: bool
    parts: tuple[str, ...]
    coded: tuple[dict[str, Any], ...]


def judge(
    rule: CombinedRule, sensors: SensorRegistry, samples: SampleBuffer, now: float
) -> Finding:
    parts: list[str] = []
    coded: list[dict[str, Any]] = []
    for term in rule.terms:
        info = sensors.get(term.sensor)
        kind = term.kind or (info.kind if info else "")
        latest = samples.get(term.sensor, kind)
        if latest is None or latest.fault is not None:
            return Finding(False, tuple(parts), tuple(coded))
        if info is not None and info.max_age is not None and now - latest.ts > info.max_age:
            return Finding(False, tuple(parts), tuple(coded))  # a stale value proves nothing
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
            return Finding(False, tuple(parts), tuple(coded))
        parts.append(part)
        coded.append(said)
    return Finding(True, tuple(parts), tuple(coded))


def evaluate(
    rule: CombinedRule,
    book: AlarmBook,
    sensors: SensorRegistry,
    samples: SampleBuffer,
    now: float,
) -> list[Transition]:
    """The rule judged again, and its alarm (opened on the first trip) told the outcome."""
    finding = judge(rule, sensors, samples, now)
    alarm = book.get(rule.name, "combined")
    if alarm is None and not finding.holds:
        return []
    if alarm is None:
        locations: list[str] = []
        for term in rule.terms:
            info = sensors.get(term.sensor)
            where = info.location if info else term.sensor
            if where not in locations:
                locations.append(where)
        alarm = book.open(
            rule.name, "combined", rule.name, "combined", "", ", ".join(locations), rule.policy
        )
    return alarm.update(
        rule.severity if finding.holds else None,
        None,
        f"{rule.name}: " + " and ".join(finding.parts),
        now,
        book.ids,
        (reasons.COMBINED, {"name": rule.name, "parts": list(finding.coded)}),
    )
