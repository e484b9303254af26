"""A siren command the broker's ACL refuses is a failure, not a switched siren (issue 15).

A real mosquitto runs the shipped examples/mosquitto.conf and examples/mosquitto.acl
(tests/fixtures/locked_mosquitto.py), with sentinel's own account. The ACL lets `sentinel`
write `cmnd/beacon/POWER` and no other command topic. Over MQTT 3.1.1 mosquitto dropped a
refused publish and still answered PUBACK, so the output said "on" while the siren stayed
silent; sensors/switch.py now speaks MQTT 5 and reads the PUBACK's reason code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.alarm.engine import Engine
from sentinel.config import Config
from sentinel.outputs import Output, build_outputs
from sentinel.store import Store
from tests.alarm.helpers import Outbox, started_engine
from tests.fixtures.core import FakeClock
from tests.fixtures.locked_mosquitto import PASSWORDS, LockedMosquitto
from tests.fixtures.poll import until
from tests.integration.test_siren import SENSORS, leak

ALLOWED = "cmnd/beacon/POWER"  # examples/mosquitto.acl: `topic write cmnd/beacon/POWER`
REFUSED = "cmnd/siren/POWER"  # no ACL line gives sentinel this topic


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedMosquitto]:
    broker = LockedMosquitto(tmp_path_factory.mktemp("locked-broker"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def acl_config(broker: LockedMosquitto, topic: str, **extra: Any) -> Config:
    return Config.model_validate(
        {
            "mqtt": {"host": broker.host, "port": broker.plain_port, "username": "sentinel",
                     "password": PASSWORDS["sentinel"]},
            "sensors": [{"topic": f"zigbee2mqtt/{s['id']}", **s} for s in SENSORS],
            "outputs": [
                {"name": "siren", "kind": "mqtt", "topic": topic, "retry": "1ms",
                 "alarm_after": 2, "timeout": "5s"}
            ],
            **extra,
        }
    )  # fmt: skip


async def siren_for(engine: Engine, clock: FakeClock, cfg: Config) -> Output:
    [siren] = build_outputs(cfg, [], engine.active_alarms, engine.submit, clock=clock)
    return siren


@pytest.fixture
async def engine(store: Store, clock: FakeClock, locked: LockedMosquitto) -> Engine:
    return await started_engine(store, acl_config(locked, ALLOWED), Outbox(), clock)


async def test_a_command_the_acl_refuses_is_shown_and_raises_the_output_alarm(
    engine: Engine, clock: FakeClock, locked: LockedMosquitto
) -> None:
    siren = await siren_for(engine, clock, acl_config(locked, REFUSED))
    await leak(engine, True)
    await siren.step()
    health = siren.health()
    # Before the fix: state "on", failures 0, though mosquitto had dropped the command.
    assert health["state"] == "unknown" and health["wanted"] == "on"
    assert health["failures"] == 1
    error = health["last_error"]
    assert REFUSED in error and "Not authorized" in error
    assert "ACL" in error and "account sentinel" in error  # what to fix, and where
    assert PASSWORDS["sentinel"] not in error and PASSWORDS["sentinel"] not in str(health)
    assert not [a for a in engine.active_alarms() if a["kind"] == "output"]  # one is no alarm

    await asyncio.sleep(0.01)  # past `retry`
    await siren.step()
    [alarm] = [a for a in engine.active_alarms() if a["kind"] == "output"]
    assert alarm["sensor"] == "output:siren"
    assert "output siren cannot be switched: 2 failures in a row" in alarm["reason"]
    assert REFUSED in alarm["reason"] and PASSWORDS["sentinel"] not in alarm["reason"]


async def test_the_topic_the_acl_grants_switches(
    engine: Engine, clock: FakeClock, locked: LockedMosquitto
) -> None:
    """The same account and broker, the topic the shipped ACL gives sentinel: taken. (No
    relay subscribes here; MQTT 5 answers "No matching subscribers", which is success.)"""
    siren = await siren_for(engine, clock, acl_config(locked, ALLOWED))
    await siren.step()
    assert siren.health()["state"] == "off"
    await leak(engine, True)
    await siren.step()
    health = siren.health()
    assert health["state"] == "on" and health["failures"] == 0 and health["last_error"] is None


async def test_the_daemons_status_names_the_refused_topic(
    tmp_path: Path, locked: LockedMosquitto
) -> None:
    """In the runtime the daemon builds (what `sentinel status` shows as components): the
    sensor connection works with the same account, the siren's component says why it does
    not, and its alarm follows."""
    from sentinel.runtime import Runtime

    cfg = acl_config(locked, REFUSED, daemon={"state_dir": str(tmp_path / "state")})
    store = await Store.open(tmp_path / "state")
    runtime = Runtime(cfg, store)
    try:
        await Runtime.migrate(store)
        await runtime.start()
        engine = runtime.engine
        assert engine is not None
        await leak(engine, True)
        await wait_for(lambda: bool(runtime.health()["output:siren"]["failures"]), "a failure")
        siren = runtime.health()["output:siren"]
        assert siren["state"] == "unknown" and siren["wanted"] == "on"
        assert REFUSED in siren["last_error"] and "Not authorized" in siren["last_error"]
        assert PASSWORDS["sentinel"] not in str(runtime.health())
        await wait_for(
            lambda: any(a["sensor"] == "output:siren" for a in engine.active_alarms()),
            "the siren's alarm",
        )
    finally:
        await runtime.stop()
        await store.close()


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    await until(condition, 15, what)
