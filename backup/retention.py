"""Which of the keeper's snapshots to keep: every one for a while, then one per hour, one per day.

The keeper alone decides what history exists (issue 11), so the rule is a pure function of
the snapshot times and `now`, easy to test with thousands of fake timestamps.

In each UTC hour (and day) the *newest* snapshot is the one kept. Once the hour is over no
snapshot can join it, so the choice never changes as time passes: a snapshot chosen today is
still the one chosen tomorrow, and the daily choice is always also an hourly choice (the
newest of the day is the newest of its hour), so thinning from hourly to daily never leaves a
day without its representative.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Retention:
    """Ages in seconds. Defaults from the issue: all for 2 days, hourly 30 days, daily 1 year."""

    keep_all: float = 2 * DAY
    hourly: float = 30 * DAY
    daily: float = 365 * DAY

    def __post_init__(self) -> None:
        for name in ("keep_all", "hourly", "daily"):
            value = getattr(self, name)
            if not value >= 0:  # also refuses NaN
                raise ValueError(f"retention {name} must be >= 0 seconds, got {value!r}")


def select_keep(stamps: Iterable[float], policy: Retention, now: float) -> set[float]:
    """The snapshot times to keep out of `stamps` (UTC epoch seconds) at time `now`.

    Kept: every snapshot younger than `keep_all` (and any dated in the future: a clock step
    must not delete history); the newest of each UTC hour younger than `hourly`; the newest of
    each UTC day younger than `daily`; and always the newest snapshot of all.
    """
    ordered = sorted(set(stamps))
    if not ordered:
        return set()
    keep = {ordered[-1]}
    newest_in_hour: dict[int, float] = {}
    newest_in_day: dict[int, float] = {}
    for ts in ordered:  # ascending: the last write per bucket is its newest
        age = now - ts
        if age < policy.keep_all:
            keep.add(ts)
        if age < policy.hourly:
            newest_in_hour[int(ts // HOUR)] = ts
        if age < policy.daily:
            newest_in_day[int(ts // DAY)] = ts
    keep.update(newest_in_hour.values())
    keep.update(newest_in_day.values())
    return keep
