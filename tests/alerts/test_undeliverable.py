"""An outbox row no message can be made of is set aside; it never blocks its channel."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from alerts.outbox import encode_event
from alerts.status import read_status
from sentinel.status import judge
from sentinel.store import Store, open_readonly
from tests.alerts.helpers import enqueue, event, make_delivery, rows, running, write_apprise
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until


async def _insert_raw(store: Store, channel: str, alarm_id: str, payload: str) -> None:
    """A row as a damaged file or another version could leave it (passes quick_check)."""
    async with store.write() as db:
        await db.execute(
            "INSERT INTO outbox_message(channel, alarm_id, event, severity, payload, created) "
            "VALUES (?, ?, 'firing', 'critical', ?, ?)",
            (channel, alarm_id, payload, time.time()),
        )


def _report(alerts: dict[str, Any]) -> dict[str, Any]:
    return {"daemon": {"state": "up"}, "alarms": [], "components": {}, "alerts": alerts}


async def test_bad_rows_are_set_aside_and_the_pages_behind_them_go_out(
    store: Store, http_sink: HttpSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (http_sink.json_url("/sms"), ["critical", "warning"]),
        ],
    )
    outbox, sender = await make_delivery(store, yml, group_window=0.0)
    [channel] = outbox.channels
    # one row that does not decode, one that decodes but cannot be rendered
    await _insert_raw(store, channel.key, "ZZZZ", json.dumps({"alarm_id": "ZZZZ", "event": 5}))
    unrenderable = json.loads(encode_event(event("YYYY")))
    unrenderable["ts"] = "yesterday"
    await _insert_raw(store, channel.key, "YYYY", json.dumps(unrenderable))
    await enqueue(store, outbox, event("L001"), event("L002"))
    caplog.set_level(logging.ERROR, logger="sentinel.alerts")
    async with running(sender):
        await until(
            lambda: (
                "#L001" in " ".join(r.message for r in http_sink.delivered())
                and "#L002" in " ".join(r.message for r in http_sink.delivered())
            ),
            15,
            "#L001 and #L002 delivered",
        )
        # the notice about the set-aside rows goes out on the same (remaining) path
        await until(
            lambda: any("#OUTBOX" in r.message for r in http_sink.delivered()),
            15,
            'any("#OUTBOX" in r.message for r in http_sink.delivered())',
        )
        await until(lambda: sender.health()["pending"] == 0, 15, 'sender.health()["pending"] == 0')
    dead = await rows(
        store, "SELECT alarm_id, error FROM outbox_message WHERE state = 'dead' ORDER BY id"
    )
    assert [d[0] for d in dead] == ["ZZZZ", "YYYY"]
    assert "TypeError" in dead[0][1] and dead[1][1]
    notice = next(r for r in http_sink.delivered() if "#OUTBOX" in r.message)
    assert notice.message.startswith("[위험]")  # CRIT: a critical page may be what was lost
    # logged once each, never a loop of retries
    lines = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(lines) == 2 and "ZZZZ" in lines[0] and "YYYY" in lines[1]
    assert not [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    conn = open_readonly(store.path.parent)
    assert conn is not None
    try:
        status = read_status(conn, time.time())
    finally:
        conn.close()
    assert status["undeliverable"] == 2
    verdict = judge(_report(status))
    assert verdict.health.name == "WARNING"
    assert "2 undeliverable outbox rows" in "; ".join(verdict.reasons)


async def test_undecodable_orphan_does_not_stop_the_sender(
    store: Store, http_sink: HttpSink, tmp_path: Path
):
    """A pending row for a channel no longer configured is re-routed at start; one that
    cannot be decoded is set aside there too instead of failing the sender's start."""
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/sms"), ["critical"])])
    outbox, sender = await make_delivery(store, yml)
    await _insert_raw(store, "gone-channel", "ZZZZ", "{not json")
    await enqueue(store, outbox, event("M001"))
    async with running(sender):
        await until(
            lambda: any("#M001" in r.message for r in http_sink.delivered()),
            15,
            'any("#M001" in r.message for r in http_sink.delivered())',
        )
        await until(lambda: sender.health()["pending"] == 0, 15, 'sender.health()["pending"] == 0')
    assert await rows(store, "SELECT alarm_id FROM outbox_message WHERE state = 'dead'") == [
        ("ZZZZ",)
    ]
