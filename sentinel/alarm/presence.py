"""Is a sensor there? Lost when silent past its max_age or when its gateway says it is
offline; a fault it reports is its own alarm. Both clear when it reports again."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from alerts import reasons
from sentinel.alarm.alarm import Transition
from sentinel.alarm.book import AlarmBook
from sentinel.alarm.evaluation import Verdict
from sentinel.alarm.registry import SensorInfo
from sentinel.alarm.rules import WARNING, Policy


class Presence:
    """When each sensor last reported, and which ones their gateway called offline."""

    def __init__(self) -> None:
        self._last_seen: dict[str, float] = {}
        self._offline: set[str] = set()

    def restarted(self, sensors: Iterable[SensorInfo], now: float) -> None:
        """The daemon was down, not the sensors: each gets a full max_age to report again."""
        for info in sensors:
            self._last_seen[info.id] = now

    def seen(self, sensor_id: str, now: float) -> None:
        self._last_seen[sensor_id] = now

    def offline(self, sensor_id: str) -> None:
        self._offline.add(sensor_id)

    def silent(
        self, sensors: Iterable[SensorInfo], now: float
    ) -> Iterator[tuple[SensorInfo, float]]:
        """(sensor, seconds silent) of each sensor silent past its max_age."""
        for info in sensors:
            if info.id in self._offline:
                continue  # already lost, by its own gateway's word
            if info.max_age is None:
                continue
            silent_for = now - self._last_seen.get(info.id, now)
            if silent_for > info.max_age:
                yield info, silent_for

    def back(self, book: AlarmBook, sensor_id: str, now: float) -> list[Transition]:
        """It reported: its lost and fault alarms clear."""
        self._offline.discard(sensor_id)
        out: list[Transition] = []
        for condition in ("lost", "fault"):
            alarm = book.get(sensor_id, condition)
            if alarm is not None and alarm.target is not None:
                out += alarm.update(None, None, "", now, book.ids)
        return out


def offline(info: SensorInfo, policy: Policy) -> Verdict:
    return Verdict(
        "lost",
        info.kind,
        WARNING,
        None,
        "",
        "sensor offline (its gateway says so)",
        policy,
        (reasons.OFFLINE, {}),
    )


def silent(info: SensorInfo, silent_for: float, policy: Policy) -> Verdict:
    assert info.max_age is not None
    return Verdict(
        "lost",
        info.kind,
        WARNING,
        None,
        "",
        f"no reading for {silent_for:.0f}s (max_age {info.max_age:g}s)",
        policy,
        (reasons.SILENT, {"silent_for": round(silent_for), "max_age": info.max_age}),
    )


def fault(kind: str, what: str, policy: Policy) -> Verdict:
    return Verdict(
        "fault",
        kind,
        WARNING,
        None,
        "",
        f"sensor fault: {what}",
        policy,
        (reasons.FAULT, {"fault": what}),
    )
