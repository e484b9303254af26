"""Silences: a sensor (or everything) sends nothing until a time; state still changes."""

from __future__ import annotations

from dataclasses import dataclass


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
