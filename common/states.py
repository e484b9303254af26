"""How bad an alarm is and where it is in its life: the words stored in the state database,
sent to the alerts and shown by `sentinel status`."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    # announcements only (acks, silences); no alarm condition has it
    INFO = "info"


# Which of two severities is worse; None is "no condition at all".
SEVERITY_RANK: dict[str | None, int] = {None: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlarmState(StrEnum):
    NORMAL = "normal"
    PENDING = "pending"
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"  # cleared during the trip hold: never fired


# An alarm in one of these is open: it shows in status and blocks a new alarm of its subject.
ACTIVE_STATES: tuple[AlarmState, ...] = (
    AlarmState.PENDING,
    AlarmState.FIRING,
    AlarmState.ACKNOWLEDGED,
)
