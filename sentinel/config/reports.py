"""[reports]: the paperwork sentinel writes from the live config (`sentinel report ...`).

The security-review pack (보안성 검토) and the recovery runbook (복구 절차서) go stale the day
the config changes; status warns then, and when the last successful restore drill is older
than `drill_max_age` (Korean guidance asks for recorded, periodic restore drills)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from sentinel.config.types import ConfigPath, Duration, Model


class ReportsConfig(Model):
    # the language of both documents; `--lang` overrides it for one run
    lang: Literal["ko", "en"] = "ko"
    # where `sentinel report ...` writes when no --output is given (default: <state_dir>/reports)
    dir: ConfigPath | None = None
    # the runbook restores into this directory on the replacement host (never the source)
    restore_dir: ConfigPath = Path("/srv/sentinel-restore")
    # status warns when the newest successful drill of a replication is older than this
    drill_max_age: Duration = Field(90 * 86400.0, gt=0)
    # the people the runbook names (role, name, phone); optional, printed as given
    contacts: list[Contact] = []


class Contact(Model):
    role: str = Field(min_length=1, max_length=80)
    name: str = Field(min_length=1, max_length=80)
    phone: str = Field("", max_length=40)


ReportsConfig.model_rebuild()
