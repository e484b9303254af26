"""The one value every source produces, and the health a source reports about itself."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Value = float | bool | str | None


class Kind(StrEnum):
    """What a reading measures. Open-ended on purpose: replication health uses its own kinds."""

    WATER_LEAK = "water_leak"
    SMOKE = "smoke"
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    BATTERY = "battery"
    BATTERY_LOW = "battery_low"
    TAMPER = "tamper"
    AVAILABILITY = "availability"
    # replication health, produced by the daemon from backup/ and fed through the same rules
    REPLICATION_LAG = "replication_lag"
    REPLICATION_FAILURES = "replication_failures"
    REPLICATION_GUARD = "replication_guard"
    REPLICATION_VERIFY = "replication_verify"
    REPLICATION_SOURCE_MISSING = "replication_source_missing"
    REPLICATION_TARGET_MISSING = "replication_target_missing"
    REPLICATION_QUARANTINE = "replication_quarantine"  # paths rsync/the kernel refuse
    # source paths the daemon's account may not read (set aside, named in the alarm)
    REPLICATION_UNREADABLE = "replication_unreadable"
    REPLICATION_KEEPER = "replication_keeper"  # the keeper stopped confirming (issue 11)
    WATCH_LIMIT = "watch_limit"
    # a supervised part of sentinel itself in a restart loop (pseudo-sensor "component:<name>")
    COMPONENT = "component"
    # the broker dropped the MQTT session sentinel expected it to hold (pseudo-sensor
    # "source:<name>"): what it queued while sentinel was away may be lost
    MQTT_SESSION_LOST = "mqtt_session_lost"
    # the keeper (health-center role): a room whose heartbeat stopped ("room:<name>"), the
    # same while a critical alarm was active (a likely disaster), a snapshot that found a
    # mass deletion or rewrite, snapshots failing, and the keeper's own disks ("keeper:...")
    ROOM_SILENT = "room_silent"
    ROOM_DISASTER = "room_disaster"
    LANDING_MASS_CHANGE = "landing_mass_change"
    KEEPER_SNAPSHOT_FAILURES = "keeper_snapshot_failures"
    KEEPER_DISK_FREE = "keeper_disk_free"


UNITS: dict[str, str] = {
    Kind.TEMPERATURE: "°C",
    Kind.HUMIDITY: "%",
    Kind.BATTERY: "%",
    Kind.REPLICATION_LAG: "s",
    Kind.KEEPER_DISK_FREE: "%",
}


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
