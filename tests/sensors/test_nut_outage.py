"""A UPS outage through the alarm engine on a real state database (issue 15): what the
readings the NUT source sends page, driven by the test's clock (no sleeping). A sentinel
restarted during an outage goes on counting the seconds on battery from the saved value; a
UPS that flaps between mains and battery every poll pages once, not at every flap."""

from __future__ import annotations

import aiosqlite

from alerts.event import AlarmEvent
from sensors.reading import Reading
from sentinel import migrations
from sentinel.alarm.engine import Engine
from sentinel.config import Config
from sentinel.store import Store
from tests.fixtures.core import FakeClock


def ups_config() -> Config:
    return Config.model_validate(
        {
            "nut": [{"name": "main"}],
            "sensors": [
                {"id": "ups-power", "kind": "ups_on_battery", "location": "전산실 UPS",
                 "format": "nut", "source": "main", "ups": "rack"},
            ],
        }
    )  # fmt: skip


class Pages:
    def __init__(self) -> None:
        self.events: list[AlarmEvent] = []

    async def __call__(self, db: aiosqlite.Connection, event: AlarmEvent) -> None:
        self.events.append(event)

    def firing(self) -> list[AlarmEvent]:
        return [e for e in self.events if e.event == "firing"]


def on_battery(seconds: float) -> Reading:
    return Reading("ups-power", "ups_on_battery", seconds, "s")


async def test_an_outage_across_a_restart_is_critical_when_its_whole_time_says(
    store: Store,
) -> None:
    clock = FakeClock()
    pages = Pages()
    await migrations.migrate(store)
    before = Engine(store, ups_config(), enqueue=pages, clock=clock)
    await before.start()
    await before.submit(on_battery(1.0))
    clock.advance(200)
    await before.submit(on_battery(201.0))
    await before.flush()  # what the daemon's stop (or its periodic flush) writes
    [warning] = pages.firing()
    assert warning.severity == "warning"

    clock.advance(30)  # the restart; a new source counts from 1 again
    after = Engine(store, ups_config(), enqueue=pages, clock=clock)
    await after.start()
    await after.submit(on_battery(1.0))
    clock.advance(70)  # 301 s since the power went, 71 s since the restart
    await after.submit(on_battery(71.0))
    raised = pages.firing()[-1]
    assert raised.severity == "critical" and raised.alarm_id == warning.alarm_id

    # back on mains, then a new outage: counted from its own start, not the old one's
    clock.advance(2)
    await after.submit(on_battery(0.0))
    clock.advance(120)
    await after.tick()
    await after.submit(on_battery(1.0))
    clock.advance(10)
    await after.submit(on_battery(11.0))
    new = pages.firing()[-1]
    assert new.alarm_id != warning.alarm_id and new.severity == "warning"


async def test_a_saved_outage_long_before_the_restart_is_not_carried_on(store: Store) -> None:
    clock = FakeClock()
    pages = Pages()
    await migrations.migrate(store)
    before = Engine(store, ups_config(), enqueue=pages, clock=clock)
    await before.start()
    await before.submit(on_battery(120.0))
    await before.flush()
    clock.advance(6 * 3600)  # sentinel was stopped for hours: a new outage now
    after = Engine(store, ups_config(), enqueue=pages, clock=clock)
    await after.start()
    await after.submit(on_battery(1.0))
    clock.advance(5)
    await after.submit(on_battery(6.0))
    assert all(e.severity == "warning" for e in pages.firing())


async def test_a_ups_flapping_every_poll_pages_once(store: Store) -> None:
    clock = FakeClock()
    pages = Pages()
    await migrations.migrate(store)
    engine = Engine(store, ups_config(), enqueue=pages, clock=clock)
    await engine.start()
    for _ in range(20):  # OB, OL, OB, ... at the 2 s poll
        await engine.submit(on_battery(1.0))
        clock.advance(2)
        await engine.tick()
        await engine.submit(on_battery(0.0))
        clock.advance(2)
        await engine.tick()
    assert len(pages.firing()) == 1
    # the mains stay: one all-clear after the hold
    clock.advance(120)
    await engine.submit(on_battery(0.0))
    await engine.tick()
    assert [e.event for e in pages.events] == ["firing", "resolved"]
