"""The keeper's disks: free space on the snapshot and landing file systems, as readings.

A county host that fills the landing disk is an attack too: when it is full, the next
snapshot and the room's next push both fail. `keeper_disk_free` pages before that (warning
below 15 %, critical below 5 %; `[[rules]] kind = "keeper_disk_free"` changes the limits).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sensors.reading import Kind, Reading
from sentinel.config.keeper import KeeperConfig

SENSOR_PREFIX = "keeper:disk:"
INTERVAL = 30.0

Submit = Callable[[Reading], Awaitable[None]]


def watched_paths(keeper: KeeperConfig) -> list[Path]:
    """The snapshot dir and each landing area, one per file system."""
    return [keeper.snapshot_dir, *(room.landing for room in keeper.rooms)]


def free_percent(path: Path) -> float:
    """The scarcer of free blocks and free inodes: a landing area flooded with empty files
    runs out of inodes with the disk nearly empty, and then no snapshot can be made."""
    st = os.statvfs(path)
    blocks = 100.0 * st.f_bavail / st.f_blocks if st.f_blocks else 0.0
    inodes = 100.0 * st.f_favail / st.f_files if st.f_files else 100.0
    return min(blocks, inodes)


class DiskWatch:
    """Reports `keeper_disk_free` for every file system the keeper writes or receives on."""

    name = "keeper-disk"

    def __init__(self, keeper: KeeperConfig, submit: Submit, *, interval: float = INTERVAL) -> None:
        self._paths = watched_paths(keeper)
        self._submit = submit
        self._interval = interval
        self.free: dict[str, float] = {}
        self.errors: dict[str, str] = {}

    async def run(self) -> None:
        while True:
            seen: set[int] = set()
            for path in self._paths:
                try:
                    dev = os.stat(path).st_dev
                    if dev in seen:
                        continue
                    seen.add(dev)
                    percent = free_percent(path)
                except OSError as exc:
                    self.errors[str(path)] = exc.strerror or str(exc)
                    continue
                self.errors.pop(str(path), None)
                self.free[str(path)] = round(percent, 1)
                await self._submit(
                    Reading(
                        f"{SENSOR_PREFIX}{path}",
                        Kind.KEEPER_DISK_FREE,
                        percent,
                        unit="%",
                        source="keeper",
                    )
                )
            await asyncio.sleep(self._interval)

    def health(self) -> dict[str, Any]:
        return {"free_percent": dict(self.free), "errors": dict(self.errors)}
