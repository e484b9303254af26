"""What a reading measures, and the groups of kinds that the sources, the config and the
alarm rules each treat alike. One list, so a new kind cannot be known to one and not another."""

from __future__ import annotations

from enum import StrEnum


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
    # an archive-log replication's sequence has a hole no restore can cross (issue 16)
    REPLICATION_LOG_GAP = "replication_log_gap"
    # `sentinel backup drill --database` (issue 16): the last one failed, or the last
    # successful one is older than drill.max_age (or there never was one)
    DATABASE_DRILL_FAILED = "database_drill_failed"
    DATABASE_DRILL_OVERDUE = "database_drill_overdue"
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
    # issue 15: a door or contact (True = open; Zigbee2MQTT's `contact` is True when closed),
    # and an output (siren, beacon) sentinel could not switch (pseudo-sensor "output:<name>")
    DOOR = "door"
    OUTPUT = "output"
    # a UPS through NUT (sensors/nut.py, issue 15): seconds on battery (0 on mains), the
    # status flags LB / RB / OVER / BYPASS / OFF, and the UPS's own measurements
    UPS_ON_BATTERY = "ups_on_battery"
    UPS_BATTERY_LOW = "ups_battery_low"
    UPS_REPLACE_BATTERY = "ups_replace_battery"
    UPS_OVERLOAD = "ups_overload"
    UPS_BYPASS = "ups_bypass"
    UPS_OUTPUT_OFF = "ups_output_off"
    UPS_CHARGE = "ups_charge"
    UPS_RUNTIME = "ups_runtime"
    UPS_INPUT_VOLTAGE = "ups_input_voltage"
    UPS_LOAD = "ups_load"
    # a database's archive-log replication (issue 16, pseudo-sensor "database:<name>"): its
    # log switch fails, and its newest base backup is too old, missing or cannot be told
    DATABASE_SWITCH_FAILING = "database_switch_failing"
    DATABASE_BASE_BACKUP_AGE = "database_base_backup_age"


UNITS: dict[str, str] = {
    Kind.TEMPERATURE: "°C",
    Kind.HUMIDITY: "%",
    Kind.BATTERY: "%",
    Kind.REPLICATION_LAG: "s",
    Kind.KEEPER_DISK_FREE: "%",
    Kind.UPS_ON_BATTERY: "s",
    Kind.UPS_CHARGE: "%",
    Kind.UPS_RUNTIME: "s",
    Kind.UPS_INPUT_VOLTAGE: "V",
    Kind.UPS_LOAD: "%",
}

# A UPS through NUT (sensors/nut.py): its status flags, each an on/off trouble, and all it reports.
UPS_FLAG_KINDS = frozenset(
    {
        Kind.UPS_BATTERY_LOW,
        Kind.UPS_REPLACE_BATTERY,
        Kind.UPS_OVERLOAD,
        Kind.UPS_BYPASS,
        Kind.UPS_OUTPUT_OFF,
    }
)
UPS_KINDS: tuple[Kind, ...] = (
    Kind.UPS_ON_BATTERY,
    *sorted(UPS_FLAG_KINDS),
    Kind.UPS_CHARGE,
    Kind.UPS_RUNTIME,
    Kind.UPS_INPUT_VOLTAGE,
    Kind.UPS_LOAD,
)

# What a physical [[sensors]] entry can measure: availability is the source's own say, and
# the rest are sentinel's pseudo-sensors.
SENSOR_KINDS: tuple[Kind, ...] = (
    Kind.WATER_LEAK,
    Kind.SMOKE,
    Kind.TEMPERATURE,
    Kind.HUMIDITY,
    Kind.BATTERY,
    Kind.BATTERY_LOW,
    Kind.TAMPER,
    Kind.DOOR,
    *UPS_KINDS,
)

# Sensors that page at once: they get a broker connection of their own (sentinel/sources.py)
# so a flood of telemetry cannot queue in front of them.
SAFETY_KINDS = frozenset({Kind.WATER_LEAK, Kind.SMOKE})

