"""Kakao's rotated refresh token survives a restart: kept in the state database by
alerts/tokens.py, against a loopback server standing in for kauth.kakao.com/kapi.kakao.com."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from apprise.plugins.kakaotalk import NotifyKakaoTalk

from alerts.channels import Channel, load_channels
from alerts.outbox import Outbox
from alerts.sender import Sender
from alerts.status import read_status
from alerts.templates import Templates
from alerts.tokens import TokenKeeper
from sentinel import migrations
from sentinel.cli.main import main
from sentinel.store import Store
from tests.alerts.helpers import enqueue, event, rows, running, write_apprise
from tests.fixtures.poll import until

CLIENT_ID = "c0ffee1234client"
FIRST = "firstREFRESHtoken-0001"
ROTATED = "rotatedREFRESHtoken-0002"
FRESH = "pastedREFRESHtoken-0003"
TOKENS = (FIRST, ROTATED, FRESH)


class KakaoStub:
    """kauth's token endpoint and kapi's "send to me": the first refresh answers with a
    new refresh token and retires the old one, as Kakao does in a token's last month."""

    def __init__(self) -> None:
        self.valid = {FIRST, FRESH}
        self.rotate = {FIRST: ROTATED}
        self.refreshed_with: list[str] = []
        self.memos: list[str] = []
        self.memo_down = False  # kapi refuses the message while the token endpoint works
        self._issued: set[str] = set()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                status, answer = stub._answer(self.path, form, self.headers.get("Authorization"))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _answer(self, path: str, form: dict[str, str], auth: str | None) -> tuple[int, Any]:
        with self._lock:
            if path == "/oauth/token":
                token = form.get("refresh_token", "")
                self.refreshed_with.append(token)
                if token not in self.valid:
                    return 401, {"error": "invalid_grant", "error_description": "expired"}
                access = f"ACCESS{len(self.refreshed_with)}"
                self._issued.add(access)
                answer: dict[str, Any] = {"access_token": access, "expires_in": 21599}
                if token in self.rotate:
                    new = self.rotate.pop(token)
                    self.valid.discard(token)
                    self.valid.add(new)
                    answer |= {"refresh_token": new, "refresh_token_expires_in": 5183999}
                return 200, answer
            if path == "/v2/api/talk/memo/default/send":
                if self.memo_down:
                    return 400, {"msg": "template_object is invalid", "code": -2}
                if (auth or "").removeprefix("Bearer ") not in self._issued:
                    return 401, {"msg": "this access token does not exist", "code": -401}
                memo = json.loads(form["template_object"])["text"]
                self.memos.append(memo)
                return 200, {"result_code": 0}
            return 404, {}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def kakao() -> Iterator[KakaoStub]:
    stub = KakaoStub()
    yield stub
    stub.close()


def kakao_channels(yml: Path, stub: KakaoStub) -> list[Channel]:
    """The config's channels, as a (re)started daemon builds them, aimed at the stub."""
    channels = load_channels(yml)
    for channel in channels:
        for service in channel.apprise:
            service.token_url = f"{stub.base}/oauth/token"
            service.notify_me_url = f"{stub.base}/v2/api/talk/memo/default/send"
    return channels


async def send_one(store: Store, channels: list[Channel], alarm: str, keep: bool = True) -> Sender:
    if keep:
        TokenKeeper(store.path).attach(channels)
    outbox = Outbox(channels, {"critical": ["critical"]})
    sender = Sender(
        outbox, store.write, Templates(site="본청"), group_window=0.0, retry_initial=0.05
    )
    async with running(sender):
        await enqueue(store, outbox, event(alarm))
        await until(
            lambda: sender.health()["sent"] == 1 or sender.health()["failed_sends"],
            15,
            "one send attempt",
        )
    return sender


def _leaks(text: str) -> list[str]:
    return [t for t in TOKENS if t in text]


