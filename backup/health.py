"""What a running replicator reports about itself: one typed value, read by attribute by
the daemon (alarm readings, the keeper's heartbeat) and turned into JSON in one place
(`as_dict`, for the supervisor's heartbeat row that status and livestatus show)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ReplicationHealth:
    source: str
    target: str  # `Target.describe()`: never a secret
    phase: str  # starting | running | target missing | source missing | stopped
    pending: int  # journal rows not shipped yet
    rpo: float  # seconds since the oldest pending change
    last_success: float | None
    consecutive_failures: int
    last_error: str | None
    shipped_files: int
    transfers: int  # full passes run by this process
    transfer_running: bool
    guard_tripped: bool
    guard_count: int | None
    guard_reason: str | None
    source_missing: bool
    target_missing: bool
    blocked: str | None  # why nothing ships (the missing source's or target's problem)
    last_full: float | None
    verify_mismatch: bool
    last_verify: dict[str, Any] | None  # ts, ok, differences, sample, error
    watch_limit: bool
    watch_limit_error: str | None
    watches: int
    files: int
    overflows: int
    quarantined: int
    # set aside for another reason than the account's access (their own alarm)
    quarantined_other: int
    unreadable: int
    unreadable_first: str | None  # already `shown()`: printable, bounded
    # the stream road (backup/stream.py): up, error, down_since; None without a stream key
    stream: dict[str, Any] | None = None
    # kind = "archive-log" (backup/archive_log.py): now - close time of the contiguous head
    archive_log: bool = False
    data_rpo: float | None = None
    log_head: int | None = None
    log_gap: tuple[str, ...] = ()

    @property
    def never_synced(self) -> bool:
        """Nothing reached the replica yet (no root there to write beside)."""
        return self.last_success is None and self.last_full is None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form, field for field."""
        return asdict(self)
