"""SMS through a cellular modem (alerts/modem/): PDUs against published ones, and pages
through the real Sender, Outbox and SQLite to a pty modem simulator (tests/fixtures/modem.py)
that decodes what it receives with an independent decoder."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from smspdudecoder.fields import SMSSubmit

from alerts.channels import load_channels
from alerts.modem import pdu
from alerts.outbox import Outbox
from alerts.status import read_status
from sentinel import migrations
from sentinel.cli.main import main
from sentinel.cli.status import _alerts as show_alerts
from sentinel.config import load_config
from sentinel.delivery import build_delivery
from sentinel.preflight import preflight
from sentinel.store import Store
from tests.alerts.helpers import enqueue, event, make_delivery, rows, running, write_apprise
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.modem import ModemSim
from tests.fixtures.poll import until

PIN = "7391"


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[ModemSim]:
    sim = ModemSim(tmp_path / "ttyMODEM")
    try:
        yield sim
    finally:
        sim.close()


def modem_url(sim: ModemSim, *numbers: str, query: str = "timeout=3") -> str:
    return f"modem://{sim.link}/{'/'.join(numbers or ('01012345678',))}?{query}"


def status_of(store: Store) -> dict[str, Any]:
    conn = sqlite3.connect(store.path)
    try:
        return read_status(conn, 0.0)
    finally:
        conn.close()


async def channel_error(store: Store, key_part: str = "modem") -> str:
    found = await rows(
        store, "SELECT last_error FROM alert_channel WHERE display LIKE ?", f"{key_part}%"
    )
    return str(found[0][0]) if found else ""


# -- PDUs ----------------------------------------------------------------------------------


def test_7bit_pdu_matches_the_published_example():
    # the SMS-SUBMIT example of GSM 03.40/TS 23.040 tutorials: "hellohello" to +46708251358
    parts = pdu.encode("+46708251358", "hellohello")
    assert [p.hex for p in parts] == ["0011000B916407281553F80000AA0AE8329BFD4697D9EC37"]
    assert parts[0].tpdu_length == 23  # what AT+CMGS=<n> needs: without the SMSC octet


def test_korean_goes_out_as_ucs2_to_a_national_number():
    # 안 U+C548, 녕 U+B155; 010 numbers as dialled (type 0x81), digits nibble-swapped
    parts = pdu.encode("010-1234-5678", "안녕")
    assert [p.hex for p in parts] == ["0011000B811010325476F80008AA04C548B155"]


def test_long_korean_text_is_split_into_numbered_parts_that_join_back():
    text = "전산실 UPS 하단 누수 감지, 즉시 확인 바랍니다. " * 8
    parts = pdu.encode("01012345678", text, reference=42)
    decoded = [SMSSubmit.decode(StringIO(p.hex)) for p in parts]
    headers = [d["user_data"]["header"]["elements"][0]["data"] for d in decoded]
    assert len(parts) > 1
    assert [h["part_number"] for h in headers] == list(range(1, len(parts) + 1))
    assert {h["reference"] for h in headers} == {42}
    assert {h["parts_count"] for h in headers} == {len(parts)}
    assert all(d["dcs"]["encoding"] == "ucs2" for d in decoded)
    # 67 UTF-16 units + the 6-octet header at most, so no network cuts a part
    assert all(len(p.hex) // 2 - 1 - 19 <= 140 for p in parts)
    assert "".join(d["user_data"]["data"] for d in decoded) == text


def test_long_7bit_text_with_extension_characters_joins_back():
    text = "Leak at UPS [rack 3] {zone B} 5€ " * 12
    parts = pdu.encode("+821012345678", text, reference=7)
    decoded = [SMSSubmit.decode(StringIO(p.hex)) for p in parts]
    assert len(parts) > 1 and all(d["dcs"]["encoding"] == "gsm" for d in decoded)
    assert "".join(d["user_data"]["data"] for d in decoded) == text


def test_text_beyond_the_part_limit_is_cut_visibly():
    parts = pdu.encode("01012345678", "가" * 2000, max_parts=3)
    decoded = "".join(SMSSubmit.decode(StringIO(p.hex))["user_data"]["data"] for p in parts)
    assert len(parts) == 3 and decoded.endswith("…") and decoded.startswith("가" * 100)


def test_a_number_that_is_not_one_is_refused():
    with pytest.raises(pdu.PduError):
        pdu.encode("ops-team", "x")


# -- through the sender --------------------------------------------------------------------


async def test_korean_critical_page_reaches_the_modem_as_ucs2_without_showing_the_pin(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    sim = ModemSim(tmp_path / "ttyUSB-pin", pin=PIN)
    try:
        url = modem_url(sim, "01012345678", "+821098765432", query=f"pin={PIN}&timeout=3")
        yml = write_apprise(tmp_path / "apprise.yml", [(url, ["critical"])])
        outbox, sender = await make_delivery(store, yml)
        async with running(sender):
            await enqueue(store, outbox, event("K001"))
            await until(lambda: len(sim.parts) == 2, 15, "two SMS at the modem")
            await until(lambda: sender.health()["sent"] == 1, 15, "recorded as sent")
            health = sender.health()
    finally:
        sim.close()
    assert [p.recipient for p in sim.parts] == ["01012345678", "+821098765432"]
    for part in sim.parts:
        assert part.encoding == "ucs2" and part.count == 1
        assert "#K001" in part.text and "누수" in part.text and "전산실 UPS 하단" in part.text
    assert "AT+CPIN=<pin>" in sim.commands  # the SIM asked and got it
    status = status_of(store)
    conn = sqlite3.connect(store.path)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert f"pin={PIN}" not in dump
    shown = status["channels"][0]["url"]
    assert shown == f"modem://{sim.link}/01012345678/+821098765432"
    for text in (caplog.text, json.dumps(status), json.dumps(health)):
        assert f"pin={PIN}" not in text and f"CPIN={PIN}" not in text
    assert PIN not in shown


async def test_long_text_arrives_as_a_multipart_message(store: Store, modem: ModemSim, tmp_path):
    yml = write_apprise(tmp_path / "apprise.yml", [(modem_url(modem), ["critical", "lms"])])
    outbox, sender = await make_delivery(store, yml)
    e = event("L001", location="본관 3층 전산실 항온항습기 옆 UPS 하단 누수 감지 케이블 " * 3)
    async with running(sender):
        await enqueue(store, outbox, e)
        await until(lambda: sender.health()["sent"] == 1, 15, "sent")
    message = sender.templates.render_group([e], "long")
    assert len(modem.parts) > 1
    assert {p.count for p in modem.parts} == {len(modem.parts)}
    assert len({p.reference for p in modem.parts}) == 1
    [(recipient, whole)] = modem.messages()
    assert recipient == "01012345678"
    assert message.body.strip() in whole and message.title in whole


async def test_cms_error_is_a_failure_retried_until_delivered(
    store: Store, modem: ModemSim, tmp_path: Path
):
    modem.fail("cms", times=2)
    yml = write_apprise(tmp_path / "apprise.yml", [(modem_url(modem), ["critical"])])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event("C001"))
        await until(lambda: sender.health()["failed_sends"] >= 1, 15, "a failure")
        error = await channel_error(store)
        await until(lambda: sender.health()["sent"] == 1, 15, "sent after the errors")
    assert "+CMS ERROR: 500" in error
    assert len(modem.messages()) == 1 and "#C001" in modem.messages()[0][1]
    assert await rows(store, "SELECT state, attempts FROM outbox_message") == [("sent", 3)]


async def test_plain_error_and_silence_are_failures_too(
    store: Store, modem: ModemSim, tmp_path: Path
):
    modem.fail("error")
    modem.fail("silent")
    yml = write_apprise(tmp_path / "apprise.yml", [(modem_url(modem), ["critical"])])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    errors: list[str] = []

    async def failures(n: int) -> None:
        await until(lambda: sender.health()["failed_sends"] >= n, 15, f"{n} failures")
        errors.append(await channel_error(store))

    async with running(sender):
        await enqueue(store, outbox, event("E001"))
        await failures(1)
        await failures(2)
        await until(lambda: sender.health()["sent"] == 1, 15, "sent")
    assert "answered ERROR" in errors[0]
    assert "no answer to AT+CMGS" in errors[1]
    assert [m[1].count("#E001") for m in modem.messages()] == [1]


async def test_dropped_line_fails_and_the_replugged_modem_sends(
    store: Store, modem: ModemSim, tmp_path: Path
):
    modem.fail("drop")
    yml = write_apprise(tmp_path / "apprise.yml", [(modem_url(modem), ["critical"])])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05, retry_max=0.2)
    async with running(sender):
        await enqueue(store, outbox, event("D001"))
        await until(lambda: sender.health()["failed_sends"] >= 2, 15, "failures while unplugged")
        error = await channel_error(store)
        assert await rows(store, "SELECT state FROM outbox_message") == [("pending",)]
        modem.replug()
        await until(lambda: sender.health()["sent"] == 1, 15, "sent after replug")
    assert "cannot open" in error or "line dropped" in error
    assert len(modem.messages()) == 1


async def test_no_network_is_a_failure_named_so(store: Store, modem: ModemSim, tmp_path: Path):
    modem.registered = False
    yml = write_apprise(tmp_path / "apprise.yml", [(modem_url(modem), ["critical"])])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05, retry_max=0.2)
    async with running(sender):
        await enqueue(store, outbox, event("N001"))
        await until(lambda: sender.health()["failed_sends"] >= 1, 15, "a failure")
        error = await channel_error(store)
        modem.registered = True
        await until(lambda: sender.health()["sent"] == 1, 15, "sent once registered")
    assert "no network (searching, signal CSQ 21)" in error
    assert modem.parts and not any("AT+CMGS" in c for c in modem.commands[:6])


# -- fallback --------------------------------------------------------------------------------


def _fallback_config(tmp_path: Path, sink: HttpSink, sim: ModemSim) -> Path:
    return write_apprise(
        tmp_path / "apprise.yml",
        [(sink.json_url("/net"), ["critical"]), (modem_url(sim), ["modem"])],
    )


FALLBACK = {"fallback_tags": ["modem"], "retry_initial": 0.05, "retry_max": 0.2}


async def test_fallback_sends_the_modem_sms_once_when_the_network_keeps_failing(
    store: Store, modem: ModemSim, http_sink: HttpSink, tmp_path: Path
):
    http_sink.fail("/net", times=100_000)
    yml = _fallback_config(tmp_path, http_sink, modem)
    outbox, sender = await make_delivery(store, yml, fallback_after=1.0, **FALLBACK)
    async with running(sender):
        await enqueue(store, outbox, event("F001"))
        await until(lambda: modem.parts, 15, "the fallback SMS")
        [(first_failure,)] = await rows(
            store, "SELECT failing_since FROM alert_channel WHERE display LIKE 'json%'"
        )
        # the network channel keeps being retried meanwhile; the fallback is not repeated
        failed = sender.health()["failed_sends"]
        await until(lambda: sender.health()["failed_sends"] >= failed + 5, 15, "more retries")
    assert len(modem.messages()) == 1 and "#F001" in modem.messages()[0][1]
    assert modem.parts[0].at - first_failure >= 1.0  # not before fallback_after
    fallback_rows = await rows(
        store, "SELECT state FROM outbox_message WHERE fallback = 1 AND alarm_id = 'F001'"
    )
    assert fallback_rows == [("sent",)]
    net = await rows(store, "SELECT state FROM outbox_message WHERE fallback = 0")
    assert net == [("pending",)]  # the network page is still owed and still retried
    status = status_of(store)
    assert status["fallback_used"] == 1 and status["last_fallback"] is not None
    console = Console(record=True, width=200)
    show_alerts({"alerts": status}, console, status["last_fallback"] + 60)
    assert "fallback (modem) used for 1 message(s), last 60s ago" in console.export_text()
    assert sender.health()["fallbacks"] == 1


async def test_no_fallback_while_the_network_works(
    store: Store, modem: ModemSim, http_sink: HttpSink, tmp_path: Path
):
    yml = _fallback_config(tmp_path, http_sink, modem)
    outbox, sender = await make_delivery(store, yml, fallback_after=0.3, **FALLBACK)
    async with running(sender):
        await enqueue(store, outbox, event("G001"))
        await http_sink.wait_delivered(1, "/net")
        await asyncio.sleep(0.8)  # past fallback_after: nothing may go to the modem
    assert modem.parts == [] and modem.commands == []
    assert await rows(store, "SELECT COUNT(*) FROM outbox_message WHERE fallback = 1") == [(0,)]


async def test_fallback_survives_restarts_without_a_duplicate(
    store: Store, modem: ModemSim, http_sink: HttpSink, tmp_path: Path
):
    http_sink.fail("/net", times=100_000)
    yml = _fallback_config(tmp_path, http_sink, modem)
    outbox, sender = await make_delivery(store, yml, fallback_after=1.5, **FALLBACK)
    async with running(sender):
        await enqueue(store, outbox, event("R001"))
        await until(lambda: sender.health()["failed_sends"] >= 1, 15, "the network failing")
    assert modem.parts == []  # stopped before fallback_after
    # a new process: the failing time comes back from the database, not from zero

    async def fallback_sent() -> int:
        sql = "SELECT COUNT(*) FROM outbox_message WHERE fallback = 1 AND state = 'sent'"
        return int((await rows(store, sql))[0][0])

    for _ in range(2):
        outbox, sender = await make_delivery(store, yml, fallback_after=1.5, **FALLBACK)
        async with running(sender):
            # stopped only once the SMS is recorded as sent: a stop between the modem's OK
            # and that record resends it (at-least-once), which is not what this is about
            await until(fallback_sent, 15, "the fallback SMS sent")
            await until(lambda s=sender: s.health()["failed_sends"] >= 3, 15, "retries")
    assert len(modem.messages()) == 1 and "#R001" in modem.messages()[0][1]
    assert await rows(store, "SELECT COUNT(*) FROM outbox_message WHERE fallback = 1") == [(1,)]


# -- config --------------------------------------------------------------------------------


def _sentinel_toml(tmp_path: Path, alerts: str, urls: list[tuple[str, list[str]]]) -> Path:
    write_apprise(tmp_path / "apprise.yml", urls).chmod(0o600)
    path = tmp_path / "sentinel.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[alerts]\napprise_config = "apprise.yml"\n{alerts}',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


async def test_fallback_is_wired_from_the_config(tmp_path: Path, store: Store):
    urls = [
        ("json://127.0.0.1:9/x", ["critical", "warning"]),
        ("modem:///dev/ttyX/0101", ["modem"]),
    ]
    path = _sentinel_toml(tmp_path, 'fallback_tags = ["modem"]\nfallback_after = "3m"\n', urls)
    config = load_config(path)
    assert preflight(config, path) == []
    _outbox, sender = build_delivery(config, store)
    assert [c.display for c in sender.fallback] == ["modem:///dev/ttyX/0101"]
    assert sender.fallback_after == 180.0


def test_a_fallback_tag_no_channel_carries_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    urls = [("json://127.0.0.1:9/x", ["critical", "warning"])]
    path = _sentinel_toml(tmp_path, 'fallback_tags = ["modem"]\n', urls)
    assert main(["-c", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "alerts.fallback_tags: no channel in" in err and "carries the tag(s) modem" in err


def test_a_modem_send_that_may_outlast_send_timeout_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    urls = [
        ("json://127.0.0.1:9/x", ["critical", "warning"]),
        ("modem:///dev/ttyX/0101?timeout=30", ["modem"]),
    ]
    path = _sentinel_toml(tmp_path, 'send_timeout = "10s"\n', urls)
    assert main(["-c", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "modem:///dev/ttyX/0101: timeout=30 must be below [alerts] send_timeout (10s)" in err


# -- kill -9 -------------------------------------------------------------------------------

# The sender alone in its own process, as the daemon runs it, so the test can kill -9 it.
SENDER_PROCESS = """
import asyncio, sys
from pathlib import Path
from alerts.channels import load_channels
from alerts.outbox import Outbox
from alerts.sender import Sender
from alerts.templates import Templates
from sentinel.store import Store

