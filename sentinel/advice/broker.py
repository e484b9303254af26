"""check-config's warnings about the MQTT broker connection."""

from __future__ import annotations

from sentinel.config import Config


def broker_advice(config: Config) -> list[str]:
    return []
