"""Apprise channels loaded from Apprise's own YAML config (stub until issue 5 lands)."""

from __future__ import annotations

from pathlib import Path


def count_channels(path: Path) -> int:
    """How many notification URLs the Apprise config file holds."""
    import apprise

    config = apprise.AppriseConfig()
    config.add(str(path))
    obj = apprise.Apprise()
    obj.add(config)
    return len(obj)
