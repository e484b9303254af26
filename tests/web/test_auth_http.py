"""Login over real HTTP: the cookie, the rate limit, TLS, proxies, the users file changing."""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher

from sentinel.web.users import UserFile
from tests.fixtures.http_sink import HttpSink
from tests.web.test_actions import PASSWORD, add_users, browser, login, post, running


def set_cookie(headers: object) -> str:
    return "; ".join(headers.getall("Set-Cookie", []))  # type: ignore[attr-defined]


async def test_the_session_cookie_is_httponly_strict_and_logout_ends_it(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    async with running(tmp_path, http_sink) as site, browser() as http:
        async with http.get(site.base + "api/status") as r:
            view = (await r.json())["web"]
        assert view["user"] is None and view["csrf"] is None and not view["can_act"]

        async with http.post(
            site.base + "login", json={"user": "kim", "password": PASSWORD}, allow_redirects=False
        ) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = set_cookie(r.headers)
        assert cookie.startswith("sentinel_session=")
        flags = [f.strip().lower() for f in cookie.split(";")]
        assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
        assert "secure" not in flags  # plain HTTP: a Secure cookie would never come back
        # raised answers get the headers returned ones do: no cache keeps the cookie
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
        token = cookie.split(";")[0].split("=", 1)[1]
        assert len(token) >= 43 and token not in site.server.health().__repr__()

        async with http.get(site.base + "api/status") as r:
            csrf = (await r.json())["web"]["csrf"]
        async with http.post(site.base + "logout", allow_redirects=False) as r:
            assert r.status == 303
        # the old token no longer works anywhere, even sent by hand
        async with browser() as other:
            other.cookie_jar.update_cookies({"sentinel_session": token})
            alarm = await site.leak()
            status, _ = await post(other, f"{site.base}api/alarms/{alarm}/ack", {}, csrf)
            assert status == 401
            async with other.post(f"{site.base}api/silences", json={}) as refused:
                assert refused.status == 401
                assert refused.headers["X-Content-Type-Options"] == "nosniff"
                assert refused.headers["Cache-Control"] == "no-store"


async def test_five_wrong_passwords_lock_out_even_the_right_one(
    tmp_path: Path, http_sink: HttpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "sentinel.web")
    async with running(tmp_path, http_sink) as site, browser() as http:
        for i in range(5):
            async with http.post(
                site.base + "login", json={"user": "kim", "password": f"guess-{i}"}
            ) as r:
                assert r.status == 401
                assert (await r.json())["error"] == "Wrong user name or password."
        async with http.post(
            site.base + "login", json={"user": "kim", "password": PASSWORD}, allow_redirects=False
        ) as r:
            assert r.status == 429
            assert 240 < int(r.headers["Retry-After"]) <= 300
            assert "sentinel_session" not in set_cookie(r.headers)
        # another name from the same address is locked out too
        async with http.post(site.base + "login", data={"user": "lee", "password": "x"}) as r:
            assert r.status == 429 and "Too many failed logins" in await r.text()
        failures = [r.getMessage() for r in caplog.records if "login failed" in r.getMessage()]
        assert len(failures) == 5 and all("127.0.0.1" in f for f in failures)
        assert "guess-" not in caplog.text and PASSWORD not in caplog.text


async def test_a_password_typed_into_the_name_field_is_not_logged(
    tmp_path: Path, http_sink: HttpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "sentinel.web")
    async with running(tmp_path, http_sink) as site, browser() as http:
        async with http.post(site.base + "login", json={"user": PASSWORD, "password": ""}) as r:
            assert r.status == 401
        async with http.post(site.base + "login", json={"user": "kim", "password": "x"}) as r:
            assert r.status == 401
    assert PASSWORD not in caplog.text
    assert f"an unknown name ({len(PASSWORD)} characters)" in caplog.text
    assert "'kim'" in caplog.text  # a real user's name still is


async def test_guesses_sent_all_at_once_meet_the_same_limit(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    async with running(tmp_path, http_sink) as site, browser() as http:

        async def guess(i: int) -> int:
            async with http.post(
                site.base + "login", json={"user": "kim", "password": f"guess-{i}"}
            ) as r:
                return r.status

        statuses = await asyncio.gather(*(guess(i) for i in range(12)))
        assert sorted(statuses) == [401] * 5 + [429] * 7


class HeldHasher(PasswordHasher):
    """Checks passwords only once the test lets it: a check running on the event loop
    would hold every other request until then."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.entered = threading.Event()
        self.release = threading.Event()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.entered.set()
        assert self.release.wait(30)
        return super().verify(hash, password)


async def test_a_password_check_does_not_stall_the_loop(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    async with running(tmp_path, http_sink) as site, browser() as http:
        held = HeldHasher()
        site.server.context.users = UserFile(site.users, held)
        attempt = asyncio.create_task(
            http.post(site.base + "login", json={"user": "kim", "password": "x"})
        )
        await asyncio.to_thread(held.entered.wait, 30)
        async with http.get(site.base + "api/status") as r:  # answered while it is held
            assert r.status == 200
        assert not attempt.done()
        held.release.set()
        async with await attempt as r:
            assert r.status == 401


def make_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


async def test_over_tls_the_cookie_is_secure(tmp_path: Path, http_sink: HttpSink) -> None:
    cert, key = make_cert(tmp_path)
    web = f'tls_cert = "{cert}"\ntls_key = "{key}"'
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with running(tmp_path, http_sink, web) as site, browser() as http:
        assert site.base.startswith("https://")
        async with http.post(
            site.base + "login",
            json={"user": "kim", "password": PASSWORD},
            allow_redirects=False,
            ssl=client_tls,
        ) as r:
            assert r.status == 303
            flags = [f.strip().lower() for f in set_cookie(r.headers).split(";")]
        assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags


async def test_behind_a_trusted_proxy_the_forwarded_address_and_scheme_count(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    web = 'trusted_proxies = ["127.0.0.1"]'
    async with running(tmp_path, http_sink, web) as site, browser() as http:
        # what nginx sends: the client's claim, then the address nginx saw
        forwarded = {"X-Forwarded-For": "192.0.2.66, 10.0.0.5", "X-Forwarded-Proto": "https"}
        async with http.post(
            site.base + "login",
            json={"user": "kim", "password": PASSWORD},
            headers=forwarded,
            allow_redirects=False,
        ) as r:
            assert r.status == 303
            assert "secure" in [f.strip().lower() for f in set_cookie(r.headers).split(";")]
        # the Secure cookie is not sent back over the test's plain HTTP: hand it over
        token = set_cookie(r.headers).split(";")[0].split("=", 1)[1]
        http.cookie_jar.update_cookies({"sentinel_session": token})
        async with http.get(site.base + "api/status") as r:
            csrf = (await r.json())["web"]["csrf"]
        alarm = await site.leak()
        async with http.post(
            f"{site.base}api/alarms/{alarm}/ack",
            json={},
            headers={**forwarded, "X-CSRF-Token": csrf},
        ) as r:
            assert r.status == 200, await r.text()
        [row] = site.query("SELECT address FROM alarm_actions")
        assert row["address"] == "10.0.0.5"


async def test_forwarded_headers_from_anyone_else_are_ignored(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    async with running(tmp_path, http_sink) as site, browser() as http:
        forwarded = {"X-Forwarded-For": "10.0.0.5", "X-Forwarded-Proto": "https"}
        for _ in range(5):
            async with http.post(
                site.base + "login", json={"user": "kim", "password": "x"}, headers=forwarded
            ) as r:
                assert r.status == 401
        # a made-up X-Forwarded-For does not buy a fresh address to guess from
        other = {"X-Forwarded-For": "10.0.0.6"}
        async with http.post(
            site.base + "login", json={"user": "lee", "password": "x"}, headers=other
        ) as r:
            assert r.status == 429


async def test_no_users_file_no_logins_but_viewing_works_and_adduser_needs_no_restart(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    async with running(tmp_path, http_sink, users={}) as site, browser() as http:
        assert "does not exist" in (site.server.health()["users_problem"] or "")
        async with http.get(site.base + "api/status") as r:
            assert r.status == 200 and (await r.json())["web"]["logins"] is False
        async with http.post(site.base + "login", json={"user": "kim", "password": PASSWORD}) as r:
            assert r.status == 503 and "Nobody can log in" in (await r.json())["error"]
            assert str(site.users) not in await r.text()  # the path is for the log, not the page

        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "sentinel", "--config", str(tmp_path / "sentinel.toml"),
             "web", "adduser", "kim", "--password-stdin"],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        await login(http, site)
        assert site.server.health()["users_problem"] is None


async def test_a_deleted_user_or_changed_password_ends_the_session(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    async with running(tmp_path, http_sink, users={"kim": PASSWORD, "lee": PASSWORD}) as site:
        alarm = await site.leak()
        async with browser() as kim, browser() as lee:
            kim_csrf = await login(kim, site, "kim")
            lee_csrf = await login(lee, site, "lee")
            add_users(site.users, kim=PASSWORD, lee="a new password")  # passwd lee
            status, _ = await post(lee, f"{site.base}api/alarms/{alarm}/ack", {}, lee_csrf)
            assert status == 401
            add_users(site.users, lee="a new password")  # deluser kim
            status, _ = await post(kim, f"{site.base}api/alarms/{alarm}/ack", {}, kim_csrf)
            assert status == 401
            assert site.query("SELECT * FROM alarm_commands") == []


async def test_view_login_needs_a_session_to_look(tmp_path: Path, http_sink: HttpSink) -> None:
    async with running(tmp_path, http_sink, 'view = "login"') as site, browser() as http:
        async with http.get(site.base + "api/status") as r:
            assert r.status == 401
        async with http.get(site.base + "api/timeline") as r:
            assert r.status == 401
        async with http.get(site.base, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login"
        async with http.get(site.base + "login") as r:
            assert r.status == 200 and 'name="password"' in await r.text()
        async with http.get(site.base + "healthz") as r:
            assert r.status == 200
        await login(http, site)
        async with http.get(site.base + "api/timeline") as r:
            assert r.status == 200
