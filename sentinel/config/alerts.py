"""Config for alert delivery ([alerts]). Owned by the alerts work (issue 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from common.states import Severity
from sentinel.config.types import ConfigPath, Duration, Model

SEVERITIES = tuple(str(s) for s in Severity)
TEMPLATE_NAME = (
    r"^(sms|long)\.(firing|repeat|escalated|acknowledged|resolved|test|group|silenced|unsilenced)"
    r"(\.title)?$"
)


class AlertsConfig(Model):
    """How alarms reach people: which Apprise channels, routed how, worded how.

    Channels live in Apprise's own YAML file (`apprise_config`); `routes` maps each alarm
    severity to the Apprise tags that receive it (escalation tags come with the event).
    """

    apprise_config: ConfigPath | None = None
    language: Literal["ko", "en"] = "ko"
    # Alarms for the same channel within this window after a message go out as one message.
    group_window: Duration = 10.0
    send_timeout: Duration = Field(10.0, gt=0)
    routes: dict[str, list[str]] = {
        "critical": ["critical"],
        "warning": ["warning"],
        "info": ["info"],
    }
    retry_max: Duration = Field(300.0, gt=0)
    all_failed_after: Duration = Field(300.0, gt=0)
    # Channels with these tags (a modem://) also get an event once every channel it was
    # routed to has been failing for fallback_after; see alerts/sender.py.
    fallback_tags: list[str] = []
    fallback_after: Duration = Field(120.0, gt=0)
    # Per-deployment wording: a directory of `<form>.<event>.txt` files and/or inline strings
    # keyed the same way (e.g. "sms.firing"); inline strings win.
    template_dir: ConfigPath | None = None
    templates: dict[str, str] = {}
    # A county's own Apprise plugins (`@notify` functions in *.py files), loaded before
    # the Apprise config so its URLs can use their schemes.
    plugin_dir: ConfigPath | None = None

    @field_validator("routes")
    @classmethod
    def _known_severities(cls, routes: dict[str, list[str]]) -> dict[str, list[str]]:
        for severity in routes:
            if severity not in SEVERITIES:
                raise ValueError(
                    f"routes has unknown severity {severity!r} (use {', '.join(SEVERITIES)})"
                )
        return routes

    @field_validator("template_dir", "plugin_dir")
    @classmethod
    def _relative_to_config(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        # like apprise_config, a relative path is relative to sentinel.toml, not the cwd
        base = (info.context or {}).get("base_dir")
        if path is not None and base is not None and not path.is_absolute():
            return Path(base) / path
        return path

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, templates: dict[str, str]) -> dict[str, str]:
        import re

        for name in templates:
            if not re.match(TEMPLATE_NAME, name):
                raise ValueError(
                    f'unknown template name {name!r} (expected e.g. "sms.firing", '
                    '"long.resolved", "long.firing.title")'
                )
        return templates