# Kinds a device reports as on/off; every other physical kind is analog (a float).
BINARY_KINDS = (
    frozenset(
        {Kind.WATER_LEAK, Kind.SMOKE, Kind.TAMPER, Kind.BATTERY_LOW, Kind.AVAILABILITY, Kind.DOOR}
    )
    | UPS_FLAG_KINDS
)

# Replication health arrives for ids like "replication:docs" that are not [[sensors]].
REPLICATION_KINDS = frozenset(
    {
        Kind.REPLICATION_LAG,
        Kind.REPLICATION_FAILURES,
        Kind.REPLICATION_GUARD,
        Kind.REPLICATION_VERIFY,
        Kind.REPLICATION_QUARANTINE,
        Kind.REPLICATION_UNREADABLE,
        Kind.WATCH_LIMIT,
        Kind.REPLICATION_SOURCE_MISSING,
        Kind.REPLICATION_TARGET_MISSING,
        Kind.REPLICATION_KEEPER,
        Kind.REPLICATION_LOG_GAP,
        Kind.DATABASE_DRILL_FAILED,
        Kind.DATABASE_DRILL_OVERDUE,
    }
)
# A supervised component in a restart loop, for ids like "component:alerts".
COMPONENT_KIND = Kind.COMPONENT
# The broker dropped sentinel's MQTT session, for ids like "source:mqtt" (sensors/mqtt.py).
SESSION_KIND = Kind.MQTT_SESSION_LOST
# A siren or beacon sentinel could not switch, for ids like "output:siren" (sentinel/outputs.py).
OUTPUT_KIND = Kind.OUTPUT
# What the keeper watches, for ids like "room:main" and "keeper:disk:/srv/keeper".
KEEPER_KINDS = frozenset(
    {
        Kind.ROOM_SILENT,
        Kind.ROOM_DISASTER,
        Kind.LANDING_MASS_CHANGE,
        Kind.KEEPER_SNAPSHOT_FAILURES,
        Kind.KEEPER_DISK_FREE,
    }
)
# A database's log switch and base backup, for ids like "database:onnara-db" (issue 16).
DATABASE_KINDS = frozenset({Kind.DATABASE_SWITCH_FAILING, Kind.DATABASE_BASE_BACKUP_AGE})
# Readings for pseudo-sensors that are not [[sensors]]: sentinel's own health, and the rooms
# a keeper watches.
SELF_KINDS = (
    REPLICATION_KINDS | {COMPONENT_KIND, SESSION_KIND, OUTPUT_KIND} | KEEPER_KINDS | DATABASE_KINDS
)

# Kinds whose value is a bool where True is the trouble (the alarm rules' view: availability
# is binary too, but False is its trouble, and battery_low has a rule of its own).
BOOLEAN_KINDS = (
    frozenset(
        {
            Kind.WATER_LEAK,
            Kind.SMOKE,
            Kind.TAMPER,
            Kind.REPLICATION_GUARD,
            Kind.REPLICATION_VERIFY,
            Kind.WATCH_LIMIT,
            Kind.REPLICATION_SOURCE_MISSING,
            Kind.REPLICATION_TARGET_MISSING,
            Kind.COMPONENT,
            Kind.ROOM_SILENT,
            Kind.ROOM_DISASTER,
            Kind.LANDING_MASS_CHANGE,
            Kind.REPLICATION_KEEPER,
            Kind.DATABASE_DRILL_FAILED,
            Kind.DATABASE_DRILL_OVERDUE,
            Kind.REPLICATION_UNREADABLE,
            Kind.REPLICATION_LOG_GAP,
            Kind.MQTT_SESSION_LOST,
            Kind.DOOR,
            Kind.OUTPUT,
        }
    )
    | UPS_FLAG_KINDS
    | DATABASE_KINDS
)
