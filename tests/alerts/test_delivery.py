"""Delivery through real json:// channels (loopback HTTP sinks) and a real SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from alerts.status import read_status
from sentinel.store import Store, open_readonly
from tests.alerts.helpers import enqueue, event, make_delivery, rows, running, write_apprise
from tests.fixtures.core import FakeClock
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until


async def test_json_delivery_end_to_end(store: Store, http_sink: HttpSink, tmp_path: Path):
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/sms"), ["critical"])])
    outbox, sender = await make_delivery(store, yml)
    e = event("A7F3")
    async with running(sender):
        await enqueue(store, outbox, e)
        got = await http_sink.wait_delivered(1, "/sms")
        await until(lambda: sender.health()["sent"] == 1, 15, 'sender.health()["sent"] == 1')
    assert len(got) == 1
    assert "#A7F3" in got[0].message
    assert "누수" in got[0].message and "전산실 UPS 하단" in got[0].message
    assert got[0].body["type"] == "failure"  # critical alarm
    assert await rows(store, "SELECT state, attempts FROM outbox_message") == [("sent", 1)]
    conn = open_readonly(store.path.parent)
    assert conn is not None
    try:
        status = read_status(conn, e.ts)
    finally:
        conn.close()
    assert status["outbox_pending"] == 0
    assert status["channels"][0]["sent"] == 1
    assert status["channels"][0]["url"] == http_sink.json_url("/****")  # path masked


async def test_failing_channel_recovers_and_sends_once(
    store: Store, http_sink: HttpSink, tmp_path: Path
):
    http_sink.fail("/gw", times=2)
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/gw"), ["critical"])])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event("B001"))
        await http_sink.wait_delivered(1, "/gw")
        await until(lambda: sender.health()["sent"] == 1, 15, 'sender.health()["sent"] == 1')
    answers = [r.status for r in http_sink.requests("/gw")]
    assert answers == [500, 500, 200]
    assert all("#B001" in r.message for r in http_sink.requests("/gw"))
    assert await rows(store, "SELECT state, attempts FROM outbox_message") == [("sent", 3)]
    channel = await rows(
        store, "SELECT consecutive_failures, last_error, sent_total FROM alert_channel"
    )
    assert channel[0][0] == 0 and channel[0][2] == 1
    assert "500" in channel[0][1]  # the last error is kept for status


async def test_stalled_channel_does_not_delay_another(
    store: Store, http_sink_factory: Callable[[], HttpSink], tmp_path: Path
):
    slow, fast = http_sink_factory(), http_sink_factory()
    slow.stall("/slow", 30)
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [(slow.json_url("/slow"), ["critical"]), (fast.json_url("/fast"), ["critical"])],
    )
    outbox, sender = await make_delivery(store, yml, send_timeout=1.0, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event("C001"))
        got = await fast.wait_delivered(1, "/fast")
        # the fast channel got its message while the slow one was still stalled on it
        assert "#C001" in got[0].message
        assert slow.delivered() == []
        await until(lambda: slow.requests("/slow"), 15, 'slow.requests("/slow")')
        await until(lambda: sender.health()["sent"] == 1, 15, 'sender.health()["sent"] == 1')
        assert slow.requests("/slow")[0].mono < got[0].mono + 5  # both were asked at once
        pending = await rows(store, "SELECT channel FROM outbox_message WHERE state = 'pending'")
        assert len(pending) == 1
        # the stall ends: the timed-out message is retried and arrives
        slow.stall("/slow", 0)
        await slow.wait_delivered(1, "/slow")
        await until(lambda: sender.health()["pending"] == 0, 15, 'sender.health()["pending"] == 0')
    assert len(fast.delivered()) == 1
    failures = await rows(
        store, "SELECT display, last_error FROM alert_channel WHERE last_error IS NOT NULL"
    )
    assert failures and failures[0][0] == slow.json_url("/****")


async def test_two_stalled_channels_are_both_reached_at_once(
    store: Store, http_sink_factory: Callable[[], HttpSink], tmp_path: Path
):
    """Each channel is its own lane: a stalled SMS gateway must not hold KakaoTalk back
    until its send times out. Both stall far longer than the test waits, so a shared lane
    would reach the second only after send_timeout (20 s)."""
    sms, kakao = http_sink_factory(), http_sink_factory()
    sms.stall("/sms", 60)
    kakao.stall("/kakao", 60)
    # Apprise's own read timeout (4 s by default) would otherwise end the stall early
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (sms.json_url("/sms", query="cto=5&rto=30"), ["critical"]),
            (kakao.json_url("/kakao", query="cto=5&rto=30"), ["critical"]),
        ],
    )
    outbox, sender = await make_delivery(store, yml, send_timeout=20.0)
    try:
        async with running(sender):
            await enqueue(store, outbox, event("E001"))
            await until(
                lambda: sms.requests("/sms") and kakao.requests("/kakao"),
                10,
                'sms.requests("/sms") and kakao.requests("/kakao")',
            )
            [first] = sms.requests("/sms")
            [second] = kakao.requests("/kakao")
            # both were asked while both were still stalled, within 2 s of each other
            assert first.answered is None and second.answered is None
            assert abs(first.mono - second.mono) < 2.0
            assert "#E001" in first.message and "#E001" in second.message
    finally:
        sms.close()  # ends the stalls, so Apprise's worker threads finish
        kakao.close()


async def test_message_survives_a_crash_before_sending(http_sink: HttpSink, tmp_path: Path):
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/p"), ["critical"])])
    state = tmp_path / "state"
    first = await Store.open(state)
    try:
        outbox, _never_run = await make_delivery(first, yml)
        await enqueue(first, outbox, event("D001"))
    finally:
        await first.close()  # the daemon dies before its sender ran
    assert http_sink.requests() == []
    second = await Store.open(state)
    try:
        outbox, sender = await make_delivery(second, yml)
        async with running(sender):
            got = await http_sink.wait_delivered(1, "/p")
            await until(lambda: sender.health()["sent"] == 1, 15, 'sender.health()["sent"] == 1')
    finally:
        await second.close()
    assert "#D001" in got[0].message


async def test_unconfirmed_send_is_resent_after_restart(http_sink: HttpSink, tmp_path: Path):
    """A send in flight when the daemon dies is not lost: at-least-once, same alarm id."""
    http_sink.stall("/p", 30)
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/p"), ["critical"])])
    state = tmp_path / "state"
    first = await Store.open(state)
    try:
        outbox, sender = await make_delivery(first, yml, send_timeout=20.0)
        async with running(sender):
            await enqueue(first, outbox, event("E001"))
            await until(
                lambda: http_sink.requests("/p"), 15, 'http_sink.requests("/p")'
            )  # claimed, being sent
    finally:
        await first.close()
    http_sink.stall("/p", 0)
    second = await Store.open(state)
    try:
        outbox, sender = await make_delivery(second, yml)
        async with running(sender):
            got = await http_sink.wait_delivered(1, "/p")
            await until(lambda: sender.health()["sent"] == 1, 15, 'sender.health()["sent"] == 1')
    finally:
        await second.close()
    assert "#E001" in got[0].message
    assert len(http_sink.requests("/p")) == 2


async def test_rolled_back_enqueue_sends_nothing(store: Store, http_sink: HttpSink, tmp_path: Path):
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/p"), ["critical"])])
    outbox, sender = await make_delivery(store, yml)
    async with running(sender):
        with pytest.raises(RuntimeError):
            async with store.write() as db:
                await outbox.enqueue(db, event("F0RB"))
                # the sender was woken by the enqueue and gets the chance to run now
                await asyncio.sleep(0.05)
                raise RuntimeError("the alarm transition failed")
        await enqueue(store, outbox, event("F002"))
        got = await http_sink.wait_delivered(1, "/p")
        await until(lambda: sender.health()["sent"] == 1, 15, 'sender.health()["sent"] == 1')
    assert [("#F002" in r.message, "#F0RB" in r.message) for r in got] == [(True, False)]
    assert await rows(store, "SELECT alarm_id FROM outbox_message") == [("F002",)]


async def test_burst_is_grouped_into_one_message(
    store: Store, http_sink: HttpSink, tmp_path: Path, clock: FakeClock
):
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/p"), ["critical"])])
    outbox, sender = await make_delivery(store, yml, clock=clock, group_window=10.0)
    async with running(sender):
        await enqueue(store, outbox, event("G001"))
        first = await http_sink.wait_delivered(1, "/p")
        assert "#G001" in first[0].message  # the first of a burst goes out at once
        await until(lambda: sender.health()["sent"] == 1, 15, 'sender.health()["sent"] == 1')
        clock.advance(3)
        await enqueue(store, outbox, event("G002"))
        clock.advance(3)
        await enqueue(store, outbox, event("G003", kind="smoke"))
        await until(lambda: sender.health()["pending"] == 2, 15, 'sender.health()["pending"] == 2')
        clock.advance(4.5)  # the window (10 s after the first message) is over
        # nothing wakes the sender for this, in production either: its own poll sees it
        got = await http_sink.wait_delivered(2, "/p")
        await until(lambda: sender.health()["sent"] == 3, 15, 'sender.health()["sent"] == 3')
    assert len(got) == 2
    assert "#G002" not in got[0].message
    assert "외 1건" in got[1].message  # one SMS naming the lead alarm and the count
    assert await rows(store, "SELECT DISTINCT state FROM outbox_message") == [("sent",)]


async def test_after_an_outage_a_cleared_alarm_is_not_grouped_as_firing(
    store: Store, http_sink: HttpSink, tmp_path: Path
):
    """The issue's case: with the gateway answering 500 for a while, #SYW5 fired and
    cleared and #8X9P fired. The one message after the outage must say #SYW5 is clear."""
    http_sink.fail("/p", times=10_000)
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/p"), ["critical"])])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event("SYW5", location="rack 2"))
        await until(
            lambda: http_sink.requests("/p"), 15, 'http_sink.requests("/p")'
        )  # the outage has begun
        await enqueue(
            store,
            outbox,
            event("SYW5", location="rack 2", event_type="resolved", value=False),
            event("8X9P", location="floor"),
        )
        # the retries now carry all three events; then the gateway is back
        await until(
            lambda: any("#8X9P" in r.message for r in http_sink.requests("/p")),
            15,
            'any("#8X9P" in r.message for r in http_sink.requests("/p"))',
        )
        http_sink.fail("/p", times=0)
        got = await http_sink.wait_delivered(1, "/p")
        await until(lambda: sender.health()["pending"] == 0, 15, 'sender.health()["pending"] == 0')
    message = got[-1].message
    assert "#SYW5" in message and "#8X9P" in message, message
    assert "[해제] #SYW5" in message and "[위험] #SYW5" not in message, message
    assert message.startswith("[위험] floor 누수 감지"), message
    assert got[-1].body["type"] == "failure"  # #8X9P is still critical