async def test_rotated_refresh_token_survives_a_restart(
    store: Store, tmp_path: Path, kakao: KakaoStub, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")
    await migrations.migrate(store)
    yml = write_apprise(tmp_path / "apprise.yml", [(f"kakaotalk://{CLIENT_ID}/{FIRST}", [])])

    first = await send_one(store, kakao_channels(yml, kakao), "K001")
    assert first.health()["sent"] == 1
    assert kakao.refreshed_with == [FIRST]  # Kakao answered with ROTATED and retired FIRST
    assert await rows(store, "SELECT token FROM alert_token") == [(ROTATED,)]

    # the restart is real: a new plugin instance knows only the URL's token
    restarted = kakao_channels(yml, kakao)
    assert restarted[0].apprise[0].store.get("refresh_token") is None
    again = await send_one(store, restarted, "K002")
    assert again.health()["sent"] == 1
    assert kakao.refreshed_with == [FIRST, ROTATED]
    assert any("#K002" in memo for memo in kakao.memos)
    assert await rows(store, "SELECT state FROM outbox_message") == [("sent",), ("sent",)]

    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "rotated its refresh token" in logged
    assert _leaks(logged) == []
    conn = sqlite3.connect(store.path)
    try:
        status = read_status(conn, 0.0)
    finally:
        conn.close()
    assert _leaks(json.dumps(status)) == []


async def test_without_the_keeper_the_restart_loses_the_channel(
    store: Store, tmp_path: Path, kakao: KakaoStub
):
    """What the keeper prevents: the URL's token was retired by the rotation."""
    await migrations.migrate(store)
    yml = write_apprise(tmp_path / "apprise.yml", [(f"kakaotalk://{CLIENT_ID}/{FIRST}", [])])
    await send_one(store, kakao_channels(yml, kakao), "K003", keep=False)
    after = await send_one(store, kakao_channels(yml, kakao), "K004", keep=False)
    assert after.health()["failed_sends"] >= 1 and kakao.refreshed_with[:2] == [FIRST, FIRST]


async def test_a_token_pasted_into_the_url_wins_over_the_saved_one(
    store: Store, tmp_path: Path, kakao: KakaoStub
):
    await migrations.migrate(store)
    yml = write_apprise(tmp_path / "apprise.yml", [(f"kakaotalk://{CLIENT_ID}/{FIRST}", [])])
    await send_one(store, kakao_channels(yml, kakao), "K005")
    assert await rows(store, "SELECT token FROM alert_token") == [(ROTATED,)]
    # the operator re-authorised the app and put the new token in the URL
    write_apprise(yml, [(f"kakaotalk://{CLIENT_ID}/{FRESH}", [])])
    sender = await send_one(store, kakao_channels(yml, kakao), "K006")
    assert sender.health()["sent"] == 1
    assert kakao.refreshed_with == [FIRST, FRESH]


def test_test_alert_uses_and_keeps_the_rotated_token(
    tmp_path: Path, kakao: KakaoStub, monkeypatch: pytest.MonkeyPatch
):
    """`sentinel test-alert` runs in its own process: a rotation it causes must reach the
    daemon, and it must use the daemon's saved token (the URL's may be retired)."""

    async def prepare() -> Path:
        store = await Store.open(tmp_path / "state")
        try:
            await migrations.migrate(store)
            return store.path
        finally:
            await store.close()

    db = asyncio.run(prepare())
    monkeypatch.setattr(NotifyKakaoTalk, "token_url", f"{kakao.base}/oauth/token")
    monkeypatch.setattr(
        NotifyKakaoTalk, "notify_me_url", f"{kakao.base}/v2/api/talk/memo/default/send"
    )
    yml = write_apprise(tmp_path / "apprise.yml", [(f"kakaotalk://{CLIENT_ID}/{FIRST}", [])])
    config = tmp_path / "sentinel.toml"
    config.write_text(
        f'[site]\nname = "본청"\n[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[alerts]\napprise_config = "{yml}"\n',
        encoding="utf-8",
    )
    assert main(["-c", str(config), "test-alert"]) == 0
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT token FROM alert_token").fetchall() == [(ROTATED,)]
    finally:
        conn.close()
    assert main(["-c", str(config), "test-alert"]) == 0  # FIRST is retired by now
    assert kakao.refreshed_with == [FIRST, ROTATED]


async def test_two_channels_with_one_token_follow_each_others_rotation(
    store: Store, tmp_path: Path, kakao: KakaoStub
):
    # one Kakao login, two channels ("me" for critical, "me" again for a second tag):
    # the first send rotates the shared token and retires it for the other channel too
    await migrations.migrate(store)
    url = f"kakaotalk://{CLIENT_ID}/{FIRST}"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, ["critical"]), (f"{url}?x=1", ["ops"])])
    channels = kakao_channels(yml, kakao)
    assert len({c.key for c in channels}) == 2
    TokenKeeper(store.path).attach(channels)
    first, second = channels
    assert await asyncio.to_thread(first.apprise.notify, body="one")
    assert kakao.refreshed_with == [FIRST]  # FIRST is now retired
    assert await asyncio.to_thread(second.apprise.notify, body="two")
    assert kakao.refreshed_with == [FIRST, ROTATED]
    assert kakao.memos[-1] == "two"


