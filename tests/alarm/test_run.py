"""The engine as the daemon runs it: run() applies CLI commands and flushes on stop."""

from __future__ import annotations

import asyncio
import time

import aiosqlite
import pytest

from sentinel.alarm.commands import add_command, connect
from sentinel.alarm.engine import Engine
from sentinel.store import Store
from tests.alarm.helpers import SENSORS, MakeEngine, Outbox, config, events, reading
from tests.fixtures.core import FakeClock

DEADLINE = 10.0


async def test_run_applies_commands_and_flushes_when_cancelled(
    make_engine: MakeEngine, store: Store
) -> None:
    engine = await make_engine(config([{**SENSORS[0], "max_age": "1d"}]))
    await engine.submit(reading("leak-1", "water_leak", True))
    [alarm] = engine.active_alarms()
    task = asyncio.create_task(engine.run())
    try:
        conn = connect(store.path.parent)
        add_command(conn, "ack", {"alarm": alarm["id"], "by": "park"})
        conn.close()
        deadline = time.monotonic() + DEADLINE
        while engine.active_alarms()[0]["state"] != "acknowledged":
            assert time.monotonic() < deadline, "run() never applied the ack"
            await asyncio.sleep(0.05)
        assert engine.health()["firing"] == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [e[0] for e in await events(store)] == ["firing", "acknowledged"]
    async with store.db.execute(
        "SELECT value FROM alarm_sensors WHERE id = 'leak-1' AND kind = 'water_leak'"
    ) as cur:
        assert (await cur.fetchone())[0] == "true"  # written by the final flush


async def test_the_engine_never_migrates(store: Store, clock: FakeClock, outbox: Outbox) -> None:
    """The tables are `sentinel.migrations.migrate`'s to create, before anything starts."""
    engine = Engine(store, config(SENSORS), enqueue=outbox, clock=clock)
    with pytest.raises(aiosqlite.OperationalError, match="no such table"):
        await engine.start()
    async with store.db.execute(
        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'alarm_%'"
    ) as cur:
        assert (await cur.fetchone())[0] == 0
