"""Silences: a sensor (or everything) sends nothing until a time; state still changes."""

from __future__ import annotations

from dataclasses import dataclass

from sentinel.config.rules import AlarmsConfig


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
