"""The metrics of reports sentinel makes without a running daemon, and of values it does not
have: Prometheus must see "unknown" as an absent series, never as a 0 that reads like data.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from alerts import schema as alerts_schema
from alerts import status as alerts_status
from sentinel.config.loader import load_config
from sentinel.status import build_report
from sentinel.store import Store, open_readonly
from sentinel.web.metrics import CONTENT_TYPE, render
from sentinel.web.snapshot import Snapshot


def samples(report: dict[str, Any]) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(render(report).decode("utf-8")):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_a_daemon_that_never_ran_is_unknown_and_has_no_heartbeat_age(tmp_path: Path) -> None:
    config_path = tmp_path / "sentinel.toml"
    config_path.write_text(
        f'[site]\nname = "x"\n[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        '[[sensors]]\nid = "leak-ups"\nlocation = "UPS"\nkind = "water_leak"\n'
        'topic = "zigbee2mqtt/leak-ups"\n[mqtt]\nhost = "127.0.0.1"\n',
        encoding="utf-8",
    )
    report = build_report(load_config(config_path))
    assert report["overall"]["state"] == "UNKNOWN"
    found = samples(report)
    assert found["sentinel_overall_state"] == [({}, 3.0)]
    assert found["sentinel_daemon_up"] == [({}, 0.0)]
    assert found["sentinel_up"] == [({}, 1.0)]
    assert "sentinel_heartbeat_age_seconds" not in found
    assert "sentinel_daemon_start_time_seconds" not in found
    assert "sentinel_sensor_value" not in found
    assert found["sentinel_alarms_active"] == [
        ({"severity": "critical"}, 0.0),
        ({"severity": "warning"}, 0.0),
    ]
    assert CONTENT_TYPE.startswith("text/plain")


def test_missing_values_are_absent_not_zero() -> None:
    report: dict[str, Any] = {
        "version": "0.1.0",
        "generated": 1795319183.0,
        "overall": {"state": "WARNING", "reasons": ["..."]},
        "daemon": {"state": "up", "heartbeat_age": 0.4},
        "components": {"state-db": {"task": "running", "durable": False}},
        "sensors": [
            {
                "id": "t1",
                "kind": "temperature",
                "location": "rack",
                "unit": "°C",
                "value": None,
                "age": None,
                "state": "never-seen",
                "silenced": None,
            },
            {
                "id": "leak",
                "kind": "water_leak",
                "location": "UPS",
                "unit": "",
                "value": False,
                "age": 3.0,
                "state": "ok",
                "silenced": {"id": 1},
            },
        ],
        "alarms": [
            {
                "id": "ABCD",
                "sensor_id": "component:alerts",
                "condition": "component",
                "severity": "warning",
                "state": "firing",
                "since": 1795319000.0,
            }
        ],
        "silences": [{"id": 1}],
        "replication": [
            {
                "name": "docs",
                "rpo_seconds": None,
                "pending": None,
                "consecutive_failures": 3,
                "guard_tripped": True,
                "last_success": None,
                "last_verify": {"ts": 1795310000.0, "ok": False, "differences": 2},
            },
            # a keeper whose replication the backup tables do not hold yet (status adds it)
            {
                "name": "hr",
                "keeper": {
                    "room": "main",
                    "safe_as_of": None,
                    "receipt_age": None,
                    "heartbeat_age": 1.0,
                },
            },
        ],
        "alerts": {
            "channels": [
                {
                    "key": "k1",
                    "name": "json://gw/****",
                    "sent": 4,
                    "failed": None,
                    "consecutive_failures": 2,
                    "last_success": None,
                    "last_failure": 1795319100.0,
                    "tags": ["sms"],
                    "service": "JSON",
                    "form": "sms",
                }
            ],
            "outbox_pending": 2,
            "oldest_pending_age": 31.5,
            "all_channels_failing_since": 1795319100.0,
            "fallback_used": 0,
            "last_fallback": None,
        },
    }
    found = samples(report)
    assert found["sentinel_sensor_value"] == [
        ({"sensor": "leak", "kind": "water_leak", "location": "UPS", "unit": ""}, 0.0)
    ]
    assert [labels["sensor"] for labels, _ in found["sentinel_sensor_age_seconds"]] == ["leak"]
    assert ({"sensor": "leak", "kind": "water_leak", "location": "UPS"}, 1.0) in found[
        "sentinel_sensor_silenced"
    ]
    [(labels, value)] = found["sentinel_alarm_active"]
    assert value == 1.0
    assert labels["sensor"] == "component:alerts" and labels["kind"] == "component"
    assert found["sentinel_alarms_active"] == [
        ({"severity": "critical"}, 0.0),
        ({"severity": "warning"}, 1.0),
    ]
    assert "sentinel_replication_rpo_seconds" not in found
    assert "sentinel_replication_pending_changes" not in found
    assert "sentinel_replication_last_success_timestamp_seconds" not in found
    assert found["sentinel_replication_consecutive_failures"] == [({"replication": "docs"}, 3.0)]
    assert found["sentinel_replication_guard_tripped"] == [({"replication": "docs"}, 1.0)]
    assert found["sentinel_replication_last_verify_ok"] == [({"replication": "docs"}, 0.0)]
    assert found["sentinel_replication_last_verify_differences"] == [({"replication": "docs"}, 2.0)]
    assert "sentinel_replication_keeper_safe_as_of_timestamp_seconds" not in found
    assert found["sentinel_replication_keeper_heartbeat_age_seconds"] == [
        ({"replication": "hr", "room": "main"}, 1.0)
    ]
    assert found["sentinel_outbox_oldest_pending_age_seconds"] == [({}, 31.5)]
    assert found["sentinel_alert_channels_all_failing"] == [({}, 1.0)]
    # the modem fallback never used: a count of 0, and no time of a last one
    assert found["sentinel_alert_fallback_messages"] == [({}, 0.0)]
    assert "sentinel_alert_fallback_last_timestamp_seconds" not in found
    assert found["sentinel_alert_channel_sent_total"] == [
        ({"channel": "json://gw/****", "key": "k1"}, 4.0)
    ]
    assert "sentinel_alert_channel_failed_total" not in found  # not migrated: unknown
    assert "sentinel_alert_channel_last_success_timestamp_seconds" not in found
    assert found["sentinel_state_db_durable"] == [({}, 0.0)]
    assert found["sentinel_silences_active"] == [({}, 1.0)]
    assert found["sentinel_overall_state"] == [({}, 1.0)]


async def test_status_reads_channels_before_and_after_the_failed_total_migration(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    old = await Store.open(state)
    await old.migrate(alerts_schema.OWNER, alerts_schema.MIGRATIONS[:2])  # the last release
    await old.close()
    with sqlite3.connect(state / "sentinel.db") as db:
        db.execute(
            "INSERT INTO alert_channel(key, display, service, tags, form, sent_total, "
            "consecutive_failures) VALUES ('k1', 'json://gw/****', 'JSON', '[]', 'sms', 7, 1)"
        )
    db.close()

    def channel() -> dict[str, Any]:
        conn = open_readonly(state)
        assert conn is not None
        try:
            [row] = alerts_status.read_status(conn, 0.0)["channels"]
        finally:
            conn.close()
        return row

    before = channel()
    assert before["sent"] == 7 and before["failed"] is None  # read-only: cannot add the column

    upgraded = await Store.open(state)
    await upgraded.migrate(alerts_schema.OWNER, alerts_schema.MIGRATIONS)
    await upgraded.close()
    after = channel()
    assert after["sent"] == 7 and after["failed"] == 0


async def test_a_report_that_cannot_be_built_scrapes_as_daemon_down(tmp_path: Path) -> None:
    """docs/failure-modes.md: an unreadable state database makes the page UNKNOWN and
    /metrics `sentinel_daemon_up 0`. An absent series fires no `== 0` rule, and the
    heartbeat and durability series are gone too: the scrape must not go quiet."""
    config_path = tmp_path / "sentinel.toml"
    config_path.write_text(
        f'[site]\nname = "x"\n[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        '[mqtt]\nhost = "127.0.0.1"\n',
        encoding="utf-8",
    )

    def unreadable(config: object) -> dict[str, Any]:
        raise sqlite3.DatabaseError("file is not a database")

    snapshot = Snapshot(load_config(config_path), build=unreadable)
    found = samples(await snapshot.report())
    assert found["sentinel_overall_state"] == [({}, 3.0)]
    assert found["sentinel_daemon_up"] == [({}, 0.0)]


def test_the_modem_fallback_is_counted() -> None:
    """A rise of sentinel_alert_fallback_messages is the network channels failing for real."""
    report: dict[str, Any] = {
        "version": "0.1.0",
        "alerts": {"outbox_pending": 0, "fallback_used": 3, "last_fallback": 1795319100.0},
    }
    found = samples(report)
    assert found["sentinel_alert_fallback_messages"] == [({}, 3.0)]
    assert found["sentinel_alert_fallback_last_timestamp_seconds"] == [({}, 1795319100.0)]
