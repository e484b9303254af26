"""Config for replication sources ([[replication]]). Owned by the backup work (issue 6)."""

from __future__ import annotations

from pathlib import Path

from sentinel.config.types import Model


class ReplicationConfig(Model):
    name: str
    source: Path
    target: str
