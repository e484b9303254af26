"""Config for alarm rules ([[rules]]). Owned by the alarm-engine work (issue 5)."""

from __future__ import annotations

from sentinel.config.types import Duration, Model


class RuleConfig(Model):
    sensor: str | None = None
    kind: str | None = None
    warn_high: float | None = None
    crit_high: float | None = None
    hysteresis: float = 0.0
    trip_hold: Duration = 0.0
    clear_hold: Duration = 0.0
