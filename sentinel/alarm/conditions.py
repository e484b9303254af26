"""Pure evaluation of one value against a rule: thresholds with hysteresis, rate of rise."""

from __future__ import annotations

from collections import deque

from sentinel.alarm.rules import CRITICAL, RANK, WARNING, Rule

# Samples kept for the rate of rise: at most this many per window, whatever the reading rate.
RATE_SAMPLES = 30


def threshold(
    rule: Rule, value: float, prev: str | None, prev_direction: str | None, unit: str
) -> tuple[str | None, str | None, str]:
    """(severity or None, "high"/"low", reason). A level once reached holds until the value is
    back past its threshold by the hysteresis."""
    h = rule.hysteresis
    rank = RANK[prev]
    held_high = prev_direction == "high"
    held_low = prev_direction == "low"
    for limit, level, severity in ((rule.crit_high, 2, CRITICAL), (rule.warn_high, 1, WARNING)):
        if limit is not None and (
            value >= limit or (held_high and rank >= level and value > limit - h)
        ):
            return severity, "high", f"{value:g}{unit} (limit {limit:g}{unit})"
    for limit, level, severity in ((rule.crit_low, 2, CRITICAL), (rule.warn_low, 1, WARNING)):
        if limit is not None and (
            value <= limit or (held_low and rank >= level and value < limit + h)
        ):
            return severity, "low", f"{value:g}{unit} (lower limit {limit:g}{unit})"
    return None, None, ""


class RateTracker:
    """Rise per minute over a sliding window, from a bounded sample of readings."""

    __slots__ = ("_samples", "_step", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._step = window / RATE_SAMPLES
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> float | None:
        """Records the value; returns the rise per minute, or None until half a window is seen."""
        samples = self._samples
        if not samples or now - samples[-1][0] >= self._step:
            samples.append((now, value))
        horizon = now - self.window
        while len(samples) > 1 and samples[0][0] < horizon:
            samples.popleft()
        first_ts, first_value = samples[0]
        span = now - first_ts
        if span < self.window / 2:
            return None
        return (value - first_value) / span * 60.0


def battery_low(value: float, below: float, was_low: bool) -> bool:
    """Low below the limit; back to normal 5 points above it (batteries recover a little
    when warm, which should not flap)."""
    return value < below or (was_low and value < below + 5.0)


class RateBook:
    """One `RateTracker` per sensor; a changed window starts the sensor's samples over."""

    __slots__ = ("_trackers",)

    def __init__(self) -> None:
        self._trackers: dict[str, RateTracker] = {}

    def rise(self, sensor_id: str, window: float, now: float, value: float) -> float | None:
        tracker = self._trackers.get(sensor_id)
        if tracker is None or tracker.window != window:
            tracker = self._trackers[sensor_id] = RateTracker(window)
        return tracker.add(now, value)
