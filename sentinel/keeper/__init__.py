"""The keeper: sentinel's second role, on the health-center backup host (docs/keeper.md).

It runs the same daemon (engine, outbox, sender, status) with `[keeper]` in its config
instead of sensors and replications: one `RoomWatch` per room and one `DiskWatch`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from sensors.reading import Reading
from sentinel.config import Config
from sentinel.keeper.disk import DiskWatch
from sentinel.keeper.room import RoomWatch


def build_keeper(
    config: Config,
    submit: Callable[[Reading], Awaitable[None]],
    *,
    clock: Callable[[], float] = time.time,
) -> list[Any]:
    keeper = config.keeper
    if keeper is None:
        return []
    language = config.alerts.language
    rooms: list[Any] = [
        RoomWatch(room, keeper, submit, language=language, clock=clock) for room in keeper.rooms
    ]
    return [*rooms, DiskWatch(keeper, submit)]