async def test_grouped_long_form_lists_every_alarm(
    store: Store, http_sink: HttpSink, tmp_path: Path, clock: FakeClock
):
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/m"), ["critical", "lms"])])
    outbox, sender = await make_delivery(store, yml, clock=clock, group_window=10.0)
    # both are already waiting when the sender starts (a backlog after a restart)
    await enqueue(store, outbox, event("H001"), event("H002", kind="smoke"))
    async with running(sender):
        got = await http_sink.wait_delivered(1, "/m")
        await until(lambda: sender.health()["sent"] == 2, 15, 'sender.health()["sent"] == 2')
    assert "#H001" in got[0].message and "#H002" in got[0].message
    assert "2건" in got[0].title


async def test_routing_by_severity_escalation_and_untagged(
    store: Store, http_sink: HttpSink, tmp_path: Path
):
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (http_sink.json_url("/crit"), ["critical"]),
            (http_sink.json_url("/warn"), ["warning"]),
            (http_sink.json_url("/boss"), ["level2"]),
            (http_sink.json_url("/all"), []),
        ],
    )
    outbox, sender = await make_delivery(store, yml)
    async with running(sender):
        await enqueue(
            store,
            outbox,
            event("R001", severity="warning", kind="temperature", value=31.5, unit="°C"),
        )
        await enqueue(store, outbox, event("R002", event_type="escalated", tags=("level2",)))
        await until(lambda: sender.health()["sent"] == 4, 15, 'sender.health()["sent"] == 4')
    by_path = {
        p: [r.message for r in http_sink.delivered(p)] for p in ("/crit", "/warn", "/boss", "/all")
    }
    assert by_path["/crit"] == []
    assert len(by_path["/warn"]) == 1 and "31.5°C" in by_path["/warn"][0]
    assert len(by_path["/boss"]) == 1 and "#R002" in by_path["/boss"][0]
    # the untagged channel got both (in one message if they were waiting together)
    assert "#R001" in " ".join(by_path["/all"]) and "#R002" in " ".join(by_path["/all"])