@pytest.mark.parametrize("damaged", ["", "   ", "not a token!", "토큰"])
async def test_a_damaged_saved_token_is_passed_over_for_the_urls(
    store: Store, tmp_path: Path, kakao: KakaoStub, damaged: str
):
    await migrations.migrate(store)
    yml = write_apprise(tmp_path / "apprise.yml", [(f"kakaotalk://{CLIENT_ID}/{FRESH}", [])])
    channels = kakao_channels(yml, kakao)
    conn = sqlite3.connect(store.path)
    try:
        conn.execute(
            "INSERT INTO alert_token(channel, configured, token, saved) VALUES (?, ?, ?, ?)",
            (channels[0].key, hashlib.sha256(FRESH.encode()).hexdigest(), damaged, 1.0),
        )
        conn.commit()
    finally:
        conn.close()
    sender = await send_one(store, channels, "K010")
    assert sender.health()["sent"] == 1
    assert kakao.refreshed_with == [FRESH]


async def test_a_token_that_could_not_be_saved_is_kept_over_the_older_saved_one(
    store: Store, tmp_path: Path, kakao: KakaoStub
):
    # the row holds FIRST (saved long ago); the rotation to ROTATED cannot be written:
    # the next send must use ROTATED from memory, not the retired FIRST from the row
    await migrations.migrate(store)
    yml = write_apprise(tmp_path / "apprise.yml", [(f"kakaotalk://{CLIENT_ID}/{FIRST}", [])])
    channels = kakao_channels(yml, kakao)
    conn = sqlite3.connect(store.path)
    try:
        conn.execute(
            "INSERT INTO alert_token(channel, configured, token, saved) VALUES (?, ?, ?, ?)",
            (channels[0].key, hashlib.sha256(FIRST.encode()).hexdigest(), FIRST, 1.0),
        )
        conn.execute(
            "CREATE TRIGGER no_save BEFORE UPDATE ON alert_token "
            "BEGIN SELECT RAISE(ABORT, 'read-only'); END"
        )
        conn.commit()
    finally:
        conn.close()
    TokenKeeper(store.path).attach(channels)
    assert await asyncio.to_thread(channels[0].apprise.notify, body="one")
    channels[0].apprise[0].store.clear("access_token")  # six hours on: a refresh again
    assert await asyncio.to_thread(channels[0].apprise.notify, body="two")
    assert kakao.refreshed_with == [FIRST, ROTATED]
    assert await rows(store, "SELECT token FROM alert_token") == [(FIRST,)]


async def test_a_token_rotated_by_a_send_that_then_failed_is_saved(
    store: Store, tmp_path: Path, kakao: KakaoStub
):
    await migrations.migrate(store)
    yml = write_apprise(tmp_path / "apprise.yml", [(f"kakaotalk://{CLIENT_ID}/{FIRST}", [])])
    kakao.memo_down = True
    failed = await send_one(store, kakao_channels(yml, kakao), "K020")
    assert failed.health()["failed_sends"] >= 1 and kakao.memos == []
    assert await rows(store, "SELECT token FROM alert_token") == [(ROTATED,)]
    kakao.memo_down = False
    # the restart: the page still pending goes out with the token the failed send got
    channels = kakao_channels(yml, kakao)
    TokenKeeper(store.path).attach(channels)
    outbox = Outbox(channels, {"critical": ["critical"]})
    sender = Sender(outbox, store.write, Templates(site="본청"), group_window=0.0)
    async with running(sender):
        await until(lambda: sender.health()["sent"] >= 1, 15, "the pending page sent")
    assert any("#K020" in memo for memo in kakao.memos)
    assert kakao.refreshed_with == [FIRST, ROTATED]
