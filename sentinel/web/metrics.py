"""Prometheus `/metrics`: the status report (`sentinel status --json`) as metrics.

One collector turns one report into metric families at scrape time, so Prometheus sees the
same numbers as `sentinel status`, with nothing kept in a second set of counters that could
drift from it. A value the report does not have (a sensor never seen, no verify yet) is left
out, never exported as 0: a 0 would read as data. Channels are labelled by their masked URL
and key only; the report never holds a secret, and neither does this.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from sentinel.web.context import CTX

CONTENT_TYPE = CONTENT_TYPE_LATEST

# `sentinel status` verdicts, in the order of their Nagios exit codes
OVERALL_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
# every state a sensor row can have (docs/status.md); one 0/1 series each, so a rule on
# state="lost" sees the 1 -> 0 change instead of a series that vanishes
SENSOR_STATES = ("ok", "alarm", "lost", "fault", "never-seen")
SEVERITIES = ("critical", "warning")

SENSOR_LABELS = ["sensor", "kind", "location"]
ALARM_LABELS = ["alarm", "sensor", "kind", "location", "severity", "state"]
CHANNEL_LABELS = ["channel", "key"]


class ReportCollector(Collector):
    """Metrics from the status report `report()` returns at each scrape."""

    def __init__(self, report: Callable[[], dict[str, Any]]) -> None:
        self._report = report

    def collect(self) -> Iterator[Metric]:
        report = self._report()
        yield from _daemon(report)
        yield from _sensors(report.get("sensors") or [])
        yield from _alarms(report.get("alarms") or [], report.get("silences") or [])
        yield from _replication(report.get("replication") or [])
        yield from _alerts(report.get("alerts") or {})
        yield from _components(report.get("components") or {})
        yield from _rooms(report.get("rooms") or [])


def render(report: dict[str, Any]) -> bytes:
    """The Prometheus text exposition of one report."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(lambda: report))
    return generate_latest(registry)


def routes(app: web.Application) -> None:
    app.router.add_get("/metrics", _metrics)


