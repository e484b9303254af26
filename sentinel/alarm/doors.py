"""Doors: open outside the allowed hours, or open longer than the limit, is an alarm.

Unlike a leak, whether an open door is trouble changes with the clock alone (opened 18:55,
still open when the hours end at 19:00), so the engine asks again on every tick for each
door last seen open, not only when a reading arrives. Pure but for the open-since times it
keeps (in memory; after a restart the engine seeds them from each door's saved latest value:
open at least since that reading).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from alerts import reasons
from sentinel.alarm.evaluation import Verdict
from sentinel.alarm.rules import Rule
from sentinel.config.types import format_duration

KIND = "door"


def _hhmm(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


class Doors:
    """When each door sensor was last seen opening; None once it is seen closed."""

    def __init__(self, local: Callable[[float], datetime] = datetime.fromtimestamp) -> None:
        self._open_since: dict[str, float] = {}
        self._local = local

    def seen(self, sensor_id: str, is_open: bool, now: float) -> None:
        if is_open:
            self._open_since.setdefault(sensor_id, now)
        else:
            self._open_since.pop(sensor_id, None)

    def open_doors(self) -> list[str]:
        return list(self._open_since)

    def verdict(self, sensor_id: str, rule: Rule, now: float) -> Verdict:
        """What the door's alarm should be now: the rule's severity, or None (clear)."""
        since = self._open_since.get(sensor_id)
        is_open = since is not None
        target: str | None = None
        reason = ""
        cause: tuple[str, dict[str, object]] = ("", {})
        if since is not None and rule.enabled and rule.severity is not None:
            opened = _hhmm(since)
            if rule.allowed is not None and not rule.allowed.allows(self._local(now)):
                target = rule.severity
                hours = rule.allowed.describe()
                reason = f"door open since {opened} outside hours (allowed {hours})"
                cause = (reasons.DOOR_OUTSIDE_HOURS, {"since": opened, "allowed": hours})
            elif rule.open_limit > 0 and now - since >= rule.open_limit:
                target = rule.severity
                limit = format_duration(rule.open_limit)
                reason = f"door open since {opened}, longer than {limit}"
                cause = (reasons.DOOR_OPEN_TOO_LONG, {"since": opened, "limit": rule.open_limit})
        return Verdict(KIND, KIND, target, is_open, "", reason, rule.policy, cause)