async def main():
    store = await Store.open(Path(sys.argv[1]))
    outbox = Outbox(load_channels(Path(sys.argv[2])), {"critical": ["critical"]})
    sender = Sender(outbox, store.write, Templates(site="x"), group_window=0.0,
                    retry_initial=0.05, retry_max=0.2, send_timeout=5.0,
                    fallback_tags=["modem"], fallback_after=float(sys.argv[3]))
    await sender.run()

asyncio.run(main())
"""


def _count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0  # not created yet
    finally:
        conn.close()


async def test_kill_9_before_and_after_the_fallback_neither_loses_nor_duplicates_it(
    modem: ModemSim, http_sink: HttpSink, tmp_path: Path
):
    http_sink.fail("/net", times=100_000)
    # a long timeout (below the sender's send_timeout 5): the unanswered SMS of step 2 is
    # not retried before the kill
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (http_sink.json_url("/net"), ["critical"]),
            (modem_url(modem, query="timeout=4"), ["modem"]),
        ],
    )
    state = tmp_path / "killed"
    store = await Store.open(state)
    try:
        await migrations.migrate(store)
        outbox = Outbox(load_channels(yml), {"critical": ["critical"]})
        await enqueue(store, outbox, event("K009"))
        db = store.path
    finally:
        await store.close()
    failing = "SELECT COUNT(*) FROM alert_channel WHERE failing_since IS NOT NULL"
    fallen = "SELECT COUNT(*) FROM outbox_message WHERE fallback = 1"
    fallback_sent = fallen + " AND state = 'sent'"
    # the first SMS attempt gets no answer: killed then, it cannot have been delivered
    modem.fail("silent")

    def start(after: float) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", SENDER_PROCESS, str(state), str(yml), str(after)],
            cwd=Path(__file__).parents[2],
        )

    async def kill_when(process: subprocess.Popen[bytes], sql: str) -> None:
        try:
            await until(lambda: _count(db, sql) >= 1, 30, sql)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    # 1. killed while the network fails, before fallback_after has passed
    await kill_when(start(after=60.0), failing)
    assert _count(db, fallen) == 0
    # 2. killed right after the fallback row was committed, its SMS unanswered
    await kill_when(start(after=0.5), fallen)
    assert _count(db, fallen) == 1 and modem.parts == []
    # 3. the next start sends the SMS once and adds no second fallback row
    process = start(after=0.5)
    try:
        await until(lambda: _count(db, fallback_sent) == 1, 30, "the fallback SMS sent")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert _count(db, fallen) == 1
    assert [m[1].count("#K009") for m in modem.messages()] == [1]
