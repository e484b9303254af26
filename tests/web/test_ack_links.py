"""Signed ack links: the key file, signing and checking (over HTTP further below)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sentinel.web.ack_links import KEY_NAME, AckLinks, KeyFileError, ack_link, load_key
from tests.fixtures.http_sink import HttpSink
from tests.web.test_actions import browser, running, write_site

NOW = 1_700_000_000.0


def test_the_key_is_made_once_0600(tmp_path: Path) -> None:
    key = load_key(tmp_path)
    path = tmp_path / KEY_NAME
    assert len(key) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(tmp_path) == key
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_NAME]


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    load_key(tmp_path)
    os.chmod(tmp_path / KEY_NAME, 0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_key(tmp_path)


def test_a_symlink_in_place_of_the_key_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(os.urandom(32))
    os.chmod(elsewhere, 0o600)
    state = tmp_path / "state"
    state.mkdir()
    (state / KEY_NAME).symlink_to(elsewhere)
    with pytest.raises(KeyFileError):
        load_key(state)


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    fd = os.open(tmp_path / KEY_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(KeyFileError, match="5 bytes"):
        load_key(tmp_path)


def test_links_check_out_until_they_expire(tmp_path: Path) -> None:
    links = AckLinks(tmp_path, ttl=3600, base_url="https://sentinel.example:8443/")
    link = links.link("a7f3", NOW)
    assert link is not None and link.startswith("https://sentinel.example:8443/ack/A7F3?")
    query = parse_qs(urlsplit(link).query)
    exp, sig = query["exp"][0], query["sig"][0]
    assert int(exp) == NOW + 3600 and len(sig) == 32
    assert links.check("A7F3", exp, sig, NOW) is None
    assert links.check("A7F3", exp, sig.upper(), NOW) is None
    assert links.check("A7F3", exp, sig, NOW + 3600) == "expired"
    assert links.check("B8G4", exp, sig, NOW) == "forged"  # another alarm
    assert links.check("A7F3", str(int(exp) + 86400), sig, NOW) == "forged"  # longer life
    assert links.check("A7F3", exp, "0" * 32, NOW) == "forged"
    assert links.check("A7F3", None, sig, NOW) == "forged"
    assert links.check("A7F3", "-1", sig, NOW) == "forged"
    other = AckLinks(tmp_path / "other", ttl=3600, base_url="")
    (tmp_path / "other").mkdir()
    assert other.link("A7F3", NOW) is None  # no host to put in an SMS
    assert other.check("A7F3", exp, sig, NOW) == "forged"  # another key


LINKS = 'ack_links = true\nack_link_ttl = "1h"\nbase_url = "https://sentinel.example:8443"'


async def test_a_link_asks_first_and_acks_only_on_the_button(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    async with running(tmp_path, http_sink, LINKS) as site, browser() as http:
        alarm = await site.leak()
        link = ack_link(site.config, alarm, time.time())
        assert link is not None and link.startswith("https://sentinel.example:8443/ack/")
        path = link.removeprefix("https://sentinel.example:8443/")
        async with http.get(site.base + path) as r:  # what an SMS app's preview fetches
            page = await r.text()
            assert r.status == 200 and alarm in page and "under rack A" in page
            assert 'method="post"' in page and r.headers["Referrer-Policy"] == "no-referrer"
        assert site.engine.active_alarms()[0]["state"] == "firing"  # GET did nothing
        assert site.query("SELECT * FROM alarm_commands") == []

        query = parse_qs(urlsplit(link).query)
        form = {"exp": query["exp"][0], "sig": query["sig"][0], "name": "park"}
        async with http.post(f"{site.base}ack/{alarm}", data=form) as r:
            assert r.status == 200, await r.text()
            assert "acknowledged" in await r.text()
        assert site.engine.active_alarms()[0]["acked_by"] == "park"
        [row] = site.query("SELECT declared_by, user, address, uid FROM alarm_actions")
        assert row == {
            "declared_by": "park",
            "user": "web:link",
            "address": "127.0.0.1",
            "uid": None,
        }
        [_, acked] = await http_sink.wait_delivered(2, "/page")
        assert "park(ack link)" in acked.message


async def test_forged_and_expired_links_are_refused_with_a_page(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    async with running(tmp_path, http_sink, LINKS) as site, browser() as http:
        alarm = await site.leak()
        links = site.server.context.links
        assert links is not None
        old = parse_qs(urlsplit(links.path(alarm, time.time() - 7200)).query)
        expired = {"exp": old["exp"][0], "sig": old["sig"][0]}
        good = parse_qs(urlsplit(links.path(alarm, time.time())).query)
        forged = {"exp": str(int(good["exp"][0]) + 86400), "sig": good["sig"][0]}
        for form, word in ((expired, "expired"), (forged, "not valid")):
            async with http.get(f"{site.base}ack/{alarm}", params=form) as r:
                assert r.status == 403 and word in await r.text()
            async with http.post(f"{site.base}ack/{alarm}", data=form) as r:
                assert r.status == 403 and word in await r.text()
        # a good signature for one alarm acknowledges no other
        other = {"exp": good["exp"][0], "sig": good["sig"][0]}
        async with http.post(f"{site.base}ack/ZZZZ", data=other) as r:
            assert r.status == 403
        assert site.query("SELECT * FROM alarm_commands") == []
        assert site.engine.active_alarms()[0]["state"] == "firing"


async def test_links_are_off_unless_configured(tmp_path: Path, http_sink: HttpSink) -> None:
    async with running(tmp_path, http_sink) as site, browser() as http:
        alarm = await site.leak()
        assert ack_link(site.config, alarm, time.time()) is None
        async with http.get(f"{site.base}ack/{alarm}?exp=1&sig=00") as r:
            assert r.status == 404
        assert not (site.state / KEY_NAME).exists()


def test_the_cli_prints_a_link(tmp_path: Path, http_sink: HttpSink) -> None:
    cfg = write_site(tmp_path, http_sink, LINKS)
    (tmp_path / "state").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "sentinel", "--config", str(cfg), "web", "ack-link", "a7f3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    link = proc.stdout.strip()
    assert link.startswith("https://sentinel.example:8443/ack/A7F3?exp=")
    query = parse_qs(urlsplit(link).query)
    links = AckLinks(tmp_path / "state", 3600, "")
    assert links.check("A7F3", query["exp"][0], query["sig"][0], time.time()) is None


async def test_the_page_carries_a_link_that_acknowledges(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    # the page channel takes the long form (tag lms): an SMS has no room for a link
    page_tags = "critical, warning, lms"
    async with running(tmp_path, http_sink, LINKS, page_tags=page_tags) as site, browser() as http:
        alarm = await site.leak()
        [page] = await http_sink.wait_delivered(1, "/page")
        # the long form's last line; the signature is not masked as if it were a secret
        line = page.message.splitlines()[-1]
        assert line.startswith("Acknowledge on the web: https://sentinel.example:8443/ack/")
        link = line.split(": ", 1)[1]
        query = parse_qs(urlsplit(link).query)
        assert urlsplit(link).path == f"/ack/{alarm}" and len(query["sig"][0]) == 32
        form = {"exp": query["exp"][0], "sig": query["sig"][0], "name": "lee"}
        async with http.post(f"{site.base}ack/{alarm}", data=form) as r:
            assert r.status == 200, await r.text()
        assert site.engine.active_alarms()[0]["acked_by"] == "lee"


async def test_without_ack_links_the_page_has_no_link(tmp_path: Path, http_sink: HttpSink) -> None:
    async with running(tmp_path, http_sink, page_tags="critical, lms") as site:
        await site.leak()
        [page] = await http_sink.wait_delivered(1, "/page")
        assert "/ack/" not in page.message
