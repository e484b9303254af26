"""The sensors the alarm engine knows: [[sensors]], a keeper's rooms, and the pseudo-sensors
(replication, components, sessions) that report under ids no config names."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sentinel.config import Config


@dataclass(frozen=True, slots=True)
class SensorInfo:
    id: str
    location: str
    kind: str
    max_age: float | None  # None: never "lost" (replication health, reported on change)
    configured: bool = True


class SensorRegistry:
    def __init__(self, config: Config) -> None:
        self._by_id: dict[str, SensorInfo] = {
            s.id: SensorInfo(s.id, s.location or s.id, s.kind, s.max_age) for s in config.sensors
        }
        keeper = getattr(config, "keeper", None)
        for room in keeper.rooms if keeper is not None else ():
            # a room's pages name where it is ("군청 전산실"), not its id
            sid = f"room:{room.name}"
            self._by_id[sid] = SensorInfo(sid, room.where, "room_silent", None, configured=False)

    def get(self, sensor_id: str) -> SensorInfo | None:
        return self._by_id.get(sensor_id)

    def __contains__(self, sensor_id: object) -> bool:
        return sensor_id in self._by_id

    def __iter__(self) -> Iterator[SensorInfo]:
        return iter(self._by_id.values())

    def adopt(self, sensor_id: str, kind: str) -> SensorInfo:
        """A pseudo-sensor's first reading: known from now on, under its own id."""
        info = self._by_id[sensor_id] = SensorInfo(
            sensor_id, sensor_id, kind, None, configured=False
        )
        return info

    def remember(self, sensor_id: str, location: str, kind: str) -> None:
        """A pseudo-sensor the database knows from before a restart (config wins)."""
        if sensor_id not in self._by_id:
            self._by_id[sensor_id] = SensorInfo(sensor_id, location, kind, None, configured=False)
