"""Everything one replicated source needs, as a plain frozen value (built by the daemon)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backup.filters import Filters
from backup.logname import LogNaming
from backup.target import Target

DEFAULT_BATCH_MAX_FILES = 5000
DEFAULT_BATCH_MAX_BYTES = 1 << 30
DEFAULT_TIMEOUT = 60.0
DEFAULT_RECONCILE_EVERY = 86400.0  # nightly
DEFAULT_VERIFY_EVERY = 7 * 86400.0  # weekly
DEFAULT_RETENTION = 30 * 86400.0
DEFAULT_GUARD_WINDOW = 60.0
DEFAULT_GUARD_MAX_FILES = 200
DEFAULT_GUARD_MAX_SHARE = 0.2
# Below this many changed files the share rule stays quiet (a 10-file source would trip on 3).
DEFAULT_GUARD_MIN_FILES = 50
DEFAULT_FALLBACK_RECONCILE = 300.0  # out of inotify watches: full pass every 5 min
DEFAULT_RETRY_MAX = 60.0
DEFAULT_FATAL_RETRY = 300.0


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """Ransomware guard thresholds: trip on more than `max_files` or more than `max_share`
    of the existing files (when at least `min_files`) changed within `window` seconds."""

    enabled: bool = True
    window: float = DEFAULT_GUARD_WINDOW
    max_files: int = DEFAULT_GUARD_MAX_FILES
    max_share: float = DEFAULT_GUARD_MAX_SHARE
    min_files: int = DEFAULT_GUARD_MIN_FILES


@dataclass(frozen=True, slots=True)
class ReplicationSpec:
    """One source directory and its replica."""

    name: str
    source: Path
    target: Target
    filters: Filters = field(default_factory=Filters)
    batch_max_files: int = DEFAULT_BATCH_MAX_FILES
    batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES
    timeout: float = DEFAULT_TIMEOUT
    reconcile_every: float | None = DEFAULT_RECONCILE_EVERY
    reconcile_at_start: bool = True
    verify_every: float | None = DEFAULT_VERIFY_EVERY
    retention: float | None = DEFAULT_RETENTION
    guard: GuardSettings = field(default_factory=GuardSettings)
    fallback_reconcile: float = DEFAULT_FALLBACK_RECONCILE
    retry_max: float = DEFAULT_RETRY_MAX
    fatal_retry: float = DEFAULT_FATAL_RETRY
    # the source root must be a mountpoint (an unmounted disk leaves an empty directory)
    require_mountpoint: bool = False
    sparse: bool = True  # rsync --sparse: holes in a file stay holes on the replica
    hardlinks: bool = True  # rsync -H: needs a target file system with hard links
    # a local replica gets plain files copied in-process, without an rsync run per batch
    # (backup/local_copy.py); False: rsync ships everything
    local_copy: bool = True
    # seconds a change may wait for its ship run, the run included (backup/coalesce.py);
    # None: 100 ms to a local target, 400 ms over the network. Wider: fewer runs, less CPU
    latency_budget: float | None = None
    # ssh ControlMaster sockets; must be short (unix socket paths are limited to 108 bytes)
    runtime_dir: Path = Path("/run/sentinel")
    # where the per-target write locks live (backup/target_lock.py); None: runtime_dir.
    # sentinel passes its state directory, the one place the service and sudo both see.
    lock_dir: Path | None = None
    # kind = "archive-log": how the database's closed logs are named (backup/archive_log.py)
    log_naming: LogNaming | None = None
