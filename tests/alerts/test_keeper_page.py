"""A critical leak, smoke or fire page carries the keeper's "data safe to" (issue 11): the
room ships an urgent heartbeat (real rsync to a local landing area), a test keeper answers
with a receipt, and the page, held at most `confirm_wait`, reaches a loopback json:// sink
with "자료 HH:MM:SS까지 안전". No answer: the page still goes out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alerts.templates import SMS_LIMIT_BYTES, Templates, sms_bytes
from backup.keeper_record import HEARTBEAT_FILE, Receipt, read_heartbeat, write_atomic
from backup.transport import parse_target
from sentinel import migrations
from sentinel.config.replication import KeeperLinkConfig
from sentinel.keeper_confirm import KeeperConfirm, needs_confirmation
from sentinel.room_heartbeat import RoomHeartbeat
from sentinel.store import Store
from tests.alerts.helpers import enqueue, event, make_delivery, running, write_apprise
from tests.backup.helpers import caught_up, make_spec, populate_docs
from tests.backup.helpers import running as replicating
from tests.fixtures.http_sink import HttpSink

ROOM = "main-office"


def hms(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


class ReceiptWriter:
    """What the keeper does for the room, reduced to the receipt: reads the heartbeat at the
    landing root and, once `delay` passed, answers its urgent request."""

    def __init__(
        self, landing: Path, receipt: Path, *, delay: float = 0.3, answer: bool = True
    ) -> None:
        self.landing = landing
        self.receipt = receipt
        self.delay = delay
        self.answer = answer
        self.answered_at: float | None = None
        self.seen_urgent: float | None = None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            try:
                hb = read_heartbeat(self.landing / HEARTBEAT_FILE)
            except (OSError, ValueError):
                continue
            if hb.urgent is None or (
                self.seen_urgent is not None and hb.urgent <= self.seen_urgent
            ):
                continue
            self.seen_urgent = hb.urgent
            if not self.answer:
                continue
            await asyncio.sleep(self.delay)  # "snapshotting"
            write_atomic(
                self.receipt,
                Receipt(
                    ROOM,
                    hb.synced_through,
                    "20261202T0332Z",
                    time.time(),
                    time.time(),
                    answered=hb.urgent,
                ).to_json(),
            )
            self.answered_at = time.monotonic()


@contextlib.asynccontextmanager
async def room_with_keeper(
    tmp_path: Path,
    store: Store,
    *,
    confirm_wait: float = 1.5,
    answer: bool = True,
    delay: float = 0.3,
) -> AsyncIterator[tuple[KeeperConfirm, RoomHeartbeat, ReceiptWriter]]:
    await migrations.migrate(store)
    src, landing = tmp_path / "src", tmp_path / "landing"
    src.mkdir()
    populate_docs(src, 3)
    receipt = tmp_path / "receipts" / "receipt.json"
    receipt.parent.mkdir()
    runtime = tmp_path / "run"
    spec = make_spec(src, parse_target(str(landing)), runtime)
    keeper = ReceiptWriter(landing, receipt, delay=delay, answer=answer)
    async with replicating(spec, store) as rep:
        await caught_up(rep, src, landing)
        room = RoomHeartbeat(
            spec,
            KeeperLinkConfig(receipt=str(receipt), heartbeat=5.0, confirm_wait=confirm_wait),
            ROOM,
            rep,
            store.db,
        )
        beat_task = asyncio.create_task(room.run())
        keeper_task = asyncio.create_task(keeper.run())
        try:
            await asyncio.sleep(0.3)  # the first regular heartbeat went out
            yield KeeperConfirm([room]), room, keeper
        finally:
            for task in (beat_task, keeper_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def sink_config(tmp_path: Path, http_sink: HttpSink) -> Path:
    return write_apprise(
        tmp_path / "apprise.yml",
        [
            (http_sink.json_url("/sms", query="cto=1&rto=3"), ["critical", "warning"]),
            (http_sink.json_url("/lms", query="cto=1&rto=3&format=text"), ["critical"]),
        ],
    )


async def test_keeper_critical_leak_page_waits_for_the_receipt_and_says_data_safe(
    tmp_path: Path, store: Store, http_sink: HttpSink
):
    outbox, sender = await make_delivery(store, sink_config(tmp_path, http_sink))
    async with room_with_keeper(tmp_path, store, delay=0.4) as (confirm, room, keeper):
        sender.confirm = confirm
        async with running(sender):
            began = time.monotonic()
            await enqueue(store, outbox, event("LEAK", location="전산실 UPS 하단"))
            sms = (await http_sink.wait_delivered(1, "/sms"))[0]
            await http_sink.wait_delivered(1, "/lms")
    assert keeper.answered_at is not None and sms.mono >= keeper.answered_at  # held
    assert sms.mono - began < 1.5 + 1.0  # but not past confirm_wait
    receipt = room.receipt
    assert receipt is not None and receipt.safe_as_of is not None
    expected = f"자료 {hms(receipt.safe_as_of)}까지 안전"
    assert sms.message.endswith(expected) and "#LEAK" in sms.message, sms.message
    assert "이전 확인" not in sms.message
    assert sms_bytes(sms.message) <= SMS_LIMIT_BYTES
    lms = http_sink.delivered("/lms")[0]
    assert expected in lms.message
    # the room's own heartbeat said what the keeper confirmed: everything up to the page
    assert room.last_confirm is not None and room.last_confirm["answered"] is True
    assert receipt.answered == room.last_confirm["urgent"]


async def test_keeper_without_an_answer_the_page_still_goes_out(
    tmp_path: Path, store: Store, http_sink: HttpSink
):
    """The keeper never answers (a dead link, a keeper down): the page goes out once
    confirm_wait passed, without "data safe to" when no receipt was ever read, and with the
    newest older receipt's time, marked as such, when there is one."""
    outbox, sender = await make_delivery(store, sink_config(tmp_path, http_sink))
    async with room_with_keeper(tmp_path, store, confirm_wait=1.0, answer=False) as (
        confirm,
        room,
        keeper,
    ):
        sender.confirm = confirm
        async with running(sender):
            began = time.monotonic()
            await enqueue(store, outbox, event("NOAN"))
            sms = (await http_sink.wait_delivered(1, "/sms", within=5.0))[0]
            assert sms.mono - began < 1.0 + 3.0
            assert "안전" not in sms.message and "#NOAN" in sms.message
            assert keeper.seen_urgent is not None  # the urgent heartbeat did go out
            # an older receipt exists now: the next critical page shows it, marked
            old = time.time() - 120
            write_atomic(keeper.receipt, Receipt(ROOM, old, "x", old, old + 1).to_json())
            await room.read_receipt()
            await enqueue(store, outbox, event("OLDR", kind="smoke"))
            sms2 = (await http_sink.wait_delivered(2, "/sms", within=5.0))[1]
    assert f"자료 {hms(old)}까지 안전(이전 확인)" in sms2.message, sms2.message
    assert sms_bytes(sms2.message) <= SMS_LIMIT_BYTES


