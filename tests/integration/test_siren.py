"""A siren or beacon (issue 15): on while a critical alarm fires, off on acknowledge, resolve
or silence; a warning never sounds it. Against a real mosquitto (a subscriber sees the
command topic) and pymodbus's server (the coil read back from the device), with the real
alarm engine on a real store. A siren that cannot be switched says so: in its component's
health (what `sentinel status` shows) and, after repeated failures, as an alarm."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from alerts import reasons
from alerts.event import AlarmEvent
from alerts.templates import Templates
from sensors.modbus import ModbusSource, modbus_binding
from sensors.reading import Reading
from sensors.sim.modbus_device import ModbusDeviceSim
from sensors.switch import ModbusCoil
from sentinel.alarm.engine import Engine
from sentinel.config import Config
from sentinel.outputs import Output, build_outputs
from sentinel.sources import build_sources
from sentinel.store import Store
from tests.alarm.helpers import Outbox, acknowledge, silence, started_engine
from tests.fixtures.core import FakeClock
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until

SENSORS = [
    {"id": "leak-1", "kind": "water_leak", "location": "under rack A"},
    {"id": "temp-1", "kind": "temperature", "location": "rack A"},
    {"id": "smoke-1", "kind": "smoke", "location": "ceiling"},
]


def siren_config(broker_port: int, **output: Any) -> Config:
    return Config.model_validate(
        {
            "mqtt": {"host": "127.0.0.1", "port": broker_port},
            "sensors": [{"topic": f"zigbee2mqtt/{s['id']}", **s} for s in SENSORS],
            "outputs": [
                {"name": "siren", "kind": "mqtt", "topic": "cmnd/beacon/POWER",
                 "retry": "1ms", "alarm_after": 2, "timeout": "2s", **output}
            ],
        }
    )  # fmt: skip


class Listener:
    """A subscriber on the siren's command topic: what a Tasmota relay would receive."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.broker, self.topic = broker, topic
        self.got: list[tuple[str, bool]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            await client.subscribe(self.topic, qos=1)
            self._ready.set()
            async for message in client.messages:
                self.got.append((bytes(message.payload).decode(), message.retain))  # type: ignore[arg-type]

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def next(self, seen: int) -> str:
        await until(lambda: len(self.got) > seen, 10, f"message {seen + 1} on {self.topic}")
        return self.got[seen][0]


async def leak(engine: Engine, wet: bool, sensor: str = "leak-1", kind: str = "water_leak") -> None:
    await engine.submit(Reading(sensor, kind, wet))


def alarm_id(engine: Engine, sensor: str) -> str:
    [alarm] = [a for a in engine.active_alarms() if a["sensor"] == sensor]
    return str(alarm["id"])


@pytest.fixture
async def engine(store: Store, clock: FakeClock, mosquitto: Mosquitto) -> Engine:
    return await started_engine(store, siren_config(mosquitto.port), Outbox(), clock)


async def test_mqtt_siren_follows_critical_alarms(
    engine: Engine, store: Store, clock: FakeClock, mosquitto: Mosquitto
) -> None:
    cfg = siren_config(mosquitto.port)
    [siren] = build_outputs(cfg, [], engine.active_alarms, engine.submit, clock=clock)
    async with Listener(mosquitto, "cmnd/beacon/POWER") as relay:
        await siren.step()  # at start: the right state, off with nothing critical
        assert await relay.next(0) == "OFF"
        await engine.submit(Reading("temp-1", "temperature", 31.0))  # a warning
        await siren.step()
        assert siren.health()["state"] == "off" and len(relay.got) == 1  # no write, no sound

        await leak(engine, True)
        await siren.step()
        assert await relay.next(1) == "ON"
        assert relay.got[1] == ("ON", False)  # live delivery; the broker also retains it
        await siren.step()
        assert len(relay.got) == 2  # written only on change

        await acknowledge(engine, store, clock, alarm_id(engine, "leak-1"), "kim")
        await siren.step()
        assert await relay.next(2) == "OFF"  # the leak is still wet, but a person knows

        await leak(engine, True, "smoke-1", "smoke")
        await siren.step()
        assert await relay.next(3) == "ON"
        await leak(engine, False, "smoke-1", "smoke")  # resolved
        await siren.step()
        assert await relay.next(4) == "OFF"

        await leak(engine, True, "smoke-1", "smoke")
        await siren.step()
        assert await relay.next(5) == "ON"
        await silence(engine, store, clock, "smoke-1", 600, "detector test", "kim")
        await siren.step()
        assert await relay.next(6) == "OFF"  # silenced: off (sentinel/outputs.py says why)
        clock.advance(601)  # the silence ends and the smoke is still there: it sounds again
        await engine.tick()
        await siren.step()
        assert await relay.next(7) == "ON"
    assert siren.health()["failures"] == 0 and siren.health()["writes"] == 8


async def test_retained_state_reaches_a_relay_that_reconnects(
    engine: Engine, clock: FakeClock, mosquitto: Mosquitto
) -> None:
    [siren] = build_outputs(
        siren_config(mosquitto.port, topic="cmnd/beacon2/POWER"),
        [],
        engine.active_alarms,
        engine.submit,
        clock=clock,
    )
    await leak(engine, True)
    await siren.step()
    async with Listener(mosquitto, "cmnd/beacon2/POWER") as relay:  # subscribes after
        assert await relay.next(0) == "ON"
        assert relay.got[0] == ("ON", True)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_siren_that_cannot_be_switched_is_shown_and_raises_an_alarm(
    engine: Engine, clock: FakeClock, mosquitto: Mosquitto
) -> None:
    port = closed_port()  # nothing listens: every write fails
    [siren] = build_outputs(
        siren_config(port, topic="cmnd/beacon4/POWER"),
        [],
        engine.active_alarms,
        engine.submit,
        clock=clock,
    )
    await leak(engine, True)
    await siren.step()
    health = siren.health()
    assert health["state"] == "unknown" and health["wanted"] == "on"
    assert health["failures"] == 1 and f"127.0.0.1:{port}" in health["last_error"]
    assert not [a for a in engine.active_alarms() if a["kind"] == "output"]  # one is no alarm
    await asyncio.sleep(0.01)  # past `retry`
    await siren.step()
    [alarm] = [a for a in engine.active_alarms() if a["kind"] == "output"]
    assert alarm["sensor"] == "output:siren" and alarm["severity"] == "warning"
    assert "output siren cannot be switched: 2 failures in a row" in alarm["reason"]
    event = AlarmEvent(
        alarm["id"], "firing", "warning", "output:siren", "", "output", True, "",
        alarm["reason"], clock(), cause=reasons.OUTPUT_FAILING,
        params={"name": "siren", "failures": 2, "error": health["last_error"]},
    )  # fmt: skip
    sms = Templates(language="ko").render(event, "sms").body
    assert "경보 출력 siren 제어 불가" in sms and f"#{alarm['id']}" in sms  # fits, id kept

    # the broker is back (here: the siren's settings now name it): the alarm resolves
    cfg = siren_config(mosquitto.port, topic="cmnd/beacon4/POWER")
    [good] = build_outputs(cfg, [], engine.active_alarms, engine.submit, clock=clock)
    siren.switch = good.switch
    await asyncio.sleep(0.01)
    await siren.step()
    assert siren.health()["state"] == "on" and siren.health()["failures"] == 0
    assert not [a for a in engine.active_alarms() if a["kind"] == "output"]


# -- Modbus: the coil of a relay module on the same RS-485 line the sensors are polled on ---


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[ModbusDeviceSim]:
    async with ModbusDeviceSim(tmp_path / "rs485", [1, 5]) as sim:
        yield sim


async def test_modbus_coil_siren_shares_the_bus_with_polls(
    line: ModbusDeviceSim, engine: Engine, store: Store, clock: FakeClock
) -> None:
    bus = ModbusSource(
        "modbus:rs485",
        line.port,
        [modbus_binding("leak-1", "water_leak", 1, preset="leak-controller")],
        interval=0.05,
        timeout=0.3,
        reconnect_min=0.05,
    )
    readings: list[Reading] = []

    async def poll() -> None:
        async for reading in bus.readings():
            readings.append(reading)
            await engine.submit(reading)

    task = asyncio.create_task(poll())
    cfg = Config.model_validate(
        {"modbus": [{"name": "rs485", "port": line.port}],
         "outputs": [{"name": "beacon", "kind": "modbus", "bus": "rs485", "device": 5,
                      "coil": 3, "retry": "1ms", "alarm_after": 2, "timeout": "1s"}]}
    )  # fmt: skip
    [out] = cfg.outputs
    beacon = Output(
        out, ModbusCoil("beacon", bus, "rs485", 5, 3, 1.0), engine.active_alarms, engine.submit
    )
    try:
        await line.set_leak(1, leak=False)
        await beacon.step()
        assert await line.coil(5, 3) is False and beacon.health()["state"] == "off"
        await line.set_leak(1, leak=True)  # polled from device 1, paged, the beacon lit
        await until(
            lambda: any(a["sensor"] == "leak-1" for a in engine.active_alarms()),
            10,
            "the leak alarm",
        )
        await beacon.step()
        assert await line.coil(5, 3) is True and beacon.health()["state"] == "on"
        polls = bus.health()["polls"]
        await until(lambda: bus.health()["polls"] > polls + 2, 10, "polls after the write")
        assert bus.health()["devices_down"] == []  # the write did not cost a poll
        await acknowledge(engine, store, clock, alarm_id(engine, "leak-1"), "kim")
        await beacon.step()
        assert await line.coil(5, 3) is False

        line.silence(5)  # the relay module stops answering
        await leak(engine, True, "smoke-1", "smoke")
        await beacon.step()
        await asyncio.sleep(0.01)
        await beacon.step()
        health = beacon.health()
        assert health["state"] == "unknown" and health["failures"] == 2
        assert "device 5" in health["last_error"]
        [alarm] = [a for a in engine.active_alarms() if a["kind"] == "output"]
        assert alarm["sensor"] == "output:beacon"
        line.silence(5, False)
        await asyncio.sleep(0.01)
        await beacon.step()
        assert await line.coil(5, 3) is True
        assert not [a for a in engine.active_alarms() if a["kind"] == "output"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_a_bus_only_an_output_uses_is_opened_for_it(tmp_path: Path) -> None:
    cfg = Config.model_validate(
        {"modbus": [{"name": "relays", "port": str(tmp_path / "tty")}],
         "outputs": [{"name": "beacon", "kind": "modbus", "bus": "relays", "device": 2,
                      "coil": 0}]}
    )  # fmt: skip
    assert [s.name for s in build_sources(cfg)] == ["modbus:relays"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"name": "s", "kind": "mqtt"}, "needs a topic"),
        (
            {"name": "s", "kind": "modbus", "bus": "rs485", "device": 1},
            "needs bus, device and coil",
        ),
        ({"name": "s", "kind": "modbus", "bus": "nope", "device": 1, "coil": 0}, "is not a"),
        ({"name": "s", "kind": "mqtt", "topic": "a/#"}, "wildcards"),
    ],
)
def test_bad_outputs_are_config_errors(output: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.model_validate(
            {"mqtt": {}, "modbus": [{"name": "rs485", "port": "/dev/null"}], "outputs": [output]}
        )


async def test_the_daemons_runtime_sounds_the_siren_for_a_leak_and_shows_a_dead_one(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """End to end in the runtime the daemon builds: a leak published on mosquitto, the
    engine's alarm, the siren's command on mosquitto. A second output, a coil on a bus that
    cannot be opened, is in the components' health (what `sentinel status` shows) and
    becomes an alarm."""
    from sentinel.runtime import Runtime

    cfg = Config.model_validate(
        {
            "daemon": {"state_dir": str(tmp_path / "state")},
            "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": "sentinel-rt"},
            "sensors": [{"id": "leak-1", "kind": "water_leak", "topic": "zigbee2mqtt/rt-leak"}],
            "outputs": [
                {"name": "siren", "kind": "mqtt", "topic": "cmnd/rt/POWER"},
                {"name": "dead", "kind": "modbus", "bus": "relays", "device": 2, "coil": 0,
                 "retry": "50ms", "alarm_after": 2, "timeout": "100ms"},
            ],
            "modbus": [{"name": "relays", "port": str(tmp_path / "no-such-tty")}],
        }
    )  # fmt: skip
    store = await Store.open(tmp_path / "state")
    runtime = Runtime(cfg, store)
    try:
        await Runtime.migrate(store)
        async with Listener(mosquitto, "cmnd/rt/POWER") as relay:
            await runtime.start()
            assert runtime.engine is not None
            assert await relay.next(0) == "OFF"  # at start: nothing critical
            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
                await client.publish("zigbee2mqtt/rt-leak", '{"water_leak": true}', qos=1)
            assert await relay.next(1) == "ON"
            health = runtime.health()
            assert health["output:siren"]["state"] == "on"
            await until(
                lambda: runtime.health()["output:dead"]["wanted"] == "on", 10, "the next try"
            )
            dead_siren = runtime.health()["output:dead"]
            assert dead_siren["state"] == "unknown" and dead_siren["wanted"] == "on"
            assert "device 2 did not take the write" in dead_siren["last_error"]
            engine = runtime.engine
            await until(
                lambda: any(a["sensor"] == "output:dead" for a in engine.active_alarms()),
                10,
                "the dead siren's alarm",
            )
    finally:
        await runtime.stop()
        await store.close()


async def test_unchanged_state_is_written_again_after_reassert(
    engine: Engine, clock: FakeClock, mosquitto: Mosquitto
) -> None:
    """A relay that lost power forgets it was on: the state goes out again, unchanged."""
    cfg = siren_config(mosquitto.port, topic="cmnd/beacon3/POWER", reassert="1m")
    [built] = build_outputs(cfg, [], engine.active_alarms, engine.submit, clock=clock)
    mono = FakeClock(0.0)
    siren = Output(cfg.outputs[0], built.switch, engine.active_alarms, engine.submit,
                   monotonic=mono)  # fmt: skip
    await leak(engine, True)
    async with Listener(mosquitto, "cmnd/beacon3/POWER") as relay:
        await siren.step()
        assert await relay.next(0) == "ON"
        mono.advance(59)
        await siren.step()
        assert len(relay.got) == 1
        mono.advance(1)
        await siren.step()
        assert await relay.next(1) == "ON"


async def test_kinds_limit_what_sounds_the_siren(
    engine: Engine, clock: FakeClock, mosquitto: Mosquitto
) -> None:
    """`kinds = ["smoke"]`: a critical leak (or a crash loop at night) leaves it off."""
    cfg = siren_config(mosquitto.port, topic="cmnd/beacon5/POWER", kinds=["smoke"])
    [siren] = build_outputs(cfg, [], engine.active_alarms, engine.submit, clock=clock)
    await leak(engine, True)
    await siren.step()
    assert siren.health()["state"] == "off"
    await leak(engine, True, "smoke-1", "smoke")
    await siren.step()
    assert siren.health()["state"] == "on"
