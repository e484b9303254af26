"""docs/monitoring.md and docs/grafana-sentinel.json against what /metrics serves: a rule or
a panel that names a metric sentinel does not export never fires or draws, silently. So every
name they use must be one the collector yields, every query must parse (promtool, Debian's
`prometheus` package), the alert rules must fire on the situations they name, and every
exported metric is documented."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sentinel.web.metrics import render

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "docs" / "monitoring.md"
DASHBOARD = ROOT / "docs" / "grafana-sentinel.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: apt-get install prometheus"
)

# a report with every section filled (a room daemon with a keeper, and a keeper's rooms)
FULL_REPORT: dict[str, Any] = {
    "version": "0.1.0",
    "generated": 1795319183.0,
    "overall": {"state": "CRITICAL", "reasons": ["..."]},
    "daemon": {"state": "up", "started": 1795318813.5, "heartbeat_age": 0.8},
    "components": {
        "alarms": {"task": "running", "restarts": 1, "restarts_in_window": 1, "failing": False},
        "state-db": {"task": "running", "durable": True},
    },
    "sensors": [
        {
            "id": "temp-rack1",
            "kind": "temperature",
            "location": "rack",
            "unit": "°C",
            "value": 24.5,
            "age": 3.0,
            "state": "ok",
            "silenced": None,
        }
    ],
    "alarms": [
        {
            "id": "EYDH",
            "sensor": "leak-ups",
            "kind": "water_leak",
            "location": "UPS",
            "severity": "critical",
            "state": "firing",
            "since": 1795318843.5,
        }
    ],
    "silences": [],
    "replication": [
        {
            "name": "onnara",
            "rpo_seconds": 0.4,
            "data_rpo_seconds": 42.7,  # as an archive-log replication has (issue 16)
            "pending": 3,
            "last_success": 1795318855.6,
            "consecutive_failures": 0,
            "last_full_reconcile": 1795318813.9,
            "guard_tripped": False,
            "last_verify": {"ts": 1795310000.0, "ok": True, "differences": 0},
            "quarantine": {"count": 0},
            "keeper": {
                "room": "main",
                "safe_as_of": 1795318852.0,
                "receipt_age": 4.9,
                "heartbeat_age": 2.0,
            },
        }
    ],
    "alerts": {
        "channels": [
            {
                "key": "436ba09067",
                "name": "json://sms-gateway/****",
                "service": "JSON",
                "tags": ["critical"],
                "form": "sms",
                "last_success": 1795318843.5,
                "last_failure": 1795318800.0,
                "consecutive_failures": 0,
                "sent": 2,
                "failed": 1,
                "pending": 0,
            }
        ],
        "outbox_pending": 1,
        "oldest_pending_age": 3.0,
        "all_channels_failing_since": None,
        "undeliverable": 0,
        "fallback_used": 1,
        "last_fallback": 1795318850.0,
    },
    "rooms": [
        {
            "room": "main",
            "heartbeat_age": 2.0,
            "silent": False,
            "safe_as_of": 1795318852.0,
            "snapshot_count": 12,
            "landing_disk_free": 71.5,
        }
    ],
}


def exported() -> tuple[set[str], set[str]]:
    """(family names, sample names) of the full report's metrics."""
    families, names = set(), set()
    for family in text_string_to_metric_families(render(FULL_REPORT).decode("utf-8")):
        families.add(family.name)
        names.update(s.name for s in family.samples)
    return families, names


def yaml_blocks() -> list[Any]:
    text = MONITORING.read_text(encoding="utf-8")
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)]


def rules_doc() -> dict[str, Any]:
    [rules] = [b for b in yaml_blocks() if isinstance(b, dict) and "groups" in b]
    return rules


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bsentinel_[a-z_]+\b", expr))


def test_the_scrape_config_and_the_rules_are_yaml_prometheus_reads() -> None:
    [scrape] = [b for b in yaml_blocks() if isinstance(b, dict) and "scrape_configs" in b]
    [job] = scrape["scrape_configs"]
    assert job["job_name"] == "sentinel" and job["metrics_path"] == "/metrics"
    rules = rules_doc()["groups"][0]["rules"]
    names = {r["alert"] for r in rules}
    # the situations the issue asks a rule for
    assert {
        "SentinelDown",
        "SentinelAbsent",
        "SentinelHeartbeatStale",
        "SentinelCriticalAlarm",
        "SentinelReplicationRPOHigh",
        "SentinelReplicationFailing",
        "SentinelOutboxBackingUp",
        "SentinelAllChannelsFailing",
        "SentinelComponentRestartLoop",
    } <= names
    assert all(r["labels"]["severity"] in ("critical", "warning") for r in rules)


def test_every_metric_the_rules_and_the_dashboard_use_is_exported() -> None:
    _, samples = exported()
    used: set[str] = set()
    for rule in rules_doc()["groups"][0]["rules"]:
        used |= metric_names(rule["expr"])
    for expr in dashboard_exprs():
        used |= metric_names(expr)
    assert used, "no metric names found: the extraction is broken"
    assert used - samples == set()