async def test_keeper_other_pages_are_not_held(tmp_path: Path, store: Store, http_sink: HttpSink):
    """A warning, a resolved leak, sentinel's own health: sent at once, no "data safe"."""
    outbox, sender = await make_delivery(store, sink_config(tmp_path, http_sink))
    async with room_with_keeper(tmp_path, store, confirm_wait=3.0, answer=False) as (
        confirm,
        _room,
        keeper,
    ):
        sender.confirm = confirm
        async with running(sender):
            began = time.monotonic()
            await enqueue(
                store,
                outbox,
                event("TEMP", kind="temperature", severity="warning", value=41.0, unit="°C"),
            )
            sms = (await http_sink.wait_delivered(1, "/sms"))[0]
    assert sms.mono - began < 1.0 and "안전" not in sms.message
    assert keeper.seen_urgent is None


def test_keeper_which_pages_ask_for_confirmation():
    assert needs_confirmation(event(kind="water_leak"))
    assert needs_confirmation(event(kind="smoke"))
    assert needs_confirmation(event(kind="fire"))
    fire = event(kind="combined")
    assert needs_confirmation(fire.__class__(**{**_fields(fire), "sensor_id": "fire"}))
    assert not needs_confirmation(event(kind="combined"))  # another combined rule
    assert not needs_confirmation(event(kind="water_leak", severity="warning"))
    assert not needs_confirmation(event(kind="water_leak", event_type="resolved"))
    assert not needs_confirmation(event(kind="replication_lag"))


def _fields(e: Any) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__dataclass_fields__}


def test_keeper_safe_field_renders_and_fits_the_sms():
    ko, en = Templates(site="본청"), Templates(language="en", site="HQ")
    leak = event("A7F3", location="본관 3층 전산실 UPS 하단 바닥 누수감지선 2번 구역 끝단")
    assert "안전" not in ko.render(leak, "sms").body  # unknown: renders ""
    safe = time.mktime((2026, 12, 2, 14, 32, 5, 0, 0, -1))
    confirmed = leak.__class__(**{**_fields(leak), "safe_as_of": safe, "ts": safe + 3})
    body = ko.render(confirmed, "sms").body
    assert body.endswith(" #A7F3 자료 14:32:05까지 안전"), body
    assert sms_bytes(body) <= SMS_LIMIT_BYTES and "본관" in body  # the location shortened
    assert en.render(confirmed, "sms").body.endswith("data safe to 14:32:05")
    assert "자료 14:32:05까지 안전" in ko.render(confirmed, "long").body
    older = confirmed.__class__(**{**_fields(confirmed), "safe_unconfirmed": True})
    assert ko.render(older, "sms").body.endswith("자료 14:32:05까지 안전(이전 확인)")
    assert en.render(older, "sms").body.endswith("(older receipt)")
    # a confirmation from another day shows the date
    yesterday = confirmed.__class__(**{**_fields(confirmed), "ts": safe + 86400})
    assert "12-02 14:32까지 안전" in ko.render(yesterday, "sms").body


async def test_keeper_unreachable_landing_does_not_hold_the_page(
    tmp_path: Path, store: Store, http_sink: HttpSink
):
    """The urgent heartbeat cannot even be shipped (the landing area is gone): no answer can
    come, so the page goes out at once instead of after confirm_wait."""
    outbox, sender = await make_delivery(store, sink_config(tmp_path, http_sink))
    async with room_with_keeper(tmp_path, store, confirm_wait=5.0) as (confirm, room, _k):
        (tmp_path / "landing").rename(tmp_path / "landing-gone")
        sender.confirm = confirm
        async with running(sender):
            began = time.monotonic()
            await enqueue(store, outbox, event("GONE"))
            sms = (await http_sink.wait_delivered(1, "/sms", within=10.0))[0]
    assert sms.mono - began < 3.0 and "#GONE" in sms.message
    assert room.ship_error is not None
    assert room.last_confirm is not None and room.last_confirm["answered"] is False
