"""The [alerts] config section, `sentinel.delivery` wiring, and status without tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alerts.status import read_status
from sentinel import migrations
from sentinel.config import ConfigError, load_config
from sentinel.delivery import build_delivery
from sentinel.store import Store
from tests.alerts.helpers import enqueue, event, running, write_apprise
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sentinel.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_defaults_and_relative_paths(tmp_path: Path):
    (tmp_path / "tpl").mkdir()
    config = load_config(
        _toml(
            tmp_path,
            '[alerts]\napprise_config = "apprise.yml"\n'
            'template_dir = "tpl"\ngroup_window = "30s"\n',
        )
    )
    alerts = config.alerts
    assert alerts.apprise_config == tmp_path / "apprise.yml"
    assert alerts.template_dir == tmp_path / "tpl"
    assert alerts.group_window == 30.0 and alerts.language == "ko"
    assert alerts.routes["critical"] == ["critical"]


def test_config_rejects_unknown_severity(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown severity 'urgent'"):
        load_config(_toml(tmp_path, '[alerts.routes]\nurgent = ["x"]\n'))


async def test_wired_from_config_end_to_end(tmp_path: Path, http_sink: HttpSink, store: Store):
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (http_sink.json_url("/sms"), ["critical"]),
            (f"sentinelfile://{tmp_path / 'alerts.log'}", ["critical", "warning"]),
        ],
    )
    config = load_config(
        _toml(
            tmp_path,
            f'[site]\nname = "본청"\n[alerts]\napprise_config = "{yml.name}"\nlanguage = "en"\n',
        )
    )
    await migrations.migrate(store)
    outbox, sender = build_delivery(config, store)
    assert sender.name == "alerts" and len(outbox.channels) == 2
    async with running(sender):
        await enqueue(store, outbox, event("W001"))
        got = await http_sink.wait_delivered(1, "/sms")
        await until(lambda: sender.health()["sent"] == 2, 15, 'sender.health()["sent"] == 2')
    assert got[0].message.startswith("[CRIT]")
    line = (tmp_path / "alerts.log").read_text(encoding="utf-8")
    assert "[본청]" in line and "#W001" in line  # long form for the file channel


def test_unusable_apprise_config_is_a_config_error(tmp_path: Path):
    config = load_config(_toml(tmp_path, '[alerts]\napprise_config = "missing.yml"\n'))
    with pytest.raises(ConfigError, match=r"missing\.yml"):
        build_delivery(config, None)  # type: ignore[arg-type]  # fails before using it


def test_status_without_tables_is_empty(tmp_path: Path):
    conn = sqlite3.connect(tmp_path / "empty.db")
    try:
        assert read_status(conn, 0.0) == {}
    finally:
        conn.close()
