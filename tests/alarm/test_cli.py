"""`sentinel ack/silence/unsilence/alarms` as another process would run them, and status."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sentinel.alarm.status import read_status
from sentinel.cli.main import main
from sentinel.store import Store, open_readonly
from tests.alarm.helpers import SENSORS, MakeEngine, config, events, reading
from tests.fixtures.core import FakeClock

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

[[sensors]]
id = "temp-1"
kind = "temperature"
location = "rack A top"
topic = "zigbee2mqtt/temp-1"
max_age = "1d"
"""

CFG_SENSORS = [{**SENSORS[0], "max_age": "1d"}, {**SENSORS[1], "max_age": "1d"}]


@pytest.fixture
def cfg_path(tmp_path: Path, store: Store) -> Path:
    path = tmp_path / "sentinel.toml"
    path.write_text(TOML.format(state=store.path.parent), encoding="utf-8")
    return path


async def test_ack_through_the_cli(
    make_engine: MakeEngine, store: Store, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = await make_engine(config(CFG_SENSORS))
    await engine.submit(reading("leak-1", "water_leak", True))
    [alarm] = engine.active_alarms()

    assert main(["--config", str(cfg_path), "ack", alarm["id"].lower(), "--by", "kim"]) == 0
    out = capsys.readouterr().out
    assert alarm["id"] in out and "kim" in out and "under rack A" in out
    assert await events(store) == [("firing", "critical", "leak-1")]  # not applied yet

    await engine.tick()
    assert [e[0] for e in await events(store)] == ["firing", "acknowledged"]
    [after] = engine.active_alarms()
    assert after["state"] == "acknowledged" and after["acked_by"] == "kim"

    assert main(["--config", str(cfg_path), "ack", alarm["id"]]) == 0
    assert "already acknowledged by kim" in capsys.readouterr().out


async def test_ack_unknown_alarm_exits_1(
    make_engine: MakeEngine, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await make_engine(config(CFG_SENSORS))
    assert main(["--config", str(cfg_path), "ack", "ZZZZ"]) == 1
    assert "no such alarm" in capsys.readouterr().err


async def test_ack_recorded_while_daemon_down_is_applied_at_start(
    make_engine: MakeEngine, store: Store, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = await make_engine(config(CFG_SENSORS))
    await engine.submit(reading("leak-1", "water_leak", True))
    [alarm] = engine.active_alarms()
    del engine
    assert main(["--config", str(cfg_path), "ack", alarm["id"], "--by", "lee"]) == 0
    assert "not running" in capsys.readouterr().out
    restarted = await make_engine(config(CFG_SENSORS))
    assert restarted.active_alarms()[0]["acked_by"] == "lee"
    assert [e[0] for e in await events(store)] == ["firing", "acknowledged"]


async def test_silence_and_unsilence_through_the_cli(
    make_engine: MakeEngine,
    store: Store,
    cfg_path: Path,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = await make_engine(config(CFG_SENSORS))
    args = ["--config", str(cfg_path)]
    assert main([*args, "silence", "leak-1", "--for", "2h", "--reason", "plumber"]) == 0
    assert "2h" in capsys.readouterr().out
    await engine.tick()
    await engine.submit(reading("leak-1", "water_leak", True))
    assert await events(store) == [("silenced", "info", "leak-1")]  # announced, no page

    conn = open_readonly(store.path.parent)
    assert conn is not None
    status = read_status(conn, clock())
    assert [(s["sensor"], s["reason"]) for s in status["silences"]] == [("leak-1", "plumber")]
    leak = next(s for s in status["sensors"] if s["id"] == "leak-1")
    assert leak["silenced"]["reason"] == "plumber" and leak["state"] == "alarm"
    conn.close()

    assert main([*args, "unsilence", "leak-1"]) == 0
    await engine.tick()
    assert await events(store) == [
        ("silenced", "info", "leak-1"),
        ("unsilenced", "info", "leak-1"),
        ("firing", "critical", "leak-1"),
    ]

    assert main([*args, "silence", "nope", "--for", "2h", "--reason", "x"]) == 1
    assert main([*args, "silence", "--all", "--for", "soon", "--reason", "x"]) == 2


async def test_alarms_command_lists_active_and_history(
    make_engine: MakeEngine, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = await make_engine(config(CFG_SENSORS))
    await engine.submit(reading("temp-1", "temperature", 36.0))
    [alarm] = engine.active_alarms()
    assert main(["--config", str(cfg_path), "alarms"]) == 0
    out = capsys.readouterr().out
    assert alarm["id"] in out and "critical" in out
    assert main(["--config", str(cfg_path), "alarms", "--history"]) == 0
    assert "normal -> firing" in capsys.readouterr().out


async def test_history_reads_a_database_the_daemon_has_not_migrated_yet(
    make_engine: MakeEngine, store: Store, cfg_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After an upgrade, before the daemon restarts and adds alarm_actions.address (migration
    4), `sentinel alarms --history` still lists who acknowledged, instead of "cannot read the
    state database: no such column" and advice to use sudo."""
    engine = await make_engine(config(CFG_SENSORS))
    await engine.submit(reading("leak-1", "water_leak", True))
    [alarm] = engine.active_alarms()
    assert main(["--config", str(cfg_path), "ack", alarm["id"], "--by", "kim"]) == 0
    await engine.tick()
    capsys.readouterr()
    async with store.write() as db:
        await db.execute("ALTER TABLE alarm_actions DROP COLUMN address")
    assert main(["--config", str(cfg_path), "alarms", "--history"]) == 0
    out = capsys.readouterr().out
    assert f"ack {alarm['id']}" in out and "kim" in out


async def test_status_sections(make_engine: MakeEngine, store: Store, clock: FakeClock) -> None:
    engine = await make_engine(config([*CFG_SENSORS, SENSORS[2]]))
    await engine.submit(reading("temp-1", "temperature", 23.5, unit="°C"))
    await engine.submit(reading("leak-1", "water_leak", True))
    clock.advance(5)
    await engine.flush()
    conn = open_readonly(store.path.parent)
    assert conn is not None
    status = read_status(conn, clock())
    conn.close()
    sensors = {s["id"]: s for s in status["sensors"]}
    assert sensors["temp-1"]["value"] == 23.5 and sensors["temp-1"]["age"] == 5
    assert sensors["temp-1"]["state"] == "ok" and sensors["temp-1"]["unit"] == "°C"
    assert sensors["leak-1"]["state"] == "alarm"
    assert sensors["hum-1"]["state"] == "never-seen"
    assert [(a["sensor"], a["severity"], a["state"]) for a in status["alarms"]] == [
        ("leak-1", "critical", "firing")
    ]


def test_status_without_tables_is_empty(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "empty.db")
    assert read_status(conn, 0.0) == {
        "sensors": [],
        "alarms": [],
        "silences": [],
        "pending_commands": 0,
    }
    conn.close()
