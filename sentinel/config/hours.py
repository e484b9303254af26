"""Weekly hours a door may stand open, e.g. "Mon-Fri 08:00-19:00", in the host's local time.

A spec is `<days> <HH:MM>-<HH:MM>`. Days: one day (`Sat`), a range (`Mon-Fri`, `Fri-Mon`
wraps), a comma list (`Mon,Wed,Fri`) or `daily`. An end before its start runs past midnight
(`Fri 22:00-02:00` is Friday night into Saturday); `24:00` is the end of the day. Pure: the
config validates with it and the alarm engine asks it about a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(r"^\s*(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class Window:
    """One spec: the weekdays it starts on (0 = Monday) and minutes from midnight."""

    text: str
    days: frozenset[int]
    start: int
    end: int  # may be <= start: the window runs past midnight into the next day

    def spans(self) -> list[tuple[int, int]]:
        """Minute-of-week intervals [from, to) this window covers (to may pass the week)."""
        length = (self.end - self.start) % DAY or DAY
        return [(day * DAY + self.start, day * DAY + self.start + length) for day in self.days]


def _day_set(text: str) -> frozenset[int]:
    word = text.lower()
    if word in ("daily", "*", "mon-sun"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in word.split(","):
        first, sep, last = part.partition("-")
        for day in (first, last) if sep else (first,):
            if day not in DAYS:
                raise ValueError(f"{day!r} is not a day (Mon..Sun, a range Mon-Fri, or daily)")
        a = DAYS.index(first)
        b = DAYS.index(last) if sep else a
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def parse_window(text: str) -> Window:
    """A spec as a Window; ValueError with what is wrong and an example."""
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(f'{text!r} is not "<days> HH:MM-HH:MM", e.g. "Mon-Fri 08:00-19:00"')
    days, h1, m1, h2, m2 = match.groups()
    start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
    for hour, minute in ((h1, m1), (h2, m2)):
        if int(minute) > 59 or int(hour) * 60 + int(minute) > DAY:
            raise ValueError(f"{text!r}: {hour}:{minute} is not a time of day")
    if start == DAY:
        raise ValueError(f"{text!r}: a window cannot start at 24:00")
    if start == end:
        raise ValueError(f"{text!r}: the window is empty (it starts where it ends)")
    return Window(text.strip(), _day_set(days), start, end % DAY)


@dataclass(frozen=True, slots=True)
class Hours:
    """Several windows; a time is allowed when any covers it."""

    windows: tuple[Window, ...]

    @classmethod
    def parse(cls, specs: list[str] | tuple[str, ...]) -> Hours:
        return cls(tuple(parse_window(spec) for spec in specs))

    def _minute(self, when: datetime) -> int:
        return when.weekday() * DAY + when.hour * 60 + when.minute

    def allows(self, when: datetime) -> bool:
        minute = self._minute(when)
        week = 7 * DAY
        return any(
            lo <= m < hi
            for window in self.windows
            for lo, hi in window.spans()
            for m in (minute, minute + week)
        )

    def describe(self) -> str:
        return ", ".join(w.text for w in self.windows)
