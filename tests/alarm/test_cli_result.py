"""With the daemon running, `sentinel ack` waits for the engine's result and prints it
(one way for every CLI command that acts on the daemon: sentinel/command_rows.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from sentinel.cli.main import main
from sentinel.heartbeat import beat
from sentinel.store import Store
from tests.alarm.helpers import MakeEngine, config, reading
from tests.alarm.test_cli import CFG_SENSORS, TOML


async def test_ack_prints_the_result_the_running_daemon_wrote(
    make_engine: MakeEngine, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(TOML.format(state=store.path.parent), encoding="utf-8")
    engine = await make_engine(config(CFG_SENSORS))
    await engine.submit(reading("leak-1", "water_leak", True))
    [alarm] = engine.active_alarms()
    now = time.time()
    await beat(store.write, now=now, started=now, status="ok", components={}, config={})

    async def ticking() -> None:  # the daemon's loop: applies command rows every tick
        while True:
            await engine.tick()
            await asyncio.sleep(0.05)

    daemon = asyncio.create_task(ticking())
    try:
        rc = await asyncio.to_thread(
            main, ["--config", str(cfg), "ack", alarm["id"], "--by", "kim"]
        )
    finally:
        daemon.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await daemon
    assert rc == 0
    out = capsys.readouterr().out
    assert "the daemon applied it: " in out and "kim" in out
    assert engine.active_alarms()[0]["acked_by"] == "kim"


async def test_a_command_the_daemon_refuses_prints_its_result_and_exits_1(
    make_engine: MakeEngine, store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(TOML.format(state=store.path.parent), encoding="utf-8")
    engine = await make_engine(config(CFG_SENSORS))
    now = time.time()
    await beat(store.write, now=now, started=now, status="ok", components={}, config={})

    async def ticking() -> None:
        while True:
            await engine.tick()
            await asyncio.sleep(0.05)

    daemon = asyncio.create_task(ticking())
    try:
        rc = await asyncio.to_thread(
            main, ["--config", str(cfg), "unsilence", "leak-1", "--by", "kim"]
        )
    finally:
        daemon.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await daemon
    assert rc == 1
    captured = capsys.readouterr()
    assert "the daemon did not apply it: no active silence matched" in captured.err
    assert "recorded" not in captured.out
