"""The last page before the UPS dies says how fresh the off-site copy is (issue 15): a UPS on
battery pages at warning already, and that page waits for the keeper's receipt like a
critical leak's (sentinel/keeper_confirm.py; real rsync to a local landing area, a test
keeper answering, a loopback json:// sink)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from alerts import reasons
from alerts.templates import SMS_LIMIT_BYTES, sms_bytes
from backup.transport import parse_target
from sentinel import migrations
from sentinel.keeper_confirm import ReplicaFreshness, needs_confirmation
from sentinel.store import Store
from tests.alerts.helpers import enqueue, event, make_delivery, running
from tests.alerts.test_keeper_page import hms, room_with_keeper, sink_config
from tests.backup.helpers import caught_up, make_spec, populate_docs
from tests.backup.helpers import running as replicating
from tests.fixtures.http_sink import HttpSink


def on_battery(alarm_id: str, severity: str = "warning", seconds: float = 1.0):  # type: ignore[no-untyped-def]
    limit = 1.0 if severity == "warning" else 300.0
    return dataclasses.replace(
        event(alarm_id, kind="ups_on_battery", severity=severity, value=seconds, unit="s"),
        cause=reasons.HIGH,
        params={"value": seconds, "limit": limit, "unit": "s"},
    )


def test_power_pages_ask_the_keeper_at_any_severity() -> None:
    assert needs_confirmation(on_battery("W"))
    assert needs_confirmation(on_battery("C", "critical", 300.0))
    assert needs_confirmation(event(kind="ups_battery_low"))
    assert needs_confirmation(event(kind="ups_runtime", severity="warning"))
    assert needs_confirmation(event(kind="ups_output_off"))
    # back on mains, or a battery to replace some day: nothing to hurry for
    assert not needs_confirmation(event(kind="ups_on_battery", event_type="resolved"))
    assert not needs_confirmation(event(kind="ups_replace_battery", severity="warning"))
    assert not needs_confirmation(event(kind="ups_overload", severity="warning"))
    # a warning about anything else is still not held
    assert not needs_confirmation(event(kind="water_leak", severity="warning"))


async def test_on_battery_warning_page_carries_data_safe_to(
    tmp_path: Path, store: Store, http_sink: HttpSink
) -> None:
    outbox, sender = await make_delivery(store, sink_config(tmp_path, http_sink))
    async with room_with_keeper(tmp_path, store, delay=0.3) as (confirm, room, keeper):
        sender.confirm = confirm
        async with running(sender):
            began = time.monotonic()
            await enqueue(store, outbox, on_battery("POWR"))
            sms = (await http_sink.wait_delivered(1, "/sms"))[0]
    assert keeper.answered_at is not None and sms.mono >= keeper.answered_at  # held for it
    assert sms.mono - began < 1.5 + 1.0  # but not past confirm_wait
    receipt = room.receipt
    assert receipt is not None and receipt.safe_as_of is not None
    assert f"자료 {hms(receipt.safe_as_of)}까지 안전" in sms.message, sms.message
    assert sms.message.startswith("[주의]") and "#POWR" in sms.message
    assert sms_bytes(sms.message) <= SMS_LIMIT_BYTES
    lms = http_sink.delivered("/lms")  # the long form is routed for critical only
    assert lms == []


async def test_without_a_keeper_the_power_page_says_how_far_the_rooms_copy_got(
    tmp_path: Path, store: Store, http_sink: HttpSink
) -> None:
    """No keeper to ask: the page says the room's own replication had shipped all it saw,
    worded apart from a keeper's receipt, and says nothing while that is not so."""
    await migrations.migrate(store)
    src, landing = tmp_path / "src", tmp_path / "landing"
    src.mkdir()
    populate_docs(src, 3)
    spec = make_spec(src, parse_target(str(landing)), tmp_path / "run")
    outbox, sender = await make_delivery(store, sink_config(tmp_path, http_sink))
    async with replicating(spec, store) as rep:
        await caught_up(rep, src, landing)
        freshness = ReplicaFreshness([rep])
        sender.confirm = freshness
        async with running(sender):
            before = time.time()
            await enqueue(store, outbox, on_battery("POWR"))
            sms = (await http_sink.wait_delivered(1, "/sms"))[0]
            after = time.time()
    assert sms.message.startswith("[주의]") and "#POWR" in sms.message
    assert "까지 복제" in sms.message and "안전" not in sms.message, sms.message
    said = sms.message.split("자료 ", 1)[1].split("까지", 1)[0]
    assert hms(before) <= said <= hms(after), sms.message  # caught up as the page went
    assert sms_bytes(sms.message) <= SMS_LIMIT_BYTES
    # the replication stopped: no claim about the copy at all
    assert freshness.synced_through() is None
    [plain] = await freshness([on_battery("POW2")])
    assert plain.safe_as_of is None
