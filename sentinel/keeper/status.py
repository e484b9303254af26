"""The rooms section of the keeper's status: per room, what the keeper knows right now.

Built from the daemon's heartbeat row (each `RoomWatch.health()`), so it reads the same
whether the keeper runs or died (the daemon line then says how long ago), plus the free
space measured now.
"""

from __future__ import annotations

from typing import Any

from sentinel.config.keeper import KeeperConfig
from sentinel.keeper.disk import free_percent
from sentinel.keeper.room import SENSOR_PREFIX


def rooms_section(
    keeper: KeeperConfig, components: dict[str, Any], now: float
) -> list[dict[str, Any]]:
    rows = []
    for room in keeper.rooms:
        seen = components.get(f"{SENSOR_PREFIX}{room.name}") or {}
        arrived = seen.get("heartbeat_arrived")
        safe = seen.get("safe_as_of")
        try:
            disk: float | None = round(free_percent(room.landing), 1)
        except OSError:
            disk = None
        try:
            snap_disk: float | None = round(free_percent(keeper.snapshot_dir), 1)
        except OSError:
            snap_disk = None
        rows.append(
            {
                "room": room.name,
                "label": room.where,
                "heartbeat_age": None if arrived is None else round(now - arrived, 1),
                "silent_after": room.silent_after,
                # never heard from: silent once the keeper has waited silent_after (its own
                # judgement, from its heartbeat row), not from the first second
                "silent": bool(seen.get("silent", True))
                if arrived is None
                else now - arrived > room.silent_after,
                "heartbeat_error": seen.get("heartbeat_error"),
                "safe_as_of": safe,
                "landing_lag": seen.get("room_rpo"),
                "room_pending": seen.get("room_pending"),
                "room_alarms": seen.get("room_alarms") or [],
                "snapshot_count": seen.get("snapshot_count"),
                "newest_snapshot": seen.get("newest_snapshot"),
                "newest_snapshot_ts": seen.get("newest_snapshot_ts"),
                "oldest_snapshot": seen.get("oldest_snapshot"),
                "oldest_snapshot_ts": seen.get("oldest_snapshot_ts"),
                "last_snapshot": seen.get("last_snapshot"),
                "snapshot_failures": seen.get("snapshot_failures", 0),
                "unsnapshotted_since": seen.get("unsnapshotted_since"),
                "landing_disk_free": disk,
                "snapshot_disk_free": snap_disk,
                "watching": seen.get("watching"),
                "watch_error": seen.get("watch_error"),
                "last_error": seen.get("last_error"),
                "mass_change": seen.get("mass_change"),
                "clock_warning": seen.get("clock_warning"),
            }
        )
    return rows


def room_problems(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(level, reason) lines for the verdict that no alarm already states."""
    out = []
    for r in rows:
        name = r["room"]
        if r.get("heartbeat_error"):
            out.append(("WARNING", f"room {name}: {r['heartbeat_error']}"))
        if r.get("last_error"):
            out.append(("WARNING", f"room {name}: {r['last_error']}"))
        if r.get("clock_warning"):
            out.append(("WARNING", f"room {name}: {r['clock_warning']}"))
        if r.get("watch_error"):
            out.append(
                (
                    "WARNING",
                    f"room {name}: landing area not watched ({r['watch_error']}); "
                    "snapshots follow the heartbeat and snapshot_every only",
                )
            )
    return out
