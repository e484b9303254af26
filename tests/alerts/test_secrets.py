"""Secrets in Apprise URLs never reach logs, health, status or the CLI's output."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from alerts.channels import load_channels
from alerts.status import read_status
from sensors.sim.broker import free_port
from sentinel.cli.main import main
from sentinel.store import Store
from tests.alerts.helpers import enqueue, event, make_delivery, rows, running, write_apprise
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until

PASSWORD = "Pw0rdSECRET1"
HEADER_TOKEN = "HdrTOKEN777x"
ARG_KEY = "ArgKEY888x"
PATH_TOKEN = "hook9Tk4Zq81LmN0pQ"
SECRETS = (PASSWORD, HEADER_TOKEN, ARG_KEY, PATH_TOKEN)


def _secret_urls(sink: HttpSink) -> list[str]:
    query = f"+X-Token={HEADER_TOKEN}&-apikey={ARG_KEY}"
    return [
        # answers 500
        f"json://user:{PASSWORD}@127.0.0.1:{sink.port}/fail/{PATH_TOKEN}?{query}",
        # nobody listens: a connection error, whose text names the URL
        f"json://user:{PASSWORD}@127.0.0.1:{free_port()}/x/{PATH_TOKEN}?{query}",
    ]


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


async def test_secrets_stay_out_of_logs_health_and_status(
    store: Store, http_sink: HttpSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")
    http_sink.fail(f"/fail/{PATH_TOKEN}", times=10_000)
    urls = _secret_urls(http_sink)
    yml = write_apprise(tmp_path / "apprise.yml", [(u, ["critical"]) for u in urls])
    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event("S001"))
        await until(
            lambda: sender.health()["failed_sends"] >= 4, 15, 'sender.health()["failed_sends"] >= 4'
        )
        health = sender.health()
    # the sink really was asked, with the secrets (the channel itself must get them)
    assert http_sink.requests()
    assert any(
        "apikey" in r.message or r.headers.get("X-Token") == HEADER_TOKEN
        for r in http_sink.requests()
    )
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "failed" in logged  # failures were logged...
    assert _leaks(logged) == []  # ...without a secret
    assert _leaks(json.dumps(health)) == []
    conn = sqlite3.connect(store.path)
    try:
        status = read_status(conn, 0.0)
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    errors = [c["last_error"] for c in status["channels"]]
    assert all(errors), "the reason of each failure is kept"
    assert _leaks(json.dumps(status)) == []
    assert _leaks(dump) == []
    pending = await rows(store, "SELECT COUNT(*) FROM outbox_message WHERE state = 'pending'")
    assert pending == [(2,)]  # nothing was dropped


def test_masked_url_and_secret_list(tmp_path: Path, http_sink: HttpSink):
    yml = write_apprise(tmp_path / "apprise.yml", [(u, []) for u in _secret_urls(http_sink)])
    for channel in load_channels(yml):
        assert _leaks(channel.display) == []
        assert _leaks(repr(channel)) == []
        assert set(SECRETS) <= set(channel.secrets)
        assert channel.scrub(f"boom {PASSWORD} {ARG_KEY}") == "boom **** ****"


def test_cli_output_has_no_secret(
    tmp_path: Path, http_sink: HttpSink, capsys: pytest.CaptureFixture[str]
):
    http_sink.fail(f"/fail/{PATH_TOKEN}", times=10)
    yml = write_apprise(tmp_path / "apprise.yml", [(u, []) for u in _secret_urls(http_sink)])
    config = tmp_path / "sentinel.toml"
    config.write_text(f'[alerts]\napprise_config = "{yml}"\nsend_timeout = "3s"\n')
    assert main(["-c", str(config), "test-alert"]) == 1
    out = capsys.readouterr()
    assert "FAILED" in out.out
    assert _leaks(out.out + out.err) == []


# Short path tokens look like words; a long one used to show as `h...Q` (its first and last
# character, Apprise's privacy form). None of any of them may be shown.
PATH_TOKENS = ("s3cr3t", "kq7Zt", "abcdefgh", "hk9Tk4Zq81Lm0pQ")


def _shown(text: str) -> list[str]:
    return [t for t in PATH_TOKENS if t in text or f"{t[0]}...{t[-1]}" in text]


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_short_path_tokens_are_masked_in_status_cli_database_and_logs(
    store: Store,
    http_sink: HttpSink,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    for token in PATH_TOKENS:
        http_sink.fail(f"/hook/{token}", times=10_000)
    urls = [http_sink.json_url(f"/hook/{token}") for token in PATH_TOKENS]
    yml = write_apprise(tmp_path / "apprise.yml", [(u, ["critical"]) for u in urls])
    channels = load_channels(yml)
    assert [c.display for c in channels] == [http_sink.json_url("/****/****")] * 4
    assert len({c.key for c in channels}) == 4  # still four channels

    outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
    async with running(sender):
        await enqueue(store, outbox, event("S002"))
        await until(
            lambda: sender.health()["failed_sends"] >= 4, 15, 'sender.health()["failed_sends"] >= 4'
        )
    config = tmp_path / "sentinel.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{store.path.parent}"\n'
        f'[alerts]\napprise_config = "{yml}"\nsend_timeout = "3s"\n'
    )
    alert = _cli(config, "test-alert")
    status = _cli(config, "status", "--json")
    assert alert.returncode == 1 and "FAILED" in alert.stdout
    assert http_sink.json_url("/****/****") in status.stdout  # the channel, masked
    out = "\n".join([alert.stdout, alert.stderr, status.stdout, status.stderr])
    conn = sqlite3.connect(store.path)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    logged = caplog.text
    assert "failed" in logged
    assert _shown(out) == []
    assert _shown(dump) == []
    assert _shown(logged) == []
    assert _shown(json.dumps(sender.health())) == []


def test_registered_apprise_url_is_masked_whole_in_logs():
    from sentinel.secrets import SecretMaskingFilter

    urls = [f"json://127.0.0.1:9/hook/{token}" for token in PATH_TOKENS]
    masking = SecretMaskingFilter(urls)
    for url, token in zip(urls, PATH_TOKENS, strict=True):
        line = masking.redact(f"sending to {url} failed; POST /hook/{token} HTTP/1.1")
        assert _shown(line) == [], line
        assert "json://127.0.0.1:9/" in line  # which channel failed stays readable


def test_apprise_abbreviations_are_not_shown(tmp_path: Path):
    """Apprise's privacy URL keeps `t...9` and `...abcd` of tokens; the display keeps none."""
    urls = {
        "twilio://AC1234567890abcdef1234567890abcd:tok1234567890abcdef1234567890ab@12345678901": [
            "abcd",
            "12345678901",
        ],
        "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi": ["uQiR"],
        "kakao://k3y/s3c": ["k3y", "s3c"],
        "ntfy://mytopic": ["mytopic"],
    }
    yml = write_apprise(tmp_path / "apprise.yml", [(u, []) for u in urls])
    for channel, hidden in zip(load_channels(yml), urls.values(), strict=True):
        assert "..." not in channel.display, channel.display
        assert [h for h in hidden if h in channel.display] == [], channel.display
