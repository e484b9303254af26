"""The replicator's health is one typed value; the heartbeat's JSON is that value, field for
field, under the names status and livestatus have always shown."""

from __future__ import annotations

import json
from pathlib import Path

from backup.health import ReplicationHealth
from backup.transport import parse_target
from sentinel.replication import replication_readings, unreadable_detail
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running

# The heartbeat row's keys for one replication before health was typed (docs/status.md).
JSON_KEYS = [
    "source",
    "target",
    "phase",
    "pending",
    "rpo",
    "last_success",
    "consecutive_failures",
    "last_error",
    "shipped_files",
    "transfers",
    "transfer_running",
    "guard_tripped",
    "guard_count",
    "guard_reason",
    "source_missing",
    "target_missing",
    "blocked",
    "last_full",
    "verify_mismatch",
    "last_verify",
    "watch_limit",
    "watch_limit_error",
    "watches",
    "files",
    "overflows",
    "quarantined",
    "quarantined_other",
    "unreadable",
    "unreadable_first",
    "stream",
    # kind = "archive-log" (issue 16); false/None/empty for a replication of files
    "archive_log",
    "data_rpo",
    "log_head",
    "log_gap",
]


async def test_health_is_typed_and_its_json_keeps_the_old_keys(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a.txt").write_text("a")
    async with running(make_spec(src, parse_target(str(dst)), runtime), bstore) as rep:
        await caught_up(rep, src, dst)
        health = rep.replication_health()
        assert isinstance(health, ReplicationHealth)
        assert health.phase == "running" and not health.never_synced
        assert health.source == str(src) and health.target == str(dst)
        as_json = rep.health()
        assert list(as_json) == JSON_KEYS
        assert as_json == health.as_dict()
        json.dumps(as_json)  # the heartbeat row is JSON
        readings = {r.kind: r.value for r in replication_readings([rep], 0.0)}
        assert readings["replication_failures"] == 0.0
        assert readings["replication_unreadable"] is False


def test_unreadable_detail_names_the_first_path_and_how_many_more() -> None:
    assert unreadable_detail("/srv/docs/", 0, None) is None
    assert unreadable_detail("/srv/docs", 1, "a.hwp") == "/srv/docs/a.hwp"
    assert unreadable_detail("/srv/docs", 3, "a.hwp") == "/srv/docs/a.hwp (+2)"
