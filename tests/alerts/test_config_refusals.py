"""check-config, run and reload refuse an Apprise URL Apprise cannot load, and a critical or
warning route that reaches no channel; Apprise's own log lines show no token characters."""

from __future__ import annotations

import logging
from pathlib import Path

import apprise
import pytest

from alerts.channels import guard_logs
from sentinel.cli.main import main
from sentinel.config import load_config
from sentinel.preflight import preflight

SECRETS = ("Pw0rd-SECRET", "Zq7xK2mP9wLr", "tok-SECRET", "Z...r", "P...T", "t...q")


def _config(tmp_path: Path, apprise_text: str) -> Path:
    yml = tmp_path / "apprise.yml"
    yml.write_text(apprise_text, encoding="utf-8")
    yml.chmod(0o600)
    path = tmp_path / "sentinel.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[alerts]\napprise_config = "apprise.yml"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def test_a_misspelt_scheme_is_refused_by_position_without_its_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    config = _config(
        tmp_path,
        (
            "urls:\n"
            '  - "jsonz://admin:Pw0rd-SECRET@127.0.0.1:18831/hook/Zq7xK2mP9wLr?token=tok-SECRET-q":\n'
            "      tag: critical\n"
            '  - "json://127.0.0.1:18831/sms/abc?token=tok-SECRET-query-1234&cto=1&rto=1":\n'
            "      tag: critical, warning, info\n"
        ),
    )
    caplog.set_level(logging.DEBUG)
    assert main(["-c", str(config), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "urls entry 1 (line 2): jsonz://127.0.0.1:18831/****" in err
    assert "Apprise cannot load" in err
    everything = err + caplog.text
    assert not [s for s in SECRETS if s in everything]
    # run and SIGHUP take the config through the same preflight
    problems = preflight(load_config(config), config)
    assert len(problems) == 1 and "urls entry 1" in problems[0]


def test_a_route_that_reaches_no_channel_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = _config(
        tmp_path,
        ('urls:\n  - "json://127.0.0.1:18831/sms?cto=1&rto=1":\n      tag: warning, info\n'),
    )
    assert main(["-c", str(config), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "alerts.routes.critical" in err and "a critical alarm would reach nobody" in err
    assert "alerts.routes.warning" not in err


def test_apprise_log_lines_show_no_token_characters(caplog: pytest.LogCaptureFixture):
    guard_logs()
    caplog.set_level(logging.DEBUG, logger="apprise")
    apprise.Apprise().add(
        "jsonz://admin:Pw0rd-SECRET@127.0.0.1:18831/hook/Zq7xK2mP9wLr?token=tok-SECRET-q"
    )
    assert "Unparseable URL" in caplog.text  # Apprise did log it, in its privacy form
    assert not [s for s in SECRETS if s in caplog.text]
