"""Config for alert delivery ([alerts]). Owned by the alerts work (issue 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sentinel.config.types import Duration, Model


class AlertsConfig(Model):
    apprise_config: Path | None = None
    language: Literal["ko", "en"] = "ko"
    group_window: Duration = 10.0
    send_timeout: Duration = 10.0
