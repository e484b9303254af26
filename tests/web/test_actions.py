"""Acting from the web over real HTTP: the daemon's own pieces (state database, alarm engine
applying the command rows, outbox and sender delivering to a loopback Apprise sink, and the
web server on a loopback port), a real users file, and aiohttp's client as the browser."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from argon2 import PasswordHasher

from sensors.reading import Reading
from sentinel import migrations
from sentinel.alarm.engine import Engine
from sentinel.cli.main import main
from sentinel.config import Config, load_config
from sentinel.delivery import build_delivery
from sentinel.store import Store
from sentinel.web import users as users_file
from sentinel.web.ack_links import paging_enqueue
from sentinel.web.server import WebServer
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until

# the cheapest argon2 the library accepts: the checks here are about behaviour, not cost
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse"

TOML = """
[daemon]
state_dir = "{state}"

[mqtt]
host = "127.0.0.1"

[[sensors]]
id = "leak-1"
kind = "water_leak"
location = "under rack A"
topic = "zigbee2mqtt/leak-1"
max_age = "1d"

[alarms]
max_silence = "2h"
max_silence_all = "30m"

[alerts]
apprise_config = "apprise.yml"
language = "en"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"

[web]
port = 0
language = "en"
users_file = "web-users"
{web}
"""


@dataclass
class Site:
    """One running daemon core with its dashboard at `base`."""

    config: Config
    state: Path
    users: Path
    engine: Engine
    server: WebServer
    sink: HttpSink

    @property
    def base(self) -> str:
        return self.server.urls[0]

    async def leak(self) -> str:
        """Water under rack A: a critical alarm; returns its id."""
        await self.engine.submit(Reading("leak-1", "water_leak", True))
        [alarm] = self.engine.active_alarms()
        return str(alarm["id"])

    def query(self, sql: str) -> list[dict[str, Any]]:
        conn = sqlite3.connect(f"file:{self.state / 'sentinel.db'}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql)]
        finally:
            conn.close()


def write_site(
    tmp_path: Path, sink: HttpSink, web: str = "", page_tags: str = "critical, warning"
) -> Path:
    apprise = tmp_path / "apprise.yml"
    apprise.write_text(
        "urls:\n"
        f'  - "{sink.json_url("/page", "cto=1&rto=1")}":\n      tag: {page_tags}\n'
        f'  - "{sink.json_url("/info", "cto=1&rto=1")}":\n      tag: info, lms\n',
        encoding="utf-8",
    )
    apprise.chmod(0o600)
    path = tmp_path / "sentinel.toml"
    path.write_text(TOML.format(state=tmp_path / "state", web=web), encoding="utf-8")
    return path


def add_users(path: Path, **passwords: str) -> None:
    users_file.write(path, {name: FAST.hash(pw) for name, pw in passwords.items()})


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    sink: HttpSink,
    web: str = "",
    users: dict[str, str] | None = None,
    page_tags: str = "critical, warning",
) -> AsyncIterator[Site]:
    """The daemon's alarm engine, sender and web server in this loop, as `sentinel run`
    wires them (less the sensor sources: readings are submitted directly)."""
    config = load_config(write_site(tmp_path, sink, web, page_tags))
    users_path = tmp_path / "web-users"
    if users is None:
        users = {"kim": PASSWORD}
    if users:
        add_users(users_path, **users)
    store = await Store.open(tmp_path / "state")
    tasks: list[asyncio.Task[None]] = []
    try:
        await migrations.migrate(store)
        outbox, sender = build_delivery(config, store)
        # as the runtime wires it: with ack_links, pages carry a signed link
        enqueue = paging_enqueue(config, outbox.enqueue, time.time)
        engine = Engine(store, config, enqueue=enqueue, clock=time.time)
        await engine.start()
        server = WebServer(config)
        tasks = [asyncio.create_task(c.run()) for c in (engine, sender, server)]
        await until(lambda: server.urls, 10, "the web server to listen")
        yield Site(config, tmp_path / "state", users_path, engine, server, sink)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()


def browser() -> aiohttp.ClientSession:
    """A client that keeps cookies from 127.0.0.1 as a browser does (aiohttp's default jar
    refuses cookies from IP addresses)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def login(
    http: aiohttp.ClientSession, site: Site, user: str = "kim", password: str = PASSWORD
) -> str:
    """Logs in as the page's form does; returns the session's CSRF token."""
    async with http.post(
        site.base + "login", data={"user": user, "password": password}, allow_redirects=False
    ) as r:
        assert r.status == 303, await r.text()
    async with http.get(site.base + "api/status") as r:
        view = (await r.json())["web"]
    assert view["user"] == user and view["can_act"]
    return str(view["csrf"])


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], csrf: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {} if csrf is None else {"X-CSRF-Token": csrf}
    async with http.post(url, json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_acting_needs_a_session_and_its_csrf_token(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    async with running(tmp_path, http_sink) as site, browser() as http:
        alarm = await site.leak()
        ack = f"{site.base}api/alarms/{alarm}/ack"
        status, body = await post(http, ack, {"reason": "x"})
        assert status == 401 and body == {"ok": False, "error": "log in first"}
        status, _ = await post(http, site.base + "api/silences", {"duration": "1h"})
        assert status == 401
        status, _ = await post(http, site.base + "api/silences/1/end", {})
        assert status == 401

        csrf = await login(http, site)
        status, body = await post(http, ack, {"reason": "x"})
        assert status == 403 and "X-CSRF-Token" in body["error"]
        status, _ = await post(http, ack, {"reason": "x"}, csrf=csrf[:-2] + "xx")
        assert status == 403
        # a page on another site cannot act, even with the token (defence in depth)
        async with http.post(
            ack, json={}, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
        ) as r:
            assert r.status == 403
        assert site.query("SELECT * FROM alarm_commands") == []
        assert site.engine.active_alarms()[0]["state"] == "firing"


async def test_an_ack_from_the_web_says_who_and_from_where_everywhere(
    tmp_path: Path, http_sink: HttpSink, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(tmp_path, http_sink) as site, browser() as http:
        alarm = await site.leak()
        await http_sink.wait_delivered(1, "/page")
        csrf = await login(http, site)
        status, body = await post(
            http, f"{site.base}api/alarms/{alarm.lower()}/ack", {"reason": "on my way"}, csrf
        )
        assert status == 200 and body["ok"], body
        assert "acknowledged" in body["result"]
        assert site.engine.active_alarms()[0]["acked_by"] == "kim"

        [action] = site.query("SELECT * FROM alarm_actions")
        assert action["command"] == "ack" and action["target"] == alarm
        assert action["declared_by"] == "kim" and action["user"] == "web:kim"
        assert action["address"] == "127.0.0.1" and action["uid"] is None
        assert action["reason"] == "on my way"

        async with http.get(site.base + "api/timeline") as r:
            items = (await r.json())["items"]
        [item] = [i for i in items if i["type"] == "action"]
        assert (item["by"], item["address"], item["command"]) == ("kim", "127.0.0.1", "ack")

        # the acknowledgement goes out to the people paged (an SMS: "kim(web)"), and its
        # event carries the address for the long forms
        [_, acked] = await http_sink.wait_delivered(2, "/page")
        assert "acknowledged by kim(web)" in acked.message, acked.message
        [info] = await http_sink.wait_delivered(1, "/info")  # the long form, on the info route
        assert "kim (web from 127.0.0.1)" in info.message and "on my way" in info.message
        rows = site.query("SELECT payload FROM outbox_message WHERE event = 'acknowledged'")
        assert rows and all(
            json.loads(r["payload"])["by"] == "kim (web from 127.0.0.1)" for r in rows
        )

        # the CLI's history reads the same trail
        config = str(tmp_path / "sentinel.toml")
        code = await asyncio.to_thread(main, ["--config", config, "alarms", "--history"])
        assert code == 0
        assert "ack " + alarm + " by kim (web from 127.0.0.1): on my way" in capsys.readouterr().out

        # a second press (another phone, a stale page) changes nothing and says so
        status, body = await post(http, f"{site.base}api/alarms/{alarm}/ack", {}, csrf)
        assert status == 200 and body["result"] == f"{alarm} was already acknowledged by kim"
        status, body = await post(http, f"{site.base}api/alarms/ZZZZ/ack", {}, csrf)
        assert status == 404 and "no such alarm" in body["error"]
        assert len(site.query("SELECT * FROM alarm_actions")) == 1


async def test_silence_limits_apply_as_on_the_cli(tmp_path: Path, http_sink: HttpSink) -> None:
    async with running(tmp_path, http_sink) as site, browser() as http:
        csrf = await login(http, site)
        silences = site.base + "api/silences"

        async def silence(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            return await post(http, silences, body, csrf)

        status, body = await silence({"sensor": "leak-1", "duration": "3h", "reason": "plumber"})
        assert status == 400
        assert "at most 2h" in body["error"] and "[alarms] max_silence " in body["error"]
        status, body = await silence({"sensor": None, "duration": "1h", "reason": "moving"})
        assert status == 400 and "at most 30m" in body["error"]
        assert "max_silence_all" in body["error"]
        status, body = await silence({"sensor": "leak-1", "duration": "soon", "reason": "x"})
        assert status == 400 and "expected a duration" in body["error"]
        status, body = await silence({"sensor": "leak-9", "duration": "1h", "reason": "x"})
        assert status == 404 and "no such sensor" in body["error"]
        status, body = await silence({"sensor": "leak-1", "duration": "1h"})
        assert status == 400 and "reason" in body["error"]
        assert site.query("SELECT * FROM alarm_commands") == []  # nothing was recorded

        status, body = await silence({"sensor": "leak-1", "duration": "2h", "reason": "plumber"})
        assert status == 200 and body["result"].startswith("silence #1 of leak-1"), body
        [announced] = await http_sink.wait_delivered(1, "/info")
        assert "kim (web from 127.0.0.1)" in announced.message and "plumber" in announced.message

        status, body = await post(http, silences + "/1/end", {"reason": "done"}, csrf)
        assert status == 200 and body["result"].startswith("ended #1"), body
        status, body = await post(http, silences + "/S1/end", {}, csrf)
        assert status == 409 and "no active silence matched" in body["error"]
        status, body = await post(http, silences + "/x/end", {}, csrf)
        assert status == 400
        rows = site.query("SELECT command, user, address FROM alarm_actions ORDER BY id")
        assert rows == [
            {"command": "silence", "user": "web:kim", "address": "127.0.0.1"},
            {"command": "unsilence", "user": "web:kim", "address": "127.0.0.1"},
            {"command": "unsilence", "user": "web:kim", "address": "127.0.0.1"},
        ]


async def test_bad_json_is_a_clear_400(tmp_path: Path, http_sink: HttpSink) -> None:
    async with running(tmp_path, http_sink) as site, browser() as http:
        csrf = await login(http, site)
        async with http.post(
            site.base + "api/silences",
            data=b"{not json",
            headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
        ) as r:
            assert r.status == 400 and (await r.json())["error"] == "expected a JSON object"
        status, _ = await post(http, site.base + "api/silences", ["x"], csrf)  # type: ignore[arg-type]
        assert status == 400