async def test_resolved_message(store: Store, http_sink: HttpSink, tmp_path: Path):
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/p"), ["critical"])])
    outbox, sender = await make_delivery(store, yml)
    async with running(sender):
        await enqueue(store, outbox, event("J001", event_type="resolved", value=False))
        got = await http_sink.wait_delivered(1, "/p")
    assert got[0].message.startswith("[해제]") and "#J001" in got[0].message
    assert got[0].body["type"] == "success"


async def test_pending_rows_follow_a_channel_that_was_replaced(
    http_sink_factory: Callable[[], HttpSink], tmp_path: Path
):
    state = tmp_path / "state"
    # another gateway (port), not another path: paths are masked, so they leave the key alone
    old_sink, http_sink = http_sink_factory(), http_sink_factory()
    old = write_apprise(tmp_path / "old.yml", [(old_sink.json_url("/old"), ["critical"])])
    new = write_apprise(tmp_path / "new.yml", [(http_sink.json_url("/new"), ["critical"])])
    first = await Store.open(state)
    try:
        outbox, _ = await make_delivery(first, old)
        await enqueue(first, outbox, event("K001"))
    finally:
        await first.close()
    second = await Store.open(state)
    try:
        outbox, sender = await make_delivery(second, new)
        async with running(sender):
            got = await http_sink.wait_delivered(1, "/new")
            await until(
                lambda: sender.health()["pending"] == 0 and sender.health()["sent"],
                15,
                'sender.health()["pending"] == 0 and sender.health()["sent"]',
            )
        states = await rows(second, "SELECT state FROM outbox_message ORDER BY id")
    finally:
        await second.close()
    assert "#K001" in got[0].message
    assert states == [("orphaned",), ("sent",)]


