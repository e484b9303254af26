"""Korean SMS gateways (aligo://, nhnsms://, solapi://) through the real Sender + Outbox +
SQLite, against loopback servers that answer as each provider's documentation says."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from alerts.channels import ChannelConfigError, load_channels
from alerts.gateways.base import Outgoing, outgoing
from alerts.status import read_status
from alerts.templates import sms_bytes
from sentinel import migrations
from sentinel.config import ConfigError, load_config
from sentinel.delivery import build_delivery, load_configured_channels
from sentinel.status import build_report_without_config
from sentinel.store import Store
from sentinel.web.metrics import render
from tests.alerts.helpers import enqueue, event, make_delivery, rows, running, write_apprise
from tests.fixtures.poll import until

KEY = "AligoKEYzt5p0p7c6we0w7"
APP_KEY = "NhnAPPkey4Qx9"
SECRET = "NhnSECRETk8Ww2"
SOLAPI_KEY = "NCSAYU7YDBXYORXC"
SOLAPI_SECRET = "SolSECRETx0ZNE61YQE0HU9"
SECRETS = (KEY, APP_KEY, SECRET, SOLAPI_KEY, SOLAPI_SECRET)
SENDER = "0212345678"
RECEIVERS = ("01011112222", "01033334444")


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    body: Any


@dataclass
class ProviderStub:
    """A loopback HTTP server answering each POST with the next scripted (status, JSON)
    for its path, or with `success` once the script is used up."""

    success: dict[str, Any]
    script: list[tuple[int, Any]] = field(default_factory=list)
    stall: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._closing = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                text = raw.decode("utf-8")
                form: dict[str, str] = {}
                body: Any = None
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(text)
                else:
                    form = {k: v[0] for k, v in parse_qs(text).items()}
                with stub._lock:
                    stub.seen.append(Seen(self.path, dict(self.headers.items()), form, body))
                    status, answer = stub.script.pop(0) if stub.script else (200, stub.success)
                if stub.stall:
                    stub._closing.wait(stub.stall)
                # bytes are sent as they are: a proxy's HTML page, an empty body
                raw = isinstance(answer, bytes)
                data = answer if raw else json.dumps(answer, ensure_ascii=False).encode()
                kind = "text/html" if raw else "application/json;charset=UTF-8"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


ALIGO_OK = {"result_code": "1", "message": "success", "msg_id": "123456789", "success_cnt": 2}
NHN_OK = {
    "header": {"isSuccessful": True, "resultCode": 0, "resultMessage": "SUCCESS"},
    "body": {
        "data": {
            "requestId": "20260101000000abcde",
            "statusCode": "2",
            "sendResultList": [
                {"recipientNo": r, "resultCode": 0, "resultMessage": "SUCCESS", "recipientSeq": i}
                for i, r in enumerate(RECEIVERS, 1)
            ],
        }
    },
}
SOLAPI_OK = {
    "failedMessageList": [],
    "groupInfo": {
        "groupId": "G4V20260101",
        "status": "SENDING",
        "count": {"total": 2, "registeredFailed": 0, "registeredSuccess": 2},
    },
    "messageList": [
        {"to": r, "statusCode": "2000", "statusMessage": "정상 접수(이통사로 접수 예정) "}
        for r in RECEIVERS
    ],
}


@pytest.fixture
def stubs() -> Iterator[list[ProviderStub]]:
    made: list[ProviderStub] = []
    yield made
    for stub in made:
        stub.close()


def _stub(stubs: list[ProviderStub], success: dict[str, Any], **kwargs: Any) -> ProviderStub:
    stub = ProviderStub(success, **kwargs)
    stubs.append(stub)
    return stub


def aligo_url(stub: ProviderStub, query: str = "") -> str:
    return f"aligo://sentinel:{KEY}@{SENDER}/{'/'.join(RECEIVERS)}?url={stub.base}{query}"


def nhn_url(stub: ProviderStub, query: str = "") -> str:
    return f"nhnsms://{APP_KEY}:{SECRET}@{SENDER}/{'/'.join(RECEIVERS)}?url={stub.base}{query}"


def solapi_url(stub: ProviderStub, query: str = "") -> str:
    return (
        f"solapi://{SOLAPI_KEY}:{SOLAPI_SECRET}@{SENDER}/{'/'.join(RECEIVERS)}"
        f"?url={stub.base}{query}"
    )


async def _deliver_once(
    store: Store, tmp_path: Path, url: str, tags: list[str], stub: ProviderStub, alarm: str
) -> None:
    """Sends one critical alarm through `url` until the stub saw a successful request."""
    yml = write_apprise(tmp_path / "apprise.yml", [(url, tags)])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event(alarm))
        await until(lambda: sender.health()["sent"] == 1, 15, 'sender.health()["sent"] == 1')


async def _channel(store: Store) -> tuple[Any, ...]:
    got = await rows(
        store,
        "SELECT display, last_error, consecutive_failures, failed_total, sent_total "
        "FROM alert_channel",
    )
    assert len(got) == 1
    return got[0]


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


# -- SMS or LMS ------------------------------------------------------------------------------


def test_sms_up_to_90_euc_kr_bytes_lms_beyond():
    fits = "가" * 45  # 2 bytes each in EUC-KR
    assert sms_bytes(fits) == 90
    assert outgoing(fits, "").kind == "SMS"
    assert outgoing(fits + "a", "").kind == "LMS"
    assert outgoing("a" * 90, "").kind == "SMS"
    # a title goes into an SMS's text, and counts
    assert outgoing("a" * 79, "b" * 10) == Outgoing("SMS", "b" * 10 + "\n" + "a" * 79, "")
    assert outgoing("a" * 80, "b" * 10) == Outgoing("LMS", "a" * 80, "b" * 10)
    lms = outgoing("본문" * 60, "제목" * 30)
    assert lms.kind == "LMS" and lms.text == "본문" * 60
    assert sms_bytes(lms.title) <= 40 and lms.title.startswith("제목")


# -- Aligo -----------------------------------------------------------------------------------


async def test_aligo_sms_carries_the_documented_fields(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    stub = _stub(stubs, ALIGO_OK)
    await _deliver_once(store, tmp_path, aligo_url(stub), ["critical"], stub, "AL01")
    [seen] = stub.seen
    assert seen.path == "/send/"
    assert seen.form["key"] == KEY and seen.form["user_id"] == "sentinel"
    assert seen.form["sender"] == SENDER
    assert seen.form["receiver"] == ",".join(RECEIVERS)
    assert seen.form["msg_type"] == "SMS" and "title" not in seen.form
    assert "#AL01" in seen.form["msg"] and sms_bytes(seen.form["msg"]) <= 90
    assert await rows(store, "SELECT state, attempts FROM outbox_message") == [("sent", 1)]
    display = (await _channel(store))[0]
    assert display.startswith("aligo://sentinel:****@") and KEY not in display


async def test_aligo_failure_code_with_http_200_is_retried_not_delivered(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    # Aligo answers a wrong key with HTTP 200 and result_code -101; the text may quote
    # what it was given
    refused = {"result_code": -101, "message": f"인증오류입니다.-key:{KEY}"}
    stub = _stub(stubs, ALIGO_OK, script=[(200, refused)])
    await _deliver_once(store, tmp_path, aligo_url(stub), ["critical"], stub, "AL02")
    assert len(stub.seen) == 2  # refused, then retried
    assert await rows(store, "SELECT state, attempts FROM outbox_message") == [("sent", 2)]
    _, error, _, failed_total, sent_total = await _channel(store)
    assert "result_code -101" in error and "인증오류" in error
    assert KEY not in error
    assert failed_total == 1 and sent_total == 1


async def test_aligo_refusal_keeps_the_row_pending(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    refused = {"result_code": -105, "message": "발신번호 미등록"}
    stub = _stub(stubs, refused)  # never accepts
    yml = write_apprise(tmp_path / "apprise.yml", [(aligo_url(stub), ["critical"])])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event("AL03"))
        await until(lambda: len(stub.seen) >= 3, 15, "three attempts")
    assert await rows(store, "SELECT state FROM outbox_message") == [("pending",)]
    assert "-105" in (await _channel(store))[1]


async def test_aligo_lms_when_tagged_lms(store: Store, tmp_path: Path, stubs: list[ProviderStub]):
    stub = _stub(stubs, ALIGO_OK)
    url = aligo_url(stub, "&testmode=yes")
    await _deliver_once(store, tmp_path, url, ["critical", "lms"], stub, "AL04")
    [seen] = stub.seen
    assert seen.form["msg_type"] == "LMS"
    assert sms_bytes(seen.form["msg"]) > 90 and seen.form["title"]
    assert seen.form["testmode_yn"] == "Y"


async def test_a_stalled_gateway_fails_within_its_read_timeout(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    stub = _stub(stubs, ALIGO_OK, stall=30.0)
    yml = write_apprise(tmp_path / "apprise.yml", [(aligo_url(stub, "&rto=0.5"), ["critical"])])
    outbox, sender = await make_delivery(store, yml, send_timeout=20.0, retry_initial=60)
    async with running(sender):
        await enqueue(store, outbox, event("AL05"))
        # the sender's own 20 s limit is far off: the plugin's read timeout ended the send
        await until(lambda: sender.health()["failed_sends"] == 1, 10, "one failed send")
    assert "Timeout" in (await _channel(store))[1]
    assert await rows(store, "SELECT state FROM outbox_message") == [("pending",)]


# -- NHN Cloud -------------------------------------------------------------------------------


async def test_nhn_sms_request_and_success(store: Store, tmp_path: Path, stubs: list[ProviderStub]):
    stub = _stub(stubs, NHN_OK)
    await _deliver_once(store, tmp_path, nhn_url(stub), ["critical"], stub, "NH01")
    [seen] = stub.seen
    assert seen.path == f"/sms/v3.0/appKeys/{APP_KEY}/sender/sms"
    assert seen.headers["X-Secret-Key"] == SECRET
    assert seen.body["sendNo"] == SENDER
    assert [r["recipientNo"] for r in seen.body["recipientList"]] == list(RECEIVERS)
    assert "#NH01" in seen.body["body"] and "title" not in seen.body
    display = (await _channel(store))[0]
    assert _leaks(display) == []


async def test_nhn_lms_goes_to_the_mms_endpoint_with_a_title(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    stub = _stub(stubs, NHN_OK)
    await _deliver_once(store, tmp_path, nhn_url(stub), ["critical", "lms"], stub, "NH02")
    [seen] = stub.seen
    assert seen.path.endswith("/sender/mms")
    assert seen.body["title"] and sms_bytes(seen.body["body"]) > 90


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        (
            {
                "header": {
                    "isSuccessful": False,
                    "resultCode": -1001,
                    "resultMessage": "Invalid secret key",
                }
            },
            "resultCode -1001: Invalid secret key",
        ),
        (
            {
                "header": {"isSuccessful": True, "resultCode": 0, "resultMessage": "SUCCESS"},
                "body": {
                    "data": {
                        "requestId": "x",
                        "statusCode": "2",
                        "sendResultList": [
                            {"recipientNo": RECEIVERS[0], "resultCode": 0},
                            {
                                "recipientNo": RECEIVERS[1],
                                "resultCode": -2008,
                                "resultMessage": "Invalid recipient number",
                            },
                        ],
                    }
                },
            },
            "1 of 2 receiver(s) refused, resultCode -2008: Invalid recipient number",
        ),
    ],
    ids=["isSuccessful-false", "one-receiver-refused"],
)
async def test_nhn_failure_bodies_are_failures(
    store: Store, tmp_path: Path, stubs: list[ProviderStub], answer: dict[str, Any], shown: str
):
    stub = _stub(stubs, NHN_OK, script=[(200, answer)])
    await _deliver_once(store, tmp_path, nhn_url(stub), ["critical"], stub, "NH03")
    assert len(stub.seen) == 2
    assert await rows(store, "SELECT state, attempts FROM outbox_message") == [("sent", 2)]
    assert shown in (await _channel(store))[1]


# -- Solapi ----------------------------------------------------------------------------------

_AUTH = re.compile(
    r"^HMAC-SHA256 apiKey=(?P<key>[^,]+), date=(?P<date>[^,]+), salt=(?P<salt>[^,]+), "
    r"signature=(?P<sig>[0-9a-f]{64})$"
)


def _signature_holds(header: str) -> bool:
    """What Solapi checks: HMAC-SHA256 of date + salt under the API secret."""
    match = _AUTH.match(header)
    if match is None or match["key"] != SOLAPI_KEY:
        return False
    mac = hmac.new(SOLAPI_SECRET.encode(), (match["date"] + match["salt"]).encode(), hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), match["sig"])


async def test_solapi_request_is_signed_and_carries_the_messages(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    stub = _stub(stubs, SOLAPI_OK)
    await _deliver_once(store, tmp_path, solapi_url(stub), ["critical"], stub, "SO01")
    [seen] = stub.seen
    assert seen.path == "/messages/v4/send-many/detail"
    assert _signature_holds(seen.headers["Authorization"])
    assert not _signature_holds(seen.headers["Authorization"].replace("salt=", "salt=0"))
    messages = seen.body["messages"]
    assert [m["to"] for m in messages] == list(RECEIVERS)
    assert {m["from"] for m in messages} == {SENDER}
    assert {m["type"] for m in messages} == {"SMS"}
    assert "#SO01" in messages[0]["text"]


@pytest.mark.parametrize(
    ("status", "answer", "shown"),
    [
        (
            403,
            {"errorCode": "SignatureDoesNotMatch", "errorMessage": "signature mismatch"},
            "HTTP 403, SignatureDoesNotMatch: signature mismatch",
        ),
        (
            200,
            {
                "failedMessageList": [
                    {"to": RECEIVERS[1], "statusCode": "1062", "statusMessage": "발신번호 미등록"}
                ],
                "groupInfo": {"count": {"total": 2, "registeredFailed": 1}},
            },
            "1 message(s) refused, statusCode 1062: 발신번호 미등록",
        ),
    ],
    ids=["error-status", "failed-message"],
)
async def test_solapi_failures_are_failures(
    store: Store,
    tmp_path: Path,
    stubs: list[ProviderStub],
    status: int,
    answer: dict[str, Any],
    shown: str,
):
    stub = _stub(stubs, SOLAPI_OK, script=[(status, answer)])
    await _deliver_once(store, tmp_path, solapi_url(stub), ["critical", "lms"], stub, "SO02")
    assert {m["type"] for m in stub.seen[-1].body["messages"]} == {"LMS"}
    assert await rows(store, "SELECT state, attempts FROM outbox_message") == [("sent", 2)]
    assert shown in (await _channel(store))[1]


async def test_a_character_euc_kr_lacks_is_replaced_not_sent(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    # NHN documents that a character EUC-KR lacks (an emoji) fails the message: it would
    # fail on every retry. A location named with one still pages, with '?' for it
    stub = _stub(stubs, NHN_OK)
    yml = write_apprise(tmp_path / "apprise.yml", [(nhn_url(stub), ["critical"])])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event("EM01", location="서버실🔥 랙"))
        await until(lambda: sender.health()["sent"] == 1, 15, "sent")
    [seen] = stub.seen
    text = seen.body["body"]
    assert text.encode("euc-kr") and "서버실? 랙" in text and "#EM01" in text


async def test_an_answer_quoted_in_the_error_is_masked_before_it_is_cut(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    # a relay's error page echoing the request, the secret across the 80 characters quoted
    page = f"<html><body>{APP_KEY}: {'-' * 44} {SECRET}</body></html>".encode()
    stub = _stub(stubs, NHN_OK, script=[(200, page)])
    await _deliver_once(store, tmp_path, nhn_url(stub), ["critical"], stub, "CUT1")
    error = (await _channel(store))[1]
    assert "****" in error
    assert SECRET[:4] not in error and APP_KEY[:4] not in error


# -- answers that are not the documented success -------------------------------------------

_URLS = {"aligo": aligo_url, "nhn": nhn_url, "solapi": solapi_url}
_OK = {"aligo": ALIGO_OK, "nhn": NHN_OK, "solapi": SOLAPI_OK}
_NHN_ONE_RESULT = {
    "header": {"isSuccessful": True, "resultCode": 0, "resultMessage": "SUCCESS"},
    "body": {"data": {"sendResultList": [{"recipientNo": RECEIVERS[0], "resultCode": 0}]}},
}


@pytest.mark.parametrize(
    ("gateway", "status", "answer", "shown"),
    [
        # result_code 1 only says the request was taken; one of the two receivers was not
        (
            "aligo",
            200,
            {"result_code": "1", "message": "success", "success_cnt": 1, "error_cnt": 1},
            "1 of 2 receiver(s) refused",
        ),
        (
            "aligo",
            200,
            {"result_code": 1, "message": "success", "success_cnt": 0, "error_cnt": "2"},
            "2 of 2 receiver(s) refused",
        ),
        ("aligo", 200, {"result_code": "1", "error_cnt": "x"}, "error_cnt 'x' is not a count"),
        ("aligo", 502, {"result_code": "1"}, "HTTP 502, result_code 1"),
        ("aligo", 200, b"<html><body>Service Unavailable</body></html>", "answer is not JSON"),
        ("aligo", 200, b"", "answer is not JSON"),
        # a receiver missing from the per-receiver results was not taken
        ("nhn", 200, _NHN_ONE_RESULT, "1 of 2 receiver(s) refused"),
        ("nhn", 200, {"header": "ok"}, "resultCode None"),
        ("nhn", 200, [1, 2], "resultCode None"),
        ("solapi", 200, {"failedMessageList": 5, "groupInfo": {}}, "no groupInfo"),
        ("solapi", 200, {"failedMessageList": [], "groupInfo": "x"}, "no groupInfo"),
        (
            "solapi",
            200,
            {"failedMessageList": [], "groupInfo": {"count": {"registeredSuccess": 1}}},
            "1 message(s) refused",
        ),
        (
            "solapi",
            200,
            {"failedMessageList": [], "groupInfo": {"count": {"registeredFailed": "x"}}},
            "registeredFailed 'x' is not a count",
        ),
        # a JSON shape verdict() does not expect is a failure that says so
        ("solapi", 200, {"failedMessageList": [7], "groupInfo": {}}, "statusCode None"),
    ],
    ids=[
        "aligo-one-refused",
        "aligo-none-taken",
        "aligo-odd-count",
        "aligo-http-502",
        "aligo-html-200",
        "aligo-empty-200",
        "nhn-result-missing",
        "nhn-header-not-object",
        "nhn-list-answer",
        "solapi-failed-not-list",
        "solapi-group-not-object",
        "solapi-fewer-registered",
        "solapi-odd-count",
        "solapi-failed-not-object",
    ],
)
async def test_answers_other_than_the_documented_success_are_failures(
    store: Store,
    tmp_path: Path,
    stubs: list[ProviderStub],
    gateway: str,
    status: int,
    answer: Any,
    shown: str,
):
    stub = _stub(stubs, _OK[gateway], script=[(status, answer)])
    await _deliver_once(store, tmp_path, _URLS[gateway](stub), ["critical"], stub, "OD01")
    assert len(stub.seen) == 2  # the odd answer, then the retry
    assert await rows(store, "SELECT state, attempts FROM outbox_message") == [("sent", 2)]
    error = (await _channel(store))[1]
    assert shown in error
    assert _leaks(error) == []


async def test_a_refused_connection_is_a_failure_without_the_url(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    # requests' ConnectionError text carries the URL, and NHN's app key is in its path
    stub = _stub(stubs, NHN_OK)
    port = stub.port
    stub.close()
    url = f"nhnsms://{APP_KEY}:{SECRET}@{SENDER}/{RECEIVERS[0]}?url=http://127.0.0.1:{port}"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, ["critical"])])
    outbox, sender = await make_delivery(store, yml, retry_initial=60)
    async with running(sender):
        await enqueue(store, outbox, event("OD02"))
        await until(lambda: sender.health()["failed_sends"] == 1, 10, "one failed send")
    error = (await _channel(store))[1]
    assert "unreachable: ConnectionError" in error
    assert _leaks(error) == [] and str(port) not in error
    assert await rows(store, "SELECT state FROM outbox_message") == [("pending",)]


# -- secrets ---------------------------------------------------------------------------------


async def test_gateway_secrets_stay_out_of_logs_status_and_database(
    store: Store, tmp_path: Path, stubs: list[ProviderStub], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")
    echo = f"rejected {KEY} {APP_KEY} {SECRET} {SOLAPI_KEY} {SOLAPI_SECRET}"
    aligo = _stub(stubs, {"result_code": -101, "message": echo})
    nhn = _stub(
        stubs, {"header": {"isSuccessful": False, "resultCode": -1001, "resultMessage": echo}}
    )
    solapi = _stub(stubs, {"errorCode": "Forbidden", "errorMessage": echo})
    solapi.script = [(403, {"errorCode": "Forbidden", "errorMessage": echo})] * 100
    urls = [aligo_url(aligo), nhn_url(nhn), solapi_url(solapi)]
    yml = write_apprise(tmp_path / "apprise.yml", [(u, ["critical"]) for u in urls])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event("SE01"))
        await until(lambda: sender.health()["failed_sends"] >= 6, 15, "two failures each")
        health = sender.health()
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "refused" in logged
    assert _leaks(logged) == []
    assert _leaks(json.dumps(health)) == []
    conn = sqlite3.connect(store.path)
    try:
        status = read_status(conn, 0.0)
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert all(c["last_error"] for c in status["channels"])
    assert _leaks(json.dumps(status)) == []
    assert _leaks(dump) == []
    shown = sorted(c["url"] for c in status["channels"])
    assert [u.split("://")[0] for u in shown] == ["aligo", "nhnsms", "solapi"]
    # what `sentinel status --json`, the web's /api/status and /metrics are built from
    report = build_report_without_config(
        tmp_path / "absent.toml", "absent", state_dir=store.path.parent
    )
    assert len(report["alerts"]["channels"]) == 3
    assert all(c["last_error"] for c in report["alerts"]["channels"])
    assert _leaks(json.dumps(report, default=str)) == []
    assert _leaks(render(report).decode()) == []


def test_gateway_channels_get_the_sms_form_and_masked_urls(tmp_path: Path):
    base = "http://127.0.0.1:9"
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (f"aligo://sentinel:{KEY}@{SENDER}/{RECEIVERS[0]}?url={base}", []),
            (f"nhnsms://{APP_KEY}:{SECRET}@{SENDER}/{RECEIVERS[0]}", ["lms"]),
            (f"solapi://{SOLAPI_KEY}:{SOLAPI_SECRET}@{SENDER}/{RECEIVERS[0]}", []),
            (f"coolsms://{SOLAPI_KEY}:{SOLAPI_SECRET}@{SENDER}/{RECEIVERS[1]}", []),
        ],
    )
    channels = load_channels(yml)
    assert [c.form for c in channels] == ["sms", "long", "sms", "sms"]
    for channel in channels:
        assert _leaks(channel.display) == []
        assert set(channel.secrets) >= {
            s for s in SECRETS if s in channel.apprise[0].url(privacy=False)
        }
        assert _leaks(channel.scrub(channel.apprise[0].url(privacy=False))) == []
    assert channels[0].display == f"aligo://sentinel:****@****/****?url={base}"


# -- a county's own plugins ([alerts] plugin_dir) --------------------------------------------

COUNTY_PLUGIN = """
import requests
from apprise.decorators import notify


