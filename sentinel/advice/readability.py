"""check-config's warnings about documents the service account cannot read."""

from __future__ import annotations

from sentinel.config import Config


def readability_advice(config: Config, user: str | None) -> list[str]:
    return []