def test_every_exported_metric_is_documented() -> None:
    families, _ = exported()
    text = MONITORING.read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `(sentinel_[a-z_*]+)`", text, flags=re.M))
    missing = {
        f
        for f in families
        if f not in table
        and f + "_total" not in table
        and f + "_info" not in table
        and not (f.startswith("sentinel_keeper_room_") and "sentinel_keeper_room_*" in table)
    }
    assert missing == set()


def test_the_dashboard_imports_with_a_chosen_prometheus() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    [source] = board["__inputs"]
    assert source["name"] == "DS_PROMETHEUS" and source["pluginId"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in p["targets"])
    # no two panels on the same grid cells (Grafana would shove them around on import)
    cells: dict[tuple[int, int], str] = {}
    for p in board["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
    assert "sentinel_up" in board["templating"]["list"][0]["definition"]


@needs_promtool
def test_promtool_accepts_the_rules_and_every_dashboard_query(tmp_path: Path) -> None:
    rules = tmp_path / "sentinel.yml"
    rules.write_text(yaml.safe_dump(rules_doc(), allow_unicode=True), encoding="utf-8")
    # each dashboard query as a recording rule: promtool then parses it as PromQL
    queries = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{n}", "expr": e.replace("$instance", ".*")}
                    for n, e in enumerate(dashboard_exprs())
                ],
            }
        ]
    }
    board = tmp_path / "dashboard.yml"
    board.write_text(yaml.safe_dump(queries), encoding="utf-8")
    assert PROMTOOL is not None
    proc = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules), str(board)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
def test_the_rules_fire_when_sentinel_is_down_or_cannot_page(tmp_path: Path) -> None:
    """promtool's rule unit tests, on series shaped as /metrics serves them."""
    (tmp_path / "sentinel.yml").write_text(
        yaml.safe_dump(rules_doc(), allow_unicode=True), encoding="utf-8"
    )
    target = {"job": "sentinel", "instance": "room:8080"}
    rules = {r["alert"]: r for r in rules_doc()["groups"][0]["rules"]}

    def expected(name: str, **labels: str) -> dict[str, Any]:
        """The alert as the rule would label and annotate it."""
        summary = rules[name]["annotations"]["summary"]
        for key, value in {**target, **labels}.items():
            summary = summary.replace(f"{{{{ $labels.{key} }}}}", value)
        return {
            "exp_labels": {**target, **labels, "severity": rules[name]["labels"]["severity"]},
            "exp_annotations": {"summary": summary},
        }

    channel = 'channel="json://gw/****",key="1a76cf4f11"'
    alarm = 'alarm="EYDH",sensor="leak-ups",kind="water_leak",location="UPS",severity="critical",state="firing"'  # noqa: E501
    suite = {
        "rule_files": ["sentinel.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                # scraped fine for 3 minutes, then the scrape fails
                "interval": "1m",
                "input_series": [
                    {"series": 'up{job="sentinel",instance="room:8080"}', "values": "1 1 1 0x10"},
                    {
                        "series": 'sentinel_up{job="sentinel",instance="room:8080"}',
                        "values": "1 1 1",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "SentinelDown", "exp_alerts": []},
                    {
                        "eval_time": "6m",
                        "alertname": "SentinelDown",
                        "exp_alerts": [expected("SentinelDown")],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'sentinel_alert_channels_all_failing{job="sentinel",instance="room:8080"}',  # noqa: E501
                        "values": "0 0 1x5",
                    },
                    {
                        "series": f'sentinel_alarm_active{{job="sentinel",instance="room:8080",{alarm}}}',  # noqa: E501
                        "values": "1x5",
                    },
                    {
                        "series": 'sentinel_component_restarts_total{job="sentinel",instance="room:8080",component="alerts"}',  # noqa: E501
                        "values": "0 1 2 3 4 5 6",
                    },
                    {
                        "series": f'sentinel_alert_channel_consecutive_failures{{job="sentinel",instance="room:8080",{channel}}}',  # noqa: E501
                        "values": "0x20",
                    },
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "4m",
                        "alertname": "SentinelAllChannelsFailing",
                        "exp_alerts": [expected("SentinelAllChannelsFailing")],
                    },
                    {
                        "eval_time": "1m",
                        "alertname": "SentinelCriticalAlarm",
                        "exp_alerts": [
                            expected(
                                "SentinelCriticalAlarm",
                                alarm="EYDH",
                                sensor="leak-ups",
                                kind="water_leak",
                                location="UPS",
                                state="firing",
                            )
                        ],
                    },
                    {
                        "eval_time": "6m",
                        "alertname": "SentinelComponentRestartLoop",
                        "exp_alerts": [
                            expected("SentinelComponentRestartLoop", component="alerts")
                        ],
                    },
                    {"eval_time": "15m", "alertname": "SentinelChannelFailing", "exp_alerts": []},
                ],
            },
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")
    assert PROMTOOL is not None
    proc = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