@notify(on="countysms", name="County SMS relay")
def relay(body, title, notify_type, meta, *args, **kwargs):
    answer = requests.post(
        f"http://{meta['host']}:{meta['port']}/send/",
        data={"key": meta["password"], "msg": body},
        timeout=5,
    )
    return answer.json().get("result_code") == "1"
"""


def _county_config(tmp_path: Path, url: str) -> Path:
    yml = write_apprise(tmp_path / "apprise.yml", [(url, ["critical"])])
    toml = tmp_path / "sentinel.toml"
    toml.write_text(
        f'[site]\nname = "군청"\n[alerts]\napprise_config = "{yml.name}"\nplugin_dir = "plugins"\n',
        encoding="utf-8",
    )
    return toml


async def test_county_plugin_from_plugin_dir_sends_and_is_masked(
    store: Store, tmp_path: Path, stubs: list[ProviderStub]
):
    stub = _stub(stubs, ALIGO_OK)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "county.py").write_text(COUNTY_PLUGIN, encoding="utf-8")
    url = f"countysms://county:{KEY}@127.0.0.1:{stub.port}/{RECEIVERS[0]}"
    config = load_config(_county_config(tmp_path, url))
    assert config.alerts.plugin_dir == tmp_path / "plugins"
    await migrations.migrate(store)
    outbox, sender = build_delivery(config, store)
    [channel] = outbox.channels
    assert channel.display == f"countysms://county:****@127.0.0.1:{stub.port}/****"
    assert channel.form == "long"  # not a known SMS scheme: tag it `sms` for the SMS form
    async with running(sender):
        await enqueue(store, outbox, event("CT01"))
        await until(lambda: sender.health()["sent"] == 1, 15, 'sender.health()["sent"] == 1')
    [seen] = stub.seen
    assert seen.form["key"] == KEY and "#CT01" in seen.form["msg"]
    assert _leaks(str(await rows(store, "SELECT * FROM alert_channel"))) == []


def test_a_plugin_file_that_cannot_be_imported_is_a_config_error(tmp_path: Path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "broken.py").write_text("import no_such_module_x\n", "utf-8")
    config = load_config(_county_config(tmp_path, "brokensms://x:y@host/1"))
    with pytest.raises(ConfigError, match=r"alerts\.plugin_dir: .*broken\.py: .*no_such_module_x"):
        build_delivery(config, None)  # type: ignore[arg-type]  # fails before using it
    # fixed, the next load (a reload, check-config) imports it
    (tmp_path / "plugins" / "broken.py").write_text(
        COUNTY_PLUGIN.replace('"countysms"', '"brokensms"'), "utf-8"
    )
    [channel] = load_configured_channels(config.alerts)
    assert channel.schema == "brokensms"


@pytest.mark.parametrize("scheme", ["json", "aligo", None])
def test_a_plugin_that_asks_for_a_taken_scheme_is_a_config_error(
    tmp_path: Path, scheme: str | None
):
    # Apprise keeps the first plugin of a scheme and only warns: the county's URLs would
    # have gone to Apprise's JSON or our Aligo plugin, or to the other county file's.
    # A scheme stays registered for the process: each test gets its own.
    own = f"shadowed{tmp_path.name.rsplit('_', 1)[-1]}sms"
    scheme = scheme or own
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "a_relay.py").write_text(
        COUNTY_PLUGIN.replace('"countysms"', f'"{own}"'), "utf-8"
    )
    (tmp_path / "plugins" / "b_shadow.py").write_text(
        COUNTY_PLUGIN.replace('"countysms"', f'"{scheme}"'), "utf-8"
    )
    config = load_config(_county_config(tmp_path, f"{own}://x:y@host/1"))
    with pytest.raises(ConfigError, match=rf"relay\(\) asks for {scheme}://, which is taken"):
        build_delivery(config, None)  # type: ignore[arg-type]  # fails before using it
    (tmp_path / "plugins" / "b_shadow.py").unlink()
    [channel] = load_configured_channels(config.alerts)
    assert channel.schema == own


def test_a_plugin_taking_our_scheme_is_refused_in_a_fresh_process(tmp_path: Path):
    # the daemon loads plugin_dir before the Apprise config registers our schemes
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mine.py").write_text(
        COUNTY_PLUGIN.replace('"countysms"', '"aligo"'), "utf-8"
    )
    toml = _county_config(tmp_path, f"aligo://sentinel:{KEY}@{SENDER}/{RECEIVERS[0]}")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sentinel.config import ConfigError, load_config\n"
        "from sentinel.delivery import load_configured_channels\n"
        "try:\n"
        f"    load_configured_channels(load_config(Path({str(toml)!r})).alerts)\n"
        "except ConfigError as exc:\n"
        "    sys.exit(str(exc))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "relay() asks for aligo://, which is taken" in done.stderr


def test_a_missing_plugin_dir_is_a_config_error(tmp_path: Path):
    config = load_config(_county_config(tmp_path, "json://127.0.0.1:9/x"))
    with pytest.raises(ConfigError, match="plugin directory not found"):
        build_delivery(config, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"aligo://sentinel@{SENDER}/{RECEIVERS[0]}", "needs USER_ID and secret"),
        (f"nhnsms://{APP_KEY}:{SECRET}@{SENDER}", "needs at least one receiver"),
        (
            f"solapi://{SOLAPI_KEY}:{SOLAPI_SECRET}@{SENDER}/{RECEIVERS[0]}?url=ftp://relay",
            "must be an http",
        ),
        # a letter O for a zero: stripped, it was another person's number
        (f"aligo://sentinel:{KEY}@{SENDER}/{RECEIVERS[0]}/010-3333-444O", "receiver 2 is not"),
        (f"nhnsms://{APP_KEY}:{SECRET}@{SENDER}?to={RECEIVERS[0]},ops-team", "receiver 2 is not"),
        (f"solapi://{SOLAPI_KEY}:{SOLAPI_SECRET}@{SENDER}/1234", "receiver 1 is not"),
        (f"aligo://sentinel:{KEY}@office/{RECEIVERS[0]}", "sender (host) is not"),
    ],
    ids=["no-key", "no-receiver", "not-http", "letter-o", "a-name", "too-short", "sender"],
)
def test_an_incomplete_gateway_url_is_refused_without_its_secrets(
    tmp_path: Path, url: str, why: str
):
    yml = write_apprise(tmp_path / "apprise.yml", [(url, ["critical"])])
    with pytest.raises(ChannelConfigError, match="Apprise cannot load urls entry 1") as refused:
        load_channels(yml)
    assert why in str(refused.value)
    assert _leaks(str(refused.value)) == []
