"""Seconds on battery across a daemon restart (issue 15).

The NUT source counts a UPS's seconds on battery from its own first poll that sees `OB`
(sensors/nut.py keeps that in memory). A sentinel restarted during an outage would count
from 1 again and hold the critical back by the time the room already spent on battery. The
engine seeds when each outage began from the UPS sensor's saved latest value (its time
minus the seconds it said) and carries the count on until the UPS is back on mains. Pure.
"""

from __future__ import annotations

import json

# A saved on-battery value older than this at the restart is not the same outage (few UPSes
# carry a room this long); the count then starts again at the restart, as without a seed.
RESTART_GAP = 900.0


class Outages:
    """When each UPS sensor's outage began, as far as the saved values say."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def restored(
        self, sensor_id: str, value: str | None, value_ts: float | None, now: float
    ) -> None:
        """A saved latest value at start: on battery then, for that many seconds."""
        try:
            seconds = json.loads(value) if value is not None else None
        except ValueError:
            return
        if (
            isinstance(seconds, int | float)
            and not isinstance(seconds, bool)
            and seconds > 0
            and value_ts is not None
            and now - value_ts <= RESTART_GAP
        ):
            self._since[sensor_id] = value_ts - float(seconds)

    def seconds(self, sensor_id: str, value: float, now: float) -> float:
        """The source's count, or the count since the outage began before the restart."""
        if value <= 0:
            # back on mains: a later outage is a new one
            self._since.pop(sensor_id, None)
            return value
        since = self._since.get(sensor_id)
        if since is None:
            return value
        return max(value, float(round(now - since)))
