"""What a report is rendered from: the loaded config, its fingerprint, the time, the
language, and a read-only view of the state database (drill records, replication state)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from sentinel.config import Config

Lang = Literal["ko", "en"]


@dataclass(frozen=True)
class ReportContext:
    config: Config
    config_path: Path
    config_hash: str
    generated: float  # wall clock, seconds since the epoch
    lang: Lang
    # None: the daemon never ran here (no state database yet)
    state: sqlite3.Connection | None
    # the runbook restores into this directory (--restore-dir, else [reports] restore_dir)
    restore_dir: Path

    def t(self, ko: str, en: str) -> str:
        """The text in the report's language."""
        return ko if self.lang == "ko" else en

    def when(self, ts: float) -> str:
        """A local wall-clock time as printed on paper: 2026-12-02 21:53:13 +0900."""
        return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
