"""Config of the keeper role ([keeper] and [[keeper.rooms]]): the health-center side.

```toml
[keeper]
snapshot_dir = "/srv/keeper/snapshots"   # keeper-owned, 0700: the writer never reaches it
receipt_dir = "/srv/keeper/receipts"     # receipts the rooms read back
[[keeper.rooms]]
name = "main"                            # the rsync module and the room's [replication.keeper] room
label = "군청 전산실"                      # where, in pages
landing = "/srv/keeper/landing/main"
silent_after = "90s"
```
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from sentinel.config.types import ConfigPath, Duration, Model

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DAY = 86400.0


class RoomConfig(Model):
    """One room the keeper serves: its landing area and when its silence pages."""

    name: str
    label: str = ""
    landing: ConfigPath
    # no heartbeat for this long pages (the room daemon sends one every few seconds)
    silent_after: Duration = Field(90.0, ge=5.0, le=DAY)
    # a snapshot that finds more than this many files deleted or rewritten, or this share of
    # the files (once there are min_files), pages as a mass change: the county host may
    # have been taken over (the snapshots keep the originals either way)
    mass_change_files: int = Field(200, ge=1, strict=True)
    mass_change_share: float = Field(0.2, gt=0, le=1)
    mass_change_min_files: int = Field(50, ge=1, strict=True)
    # ... counted over all snapshots of this window, so a slow drip (10 % per snapshot) adds
    # up to the same page as one sweep
    mass_change_window: Duration = Field(3600.0, ge=0, le=7 * DAY)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' or '-' (it names dirs and state rows)")
        return value

    @field_validator("landing")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        return _based(value, info)

    @property
    def where(self) -> str:
        return self.label or self.name


class KeeperConfig(Model):
    snapshot_dir: ConfigPath = Path("/srv/keeper/snapshots")
    receipt_dir: ConfigPath = Path("/srv/keeper/receipts")
    # how often each room's heartbeat file is looked at
    poll: Duration = Field(1.0, gt=0, le=10.0)
    # a snapshot is taken once the landing area has been quiet this long after a change,
    # and never later than snapshot_within after the first unsnapshotted change
    settle: Duration = Field(5.0, ge=0, le=3600.0)
    snapshot_within: Duration = Field(60.0, gt=0, le=DAY)
    # and at least this often even when nothing was seen to change (a missed event)
    snapshot_every: Duration = Field(3600.0, gt=0, le=DAY)
    # retention: every snapshot for keep_all, one per hour up to keep_hourly, one per day
    # up to keep_daily; the newest is always kept
    keep_all: Duration = Field(2 * DAY, ge=0)
    keep_hourly: Duration = Field(30 * DAY, ge=0)
    keep_daily: Duration = Field(365 * DAY, ge=0)
    rooms: list[RoomConfig] = Field(min_length=1)

    @field_validator("snapshot_dir", "receipt_dir")
    @classmethod
    def _relative_to_config(cls, value: Path, info: ValidationInfo) -> Path:
        return _based(value, info)

    @model_validator(mode="after")
    def _apart(self) -> KeeperConfig:
        """The writer reaches every landing area; a snapshot or receipt dir inside one (or a
        landing area inside the snapshots) would hand it the history."""
        names = [r.name for r in self.rooms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rooms: duplicate name(s) {', '.join(dupes)}")
        if self.snapshot_within < self.settle:
            raise ValueError("snapshot_within must not be shorter than settle")
        own = {"snapshot_dir": self.snapshot_dir, "receipt_dir": self.receipt_dir}
        if _nested(self.snapshot_dir, self.receipt_dir):
            raise ValueError("snapshot_dir and receipt_dir must not be inside each other")
        for i, room in enumerate(self.rooms):
            for key, path in own.items():
                if _nested(room.landing, path):
                    raise ValueError(
                        f"rooms[{i}].landing {room.landing} and {key} {path} are inside each "
                        "other: the room's writer account would reach the keeper's files"
                    )
            for j, other in enumerate(self.rooms[i + 1 :], start=i + 1):
                if _nested(room.landing, other.landing):
                    raise ValueError(
                        f"rooms[{i}] and rooms[{j}] share a landing area: each room needs "
                        "its own (their snapshots would mix)"
                    )
        return self


def _based(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir") if info.context else None
    if not value.is_absolute() and base is not None:
        return Path(base) / value
    return value


def _nested(a: Path, b: Path) -> bool:
    ra, rb = Path(a).resolve(), Path(b).resolve()
    return ra.is_relative_to(rb) or rb.is_relative_to(ra)
