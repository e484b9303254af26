"""Silences: a sensor (or everything) sends nothing until a time; state still changes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from sentinel.alarm.writes import AddSilence, EndSilence, ExpireSilence, ShortenSilence, Write
from sentinel.config import format_duration
from sentinel.config.rules import AlarmsConfig

log = logging.getLogger("sentinel.alarm")


@dataclass(slots=True)
class Silence:
    """One active silence. `sensor_id` None silences every alarm."""

    id: int
    sensor_id: str | None
    until: float
    reason: str = ""
    created_by: str = ""

    def covers(self, subjects: tuple[str, ...], now: float) -> bool:
        return now < self.until and (self.sensor_id is None or self.sensor_id in subjects)

    def describe(self) -> str:
        return "everything" if self.sensor_id is None else self.sensor_id


class Silences:
    """The silences in force, and the number the next one gets."""

    def __init__(self) -> None:
        self._items: list[Silence] = []
        self._last = 0

    def restore(self, items: list[Silence], last: int) -> None:
        """What the database holds (the daemon restarted)."""
        self._items = list(items)
        self._last = last

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Silence]:
        return iter(self._items)

    def covers(self, subjects: tuple[str, ...], now: float) -> bool:
        if not self._items:
            return False
        return any(s.covers(subjects, now) for s in self._items)

    def start(
        self, sensor_id: str | None, until: float, reason: str, created_by: str, now: float
    ) -> tuple[Silence, Write]:
        self._last += 1
        silence = Silence(self._last, sensor_id, until, reason, created_by)
        self._items.append(silence)
        return silence, AddSilence(silence.id, sensor_id, reason, created_by, now, until)

    def end(self, target: object, now: float, ended_by: str) -> tuple[list[Silence], list[Write]]:
        """Ends those of a sensor, one by number, or all (None or "--all")."""
        ended = [s for s in self._items if _matches(s, target)]
        writes: list[Write] = []
        for s in ended:
            self._items.remove(s)
            writes.append(EndSilence(s.id, now, ended_by))
        return ended, writes

    def limit(self, now: float, settings: AlarmsConfig) -> list[Write]:
        """A silence from before the limit existed (or was lowered) ends within it too."""
        writes: list[Write] = []
        for s in self._items:
            limit, key = silence_limit(settings, everything=s.sensor_id is None)
            if s.until > now + limit:
                s.until = now + limit
                writes.append(ShortenSilence(s.id, s.until))
                log.warning(
                    "silence #%d of %s now ends in %s ([alarms] %s)",
                    s.id,
                    s.describe(),
                    format_duration(limit),
                    key,
                )
        return writes

    def expire(self, now: float) -> list[Write]:
        keep: list[Silence] = []
        writes: list[Write] = []
        for s in self._items:
            if s.until <= now:
                writes.append(ExpireSilence(s.id, s.until))
                log.info("silence #%d of %s expired", s.id, s.describe())
            else:
                keep.append(s)
        self._items = keep
        return writes


def _matches(silence: Silence, target: object) -> bool:
    if target is None or target == "--all":
        return True
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return silence.id == int(target)
    return silence.sensor_id == target


def silence_limit(settings: AlarmsConfig, *, everything: bool) -> tuple[float, str]:
    """The longest silence allowed and the [alarms] key that sets it."""
    if everything:
        return settings.max_silence_all, "max_silence_all"
    return settings.max_silence, "max_silence"


def silence_number(target: object) -> int | None:
    """A silence's number from what a person typed: 3, "3", "#3", "S3" (as messages show it)."""
    if isinstance(target, bool):
        return None
    if isinstance(target, int):
        return target
    if isinstance(target, str):
        text = target.strip().lstrip("#")
        if text[:1] in ("S", "s"):
            text = text[1:]
        if text.isdigit():
            return int(text)
    return None