async def _metrics(request: web.Request) -> web.Response:
    """No login: Prometheus cannot log in, and the scrape holds no secret; `metrics = false`
    turns it off (docs/monitoring.md)."""
    ctx = request.app[CTX]
    if not ctx.web.metrics:
        raise web.HTTPNotFound(text="/metrics is off ([web] metrics = false)")
    report = await ctx.snapshot.report()
    # a few milliseconds for 20 sensors: not on the loop that delivers pages
    body = await ctx.read(render, report)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _number(value: Any) -> float | None:
    """A report value as a sample: booleans as 0/1, None and anything else as missing."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def _ratio(percent: Any) -> float | None:
    number = _number(percent)
    return None if number is None else number / 100


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], Any]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        sample = _number(value)
        if sample is not None:
            family.add_metric(values, sample)
    return family


def _counter(
    name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], Any]]
) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        sample = _number(value)
        if sample is not None:
            family.add_metric(values, sample)
    return family


def _daemon(report: dict[str, Any]) -> Iterator[Metric]:
    daemon = report.get("daemon") or {}
    # whoever answers this scrape is up; absent(sentinel_up) is "sentinel itself is down"
    yield _gauge("sentinel_up", "1 while sentinel answers the scrape", [], [([], 1)])
    info = InfoMetricFamily("sentinel_build", "Version of sentinel and of its Python")
    info.add_metric([], {"version": _text(report.get("version")), "python": _python()})
    yield info
    yield _gauge(
        "sentinel_daemon_up",
        "1 when the status report counts the daemon up (fresh heartbeat, live pid)",
        [],
        # 0, not absent, when the report could not be built (no daemon part): an absent
        # series fires no `== 0` rule, and nothing then can vouch for the daemon
        [([], daemon.get("state") == "up")],
    )
    yield _gauge(
        "sentinel_daemon_start_time_seconds",
        "When the running daemon started (Unix time)",
        [],
        [([], daemon.get("started"))],
    )
    yield _gauge(
        "sentinel_heartbeat_age_seconds",
        "Seconds since the daemon's last heartbeat, as of the report",
        [],
        [([], daemon.get("heartbeat_age"))],
    )
    yield _gauge(
        "sentinel_report_timestamp_seconds",
        "When the status report these metrics come from was made (Unix time)",
        [],
        [([], report.get("generated"))],
    )
    state = (report.get("overall") or {}).get("state")
    yield _gauge(
        "sentinel_overall_state",
        "The verdict of sentinel status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
        [],
        [([], OVERALL_STATES.index(state))] if state in OVERALL_STATES else [],
    )


def _python() -> str:
    return platform.python_version()


def _sensor_labels(sensor: dict[str, Any]) -> list[str]:
    return [_text(sensor.get("id")), _text(sensor.get("kind")), _text(sensor.get("location"))]


def _sensors(sensors: list[dict[str, Any]]) -> Iterator[Metric]:
    yield _gauge(
        "sentinel_sensor_value",
        "The sensor's last reading in its unit; leak, smoke and other booleans as 0/1",
        [*SENSOR_LABELS, "unit"],
        (([*_sensor_labels(s), _text(s.get("unit"))], s.get("value")) for s in sensors),
    )
    yield _gauge(
        "sentinel_sensor_age_seconds",
        "Seconds since the sensor's last reading",
        SENSOR_LABELS,
        ((_sensor_labels(s), s.get("age")) for s in sensors),
    )
    states = GaugeMetricFamily(
        "sentinel_sensor_state",
        "1 for the sensor's current state (ok, alarm, lost, fault, never-seen), else 0",
        labels=[*SENSOR_LABELS, "state"],
    )
    for s in sensors:
        current = s.get("state")
        if current is None:
            continue
        for name in dict.fromkeys((*SENSOR_STATES, str(current))):
            states.add_metric([*_sensor_labels(s), name], 1.0 if name == current else 0.0)
    yield states
    yield _gauge(
        "sentinel_sensor_silenced",
        "1 while a silence covers the sensor",
        SENSOR_LABELS,
        ((_sensor_labels(s), s.get("silenced") is not None) for s in sensors),
    )


def _alarms(alarms: list[dict[str, Any]], silences: list[dict[str, Any]]) -> Iterator[Metric]:
    def labels(a: dict[str, Any]) -> list[str]:
        return [
            _text(a.get("id")),
            _text(a.get("sensor") or a.get("sensor_id") or a.get("subject")),
            _text(a.get("kind") or a.get("condition")),
            _text(a.get("location")),
            _text(a.get("severity")),
            _text(a.get("state")),
        ]

    yield _gauge(
        "sentinel_alarm_active",
        "1 for each active alarm (firing, acknowledged, latched...)",
        ALARM_LABELS,
        ((labels(a), 1) for a in alarms),
    )
    yield _gauge(
        "sentinel_alarm_since_timestamp_seconds",
        "When each active alarm began (Unix time)",
        ALARM_LABELS,
        ((labels(a), a.get("since")) for a in alarms),
    )
    counts = dict.fromkeys(SEVERITIES, 0)
    for a in alarms:
        severity = _text(a.get("severity"))
        counts[severity] = counts.get(severity, 0) + 1
    yield _gauge(
        "sentinel_alarms_active",
        "Active alarms by severity",
        ["severity"],
        (([severity], n) for severity, n in counts.items()),
    )
    yield _gauge("sentinel_silences_active", "Silences in force", [], [([], len(silences))])


def _replication(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    def each(value: Callable[[dict[str, Any]], Any]) -> Iterator[tuple[list[str], Any]]:
        return (([_text(r.get("name"))], value(r)) for r in rows)

    def verify(r: dict[str, Any]) -> dict[str, Any]:
        return r.get("last_verify") or {}

    label = ["replication"]
    yield _gauge(
        "sentinel_replication_rpo_seconds",
        "Age of the oldest change not yet at the target (the data a disaster would lose)",
        label,
        each(lambda r: r.get("rpo_seconds")),
    )
    yield _gauge(
        "sentinel_replication_data_rpo_seconds",
        "Archive-log replication: age of the newest closed log a restore reaches (every "
        "earlier one arrived)",
        label,
        each(lambda r: r.get("data_rpo_seconds")),
    )
    yield _gauge(
        "sentinel_replication_pending_changes",
        "Changed paths waiting to be shipped",
        label,
        each(lambda r: r.get("pending")),
    )
    yield _gauge(
        "sentinel_replication_consecutive_failures",
        "Failed transfers since the last success",
        label,
        each(lambda r: r.get("consecutive_failures")),
    )
    yield _gauge(
        "sentinel_replication_guard_tripped",
        "1 while the mass-change guard holds replication",
        label,
        each(lambda r: r.get("guard_tripped")),
    )
    yield _gauge(
        "sentinel_replication_last_success_timestamp_seconds",
        "Last successful transfer (Unix time)",
        label,
        each(lambda r: r.get("last_success")),
    )
    yield _gauge(
        "sentinel_replication_last_full_reconcile_timestamp_seconds",
        "Last full pass over the source (Unix time)",
        label,
        each(lambda r: r.get("last_full_reconcile")),
    )
    yield _gauge(
        "sentinel_replication_last_verify_timestamp_seconds",
        "Last checksum verify of the replica (Unix time)",
        label,
        each(lambda r: verify(r).get("ts")),
    )
    yield _gauge(
        "sentinel_replication_last_verify_ok",
        "1 when the last verify found the replica equal to the source",
        label,
        each(lambda r: verify(r).get("ok")),
    )
    yield _gauge(
        "sentinel_replication_last_verify_differences",
        "Paths the last verify found different",
        label,
        each(lambda r: verify(r).get("differences")),
    )
    yield _gauge(
        "sentinel_replication_quarantined_paths",
        "Paths set aside because rsync or the kernel refuses them",
        label,
        each(lambda r: (r.get("quarantine") or {}).get("count")),
    )
    keepers = [r for r in rows if isinstance(r.get("keeper"), dict)]

    def keeper(field: str) -> Iterator[tuple[list[str], Any]]:
        return (
            ([_text(r.get("name")), _text(r["keeper"].get("room"))], r["keeper"].get(field))
            for r in keepers
        )

    yield _gauge(
        "sentinel_replication_keeper_safe_as_of_timestamp_seconds",
        "The keeper's newest receipt: data safe at the keeper as of (room clock, Unix time)",
        ["replication", "room"],
        keeper("safe_as_of"),
    )
    yield _gauge(
        "sentinel_replication_keeper_receipt_age_seconds",
        "Age of the keeper's newest receipt",
        ["replication", "room"],
        keeper("receipt_age"),
    )
    yield _gauge(
        "sentinel_replication_keeper_heartbeat_age_seconds",
        "Seconds since a heartbeat was last shipped to the keeper",
        ["replication", "room"],
        keeper("heartbeat_age"),
    )


def _alerts(alerts: dict[str, Any]) -> Iterator[Metric]:
    yield _gauge(
        "sentinel_outbox_pending_messages",
        "Messages in the outbox not yet delivered",
        [],
        [([], alerts.get("outbox_pending"))],
    )
    yield _gauge(
        "sentinel_outbox_oldest_pending_age_seconds",
        "Age of the oldest undelivered message (absent when none waits)",
        [],
        [([], alerts.get("oldest_pending_age"))],
    )
    yield _gauge(
        "sentinel_outbox_undeliverable_messages",
        "Outbox rows set aside because no message could be made of them",
        [],
        [([], alerts.get("undeliverable"))],
    )
    yield _gauge(
        "sentinel_alert_fallback_messages",
        "Messages sent through a fallback channel (modem) because their channels kept failing",
        [],
        [([], alerts.get("fallback_used"))],
    )
    yield _gauge(
        "sentinel_alert_fallback_last_timestamp_seconds",
        "The last message handed to a fallback channel (Unix time; absent when never)",
        [],
        [([], alerts.get("last_fallback"))],
    )
    if "channels" in alerts:
        yield _gauge(
            "sentinel_alert_channels_all_failing",
            "1 while every alert channel that was tried is failing",
            [],
            [([], alerts.get("all_channels_failing_since") is not None)],
        )
    channels = [c for c in alerts.get("channels") or [] if isinstance(c, dict)]

    def each(field: str) -> Iterator[tuple[list[str], Any]]:
        # the masked URL (what status shows) and the key that tells two alike apart
        return (([_text(c.get("name")), _text(c.get("key"))], c.get(field)) for c in channels)

    info = InfoMetricFamily(
        "sentinel_alert_channel",
        "Each alert channel: service, tags, message form",
        labels=CHANNEL_LABELS,
    )
    for c in channels:
        info.add_metric(
            [_text(c.get("name")), _text(c.get("key"))],
            {
                "service": _text(c.get("service")),
                "tags": ",".join(str(t) for t in c.get("tags") or []),
                "form": _text(c.get("form")),
            },
        )
    yield info
    yield _counter(
        "sentinel_alert_channel_sent",
        "Messages the channel accepted",
        CHANNEL_LABELS,
        each("sent"),
    )
    yield _counter(
        "sentinel_alert_channel_failed",
        "Send attempts the channel failed",
        CHANNEL_LABELS,
        each("failed"),
    )
    yield _gauge(
        "sentinel_alert_channel_consecutive_failures",
        "Failed attempts since the channel's last success",
        CHANNEL_LABELS,
        each("consecutive_failures"),
    )
    yield _gauge(
        "sentinel_alert_channel_pending_messages",
        "Messages waiting for this channel",
        CHANNEL_LABELS,
        each("pending"),
    )
    yield _gauge(
        "sentinel_alert_channel_last_success_timestamp_seconds",
        "The channel's last accepted message (Unix time)",
        CHANNEL_LABELS,
        each("last_success"),
    )
    yield _gauge(
        "sentinel_alert_channel_last_failure_timestamp_seconds",
        "The channel's last failed attempt (Unix time)",
        CHANNEL_LABELS,
        each("last_failure"),
    )


def _components(components: dict[str, Any]) -> Iterator[Metric]:
    parts = [(str(name), c) for name, c in components.items() if isinstance(c, dict)]

    def each(field: str) -> Iterator[tuple[list[str], Any]]:
        return (([name], c.get(field)) for name, c in parts)

    label = ["component"]
    yield _counter(
        "sentinel_component_restarts",
        "Restarts of each supervised part since the daemon started",
        label,
        each("restarts"),
    )
    yield _gauge(
        "sentinel_component_restarts_in_window",
        "Failures within [daemon] restart_alarm_window",
        label,
        each("restarts_in_window"),
    )
    yield _gauge(
        "sentinel_component_failing",
        "1 while the part fails more often than restart_alarm_count allows",
        label,
        each("failing"),
    )
    yield _gauge(
        "sentinel_component_running",
        "1 while the part's task runs (0 while it waits to be restarted or stopped)",
        label,
        (([name], c.get("task") == "running") for name, c in parts if c.get("task")),
    )
    # issue 16: an archive-log replication's watch ("database:<name>", its health)
    yield _gauge(
        "sentinel_database_base_backup_age_seconds",
        "Age of the newest base backup of each archive-log replication (absent: none found)",
        ["replication"],
        (
            ([name.removeprefix("database:")], c.get("base_backup_age"))
            for name, c in parts
            if name.startswith("database:")
        ),
    )
    state_db = components.get("state-db")
    if isinstance(state_db, dict):
        yield _gauge(
            "sentinel_state_db_durable",
            "0 while the daemon cannot write its state database (it runs from memory)",
            [],
            [([], state_db.get("durable"))],
        )


def _rooms(rooms: list[dict[str, Any]]) -> Iterator[Metric]:
    """The keeper role's rooms (only in a keeper's report)."""
    if not rooms:
        return

    def each(field: str) -> Iterator[tuple[list[str], Any]]:
        return (([_text(r.get("room"))], r.get(field)) for r in rooms if isinstance(r, dict))

    label = ["room"]
    yield _gauge(
        "sentinel_keeper_room_heartbeat_age_seconds",
        "Seconds since the room's last heartbeat arrived",
        label,
        each("heartbeat_age"),
    )
    yield _gauge(
        "sentinel_keeper_room_silent",
        "1 once the room has been silent longer than its silent_after",
        label,
        each("silent"),
    )
    yield _gauge(
        "sentinel_keeper_room_safe_as_of_timestamp_seconds",
        "Data from the room safe in a snapshot as of (Unix time)",
        label,
        each("safe_as_of"),
    )
    yield _gauge(
        "sentinel_keeper_room_snapshots",
        "Snapshots kept for the room",
        label,
        each("snapshot_count"),
    )
    yield _gauge(
        "sentinel_keeper_room_landing_disk_free_ratio",
        "Free fraction of the room's landing area's filesystem",
        label,
        ((lbl, _ratio(percent)) for lbl, percent in each("landing_disk_free")),
    )