async def test_all_channels_failing_is_reported_once(
    store: Store,
    http_sink: HttpSink,
    tmp_path: Path,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
):
    http_sink.fail("/p", times=1000)
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/p"), ["critical"])])
    outbox, sender = await make_delivery(
        store, yml, clock=clock, retry_initial=1.0, all_failed_after=60.0
    )
    start = clock()
    async with running(sender):
        await enqueue(store, outbox, event("L001"))
        await until(
            lambda: sender.health()["failed_sends"] == 1, 15, 'sender.health()["failed_sends"] == 1'
        )
        assert sender.health()["all_channels_failing_since"] == start
        assert not [r for r in caplog.records if r.levelname == "CRITICAL"]
        for n in (2, 3):
            clock.advance(40)  # past the backoff: the sender's own poll retries
            await until(
                lambda n=n: sender.health()["failed_sends"] == n,
                15,
                'sender.health()["failed_sends"] == n',
            )
        critical = [r for r in caplog.records if r.levelname == "CRITICAL"]
        assert len(critical) == 1 and "every alert channel" in critical[0].getMessage()
        conn = sqlite3.connect(store.path)
        try:
            assert read_status(conn, clock())["all_channels_failing_since"] == start
        finally:
            conn.close()
        http_sink.fail("/p", times=0)
        clock.advance(200)
        await http_sink.wait_delivered(1, "/p")
        await until(
            lambda: sender.health()["all_channels_failing_since"] is None,
            15,
            'sender.health()["all_channels_failing_since"] is None',
        )
    assert len([r for r in caplog.records if r.levelname == "CRITICAL"]) == 1
