"""Door contacts (issue 15): Zigbee2MQTT and Tasmota payloads through a real mosquitto to the
alarm engine and the page it words. An open door pages outside the allowed hours, or when it
stands open longer than the limit; a door still open when the hours end pages then, without
a new reading (the engine's tick, driven by the test's clock: no sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiomqtt
import aiosqlite
import pytest
from pydantic import ValidationError

from alerts import reasons
from alerts.event import AlarmEvent
from alerts.templates import Templates, sms_bytes
from sensors.mqtt import MqttSettings, MqttSource, mqtt_binding
from sensors.reading import Reading
from sentinel import migrations
from sentinel.alarm.engine import Engine
from sentinel.config import Config
from sentinel.config.hours import Hours
from sentinel.sources import to_mqtt_binding
from sentinel.store import Store
from tests.fixtures.core import FakeClock
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until

# Wednesday 2 December 2026, host local time (the hours are local time too)
WED = datetime(2026, 12, 2)


def at(hour: int, minute: int = 0, second: int = 0) -> float:
    return WED.replace(hour=hour, minute=minute, second=second).timestamp()


def door_config() -> Config:
    return Config.model_validate(
        {
            "mqtt": {},
            "sensors": [
                {"id": "door-srv", "kind": "door", "location": "server room",
                 "topic": "zigbee2mqtt/server_door", "max_age": "2h"},
                {"id": "door-back", "kind": "door", "location": "back door",
                 "format": "tasmota", "topic": "backdoor", "max_age": "2h"},
            ],
            "rules": [{"kind": "door", "allowed": ["Mon-Fri 08:00-19:00"], "open_limit": "10m"}],
        }
    )  # fmt: skip


@dataclass
class Room:
    """The engine on a real store, fed by an MQTT source on mosquitto; pages recorded."""

    engine: Engine
    clock: FakeClock
    broker: Mosquitto
    pages: list[AlarmEvent] = field(default_factory=list)
    submitted: list[int] = field(default_factory=lambda: [0])  # readings the engine took

    async def publish(self, topic: str, payload: str) -> None:
        seen = self.submitted[0]
        async with aiomqtt.Client(self.broker.host, self.broker.port) as client:
            await client.publish(topic, payload, qos=1)
        await until(lambda: self.submitted[0] > seen, 10, f"the reading from {topic}")

    def sms(self, event: AlarmEvent) -> str:
        return Templates(language="en").render(event, "sms").body

    def firing(self) -> list[AlarmEvent]:
        return [p for p in self.pages if p.event == "firing"]


@pytest.fixture
async def room(store: Store, mosquitto: Mosquitto) -> AsyncIterator[Room]:
    clock = FakeClock(at(21, 14))
    pages: list[AlarmEvent] = []

    async def enqueue(db: aiosqlite.Connection, event: AlarmEvent) -> None:
        pages.append(event)

    cfg = door_config()
    await migrations.migrate(store)
    engine = Engine(store, cfg, enqueue=enqueue, clock=clock)
    await engine.start()
    settings = MqttSettings(
        mosquitto.host, mosquitto.port, client_id="sentinel-doors", reconnect_min=0.05
    )
    source = MqttSource(settings, [to_mqtt_binding(s) for s in cfg.sensors], clock=clock)

    submitted = [0]

    async def pump() -> None:
        async for reading in source.readings():
            await engine.submit(reading)
            submitted[0] += 1

    task = asyncio.create_task(pump())
    try:
        await until(lambda: source.health()["state"] == "connected", 10, "the MQTT connect")
        yield Room(engine, clock, mosquitto, pages, submitted)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_zigbee_door_open_outside_hours_pages_once_and_resolves_on_close(
    room: Room,
) -> None:
    await room.publish("zigbee2mqtt/server_door", '{"contact": false, "battery": 90}')
    [page] = room.firing()
    assert page.severity == "warning" and page.sensor_id == "door-srv"
    sms = room.sms(page)
    assert "server room" in sms and "door open since 21:14 outside hours" in sms, sms
    room.clock.advance(60)
    await room.engine.tick()
    await room.publish("zigbee2mqtt/server_door", '{"contact": false, "battery": 90}')
    assert len(room.firing()) == 1  # still open: no second page
    await room.publish("zigbee2mqtt/server_door", '{"contact": true, "battery": 90}')
    assert [p.event for p in room.pages] == ["firing"]  # closed: the all-clear after a minute
    room.clock.advance(60)
    await room.engine.tick()
    assert [p.event for p in room.pages] == ["firing", "resolved"]
    assert room.engine.active_alarms() == []


async def test_tasmota_door_open_in_hours_pages_only_past_the_limit(room: Room) -> None:
    room.clock.now = at(10, 0)
    await room.publish("tele/backdoor/SENSOR", '{"Time": "2026-12-02T10:00:00", "Switch1": "OFF"}')
    await room.engine.tick()
    assert room.pages == []  # open inside the hours, not yet for long
    room.clock.advance(9 * 60 + 59)
    await room.engine.tick()
    assert room.pages == []
    room.clock.advance(1)
    await room.engine.tick()
    [page] = room.firing()
    assert page.sensor_id == "door-back"
    assert "door open since 10:00, longer than 10 min" in room.sms(page)
    room.clock.advance(30)
    await room.engine.tick()
    assert len(room.pages) == 1
    await room.publish("tele/backdoor/SENSOR", '{"Time": "2026-12-02T10:11:00", "Switch1": "ON"}')
    room.clock.advance(60)
    await room.engine.tick()
    assert [p.event for p in room.pages] == ["firing", "resolved"]


async def test_door_open_when_the_hours_end_pages_at_the_end_without_a_reading(
    room: Room,
) -> None:
    room.clock.now = at(18, 55)
    await room.publish("zigbee2mqtt/server_door", '{"contact": false}')
    room.clock.now = at(18, 59, 59)
    await room.engine.tick()
    assert room.pages == []
    room.clock.now = at(19, 0)
    await room.engine.tick()  # no reading since 18:55: the tick alone finds it
    [page] = room.firing()
    assert "door open since 18:55 outside hours" in room.sms(page)
    assert page.ts == at(19, 0)


async def test_closed_door_never_pages(room: Room) -> None:
    await room.publish("zigbee2mqtt/server_door", '{"contact": true}')
    await room.publish("tele/backdoor/SENSOR", '{"Switch1": "ON"}')
    room.clock.advance(3600)
    await room.engine.tick()
    assert room.pages == []


def test_contact_reads_inverted_and_a_value_map_replaces_it() -> None:
    z2m = mqtt_binding("d", "door", "zigbee2mqtt", "zigbee2mqtt/d").binding
    assert z2m.pick({"contact": True}) == ("contact", True)
    assert z2m.reading(True, ts=0, source="t").value is False  # contact closed: door closed
    assert z2m.reading(False, ts=0, source="t").value is True
    tasmota = mqtt_binding("d", "door", "tasmota", "d").binding
    assert tasmota.reading("ON", ts=0, source="t").value is False
    assert tasmota.reading("OFF", ts=0, source="t").value is True
    # a normally-closed reed: its owner says which state is open
    nc = mqtt_binding("d", "door", "tasmota", "d", value_map={"on": True, "off": False}).binding
    assert nc.reading("ON", ts=0, source="t").value is True
    esphome = mqtt_binding("d", "door", "esphome", "n/binary_sensor/door").binding
    assert esphome.reading(True, ts=0, source="t").value is True  # ESPHome's door: ON = open


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"kind": "door", "allowed": ["Mon-Fri 8-19"]}, 'is not "<days> HH:MM-HH:MM"'),
        ({"kind": "door", "allowed": ["Mon-Fry 08:00-19:00"]}, "'fry' is not a day"),
        ({"kind": "door", "allowed": ["Mon 08:00-25:00"]}, "25:00 is not a time of day"),
        ({"kind": "temperature", "allowed": ["daily 08:00-19:00"]}, 'for kind = "door"'),
    ],
)
def test_bad_hours_are_a_config_error_naming_the_spec(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Config.model_validate({"rules": [rule]})


def test_hours_on_a_sensor_that_is_no_door_are_a_config_error() -> None:
    temp = {"id": "t1", "kind": "temperature", "topic": "zigbee2mqtt/t1"}
    with pytest.raises(ValidationError, match="allowed and open_limit are for doors; 't1'"):
        Config.model_validate(
            {"mqtt": {}, "sensors": [temp], "rules": [{"sensor": "t1", "open_limit": "5m"}]}
        )
    door = {"id": "d1", "kind": "door", "topic": "zigbee2mqtt/d1"}
    Config.model_validate(
        {
            "mqtt": {},
            "sensors": [door],
            "rules": [{"sensor": "d1", "allowed": ["daily 07:00-22:00"]}],
        }
    )


@pytest.mark.parametrize(
    ("specs", "when", "allowed"),
    [
        (["Mon-Fri 08:00-19:00"], "2026-12-02 07:59", False),
        (["Mon-Fri 08:00-19:00"], "2026-12-02 08:00", True),
        (["Mon-Fri 08:00-19:00"], "2026-12-02 19:00", False),  # the end is not inside
        (["Mon-Fri 08:00-19:00"], "2026-12-05 10:00", False),  # Saturday
        (["Sat 22:00-02:00"], "2026-12-06 01:59", True),  # past midnight into Sunday
        (["Sat 22:00-02:00"], "2026-12-06 02:00", False),
        (["Sun 23:00-01:00"], "2026-12-07 00:30", True),  # Sunday night into Monday
        (["Fri-Mon 09:00-10:00"], "2026-12-06 09:30", True),  # a range across the week's end
        (["Fri-Mon 09:00-10:00"], "2026-12-02 09:30", False),
        (["daily 00:00-24:00"], "2026-12-02 23:59", True),
        (["Mon,Wed 12:00-13:00", "Tue 12:00-13:00"], "2026-12-01 12:30", True),
    ],
)
def test_allowed_hours(specs: list[str], when: str, allowed: bool) -> None:
    assert Hours.parse(specs).allows(datetime.fromisoformat(when)) is allowed


def test_door_page_in_korean_fits_one_sms() -> None:
    event = AlarmEvent(
        "EYDH", "firing", "warning", "door-srv", "전산실 출입문", "door", True, "",
        "door open since 21:14 outside hours", at(21, 14),
        cause=reasons.DOOR_OUTSIDE_HOURS,
        params={"since": "21:14", "allowed": "Mon-Fri 08:00-19:00"},
    )  # fmt: skip
    sms = Templates(language="ko").render(event, "sms").body
    assert "21:14부터 열림(허용 시간 외)" in sms and "#EYDH" in sms
    assert sms_bytes(sms) <= 90
    body = Templates(language="ko").render(event, "long").body
    assert "허용: Mon-Fri 08:00-19:00" in body


async def test_a_door_open_across_a_restart_still_pages_when_the_hours_end(store: Store) -> None:
    clock = FakeClock(at(18, 55))
    pages: list[AlarmEvent] = []

    async def enqueue(db: aiosqlite.Connection, event: AlarmEvent) -> None:
        pages.append(event)

    await migrations.migrate(store)
    before = Engine(store, door_config(), enqueue=enqueue, clock=clock)
    await before.start()
    await before.submit(Reading("door-srv", "door", True))
    await before.flush()  # what the daemon's stop (or its periodic flush) writes
    clock.now = at(18, 58)
    after = Engine(store, door_config(), enqueue=enqueue, clock=clock)  # the daemon restarted
    await after.start()
    await after.tick()
    assert pages == []
    clock.now = at(19, 0)
    await after.tick()  # no reading since before the restart
    [page] = pages
    assert page.event == "firing" and "door open since 18:55 outside hours" in page.reason


async def test_a_flapping_contact_outside_hours_pages_once(store: Store) -> None:
    """A loose magnet reads open, closed, open... every few seconds at night: one alarm (the
    door's default clear_hold), and one all-clear once it stays closed."""
    clock = FakeClock(at(21, 14))
    pages: list[AlarmEvent] = []

    async def enqueue(db: aiosqlite.Connection, event: AlarmEvent) -> None:
        pages.append(event)

    await migrations.migrate(store)
    engine = Engine(store, door_config(), enqueue=enqueue, clock=clock)
    await engine.start()
    for _ in range(15):
        for is_open in (True, False):
            await engine.submit(Reading("door-srv", "door", is_open))
            clock.advance(2)
            await engine.tick()
    assert [p.event for p in pages] == ["firing"]
    clock.advance(120)
    await engine.tick()
    assert [p.event for p in pages] == ["firing", "resolved"]
