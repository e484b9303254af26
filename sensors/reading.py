"""The one value every source produces, and the health a source reports about itself."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from common.kinds import UNITS, Kind

# Kind and UNITS live in common/kinds.py; named here too because every source and many
# callers already take them from where a Reading is.
__all__ = ["UNITS", "Kind", "Reading", "SourceHealth", "Value"]

Value = float | bool | str | None


@dataclass(frozen=True, slots=True)
class Reading:
    """One observation of one configured sensor.

    `value` is a bool for binary kinds (leak, smoke, tamper, battery_low, availability:
    True = online), a float for analog kinds. When `fault` is set the sensor reported
    something physically impossible or an error code; `value` is then None and the
    reading must never trip a leak/fire/heat alarm, only a sensor-fault one.
    `detail`, when set, is the human reason an alarm this reading raises carries (e.g. a
    failing component's last error) instead of the generic "<kind> detected".
    """

    sensor_id: str
    kind: str
    value: Value
    unit: str = ""
    ts: float = field(default_factory=time.time)
    source: str = ""
    fault: str | None = None
    detail: str | None = None
    # `detail` as a code of alerts/reasons.py and its parameters, so an alarm's message can
    # be worded in the alerts' language; a detail without a code is already in that language
    cause: str | None = None
    params: dict[str, Any] | None = None


@dataclass(slots=True)
class SourceHealth:
    """What a source says about itself; shown in `sentinel status` under its component."""

    state: str = "starting"  # starting | connected | disconnected | error
    last_error: str | None = None
    received: int = 0
    decoded: int = 0
    rejected: int = 0  # malformed payloads, garbled lines, unanswered polls
    last_message_ts: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "last_error": self.last_error,
            "received": self.received,
            "decoded": self.decoded,
            "rejected": self.rejected,
            "last_message_ts": self.last_message_ts,
            **self.details,
        }
