"""Kakao's rotated refresh token survives a restart: kept in the state database by
alerts/tokens.py, against a loopback server standing in for kauth.kakao.com/kapi.kakao.com."""

from __future__ import annotations

import asyncio
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
