"""check-config's warnings about how replicated records cross the network."""

from __future__ import annotations

from sentinel.config import Config


def transport_advice(config: Config) -> list[str]:
    return []
