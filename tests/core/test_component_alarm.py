"""A component in a restart loop becomes an alarm: counted in a window by the supervisor,
raised and resolved by the one rules engine, its last error named and masked."""

from __future__ import annotations

import asyncio
from typing import Any

from sensors.reading import Reading
from sentinel.component_watch import ComponentWatch
from sentinel.config import Config
from sentinel.status import judge
from sentinel.store import Store
from sentinel.supervisor import Supervisor
from tests.alarm.helpers import Outbox, sent, started_engine
from tests.fixtures.core import FakeClock
from tests.fixtures.poll import until

PASSWORD = "Pa55-planted-9913"


class Crashy:
    """Fails each time the test says so, and reports `last_error: None` of its own, as a
    source or a replicator between runs does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.crashes: asyncio.Queue[str] = asyncio.Queue()
        self.waiting = False

    async def run(self) -> None:
        self.waiting = True
        try:
            error = await self.crashes.get()
        finally:
            self.waiting = False
        raise OSError(error)

    def health(self) -> dict[str, Any]:
        return {"state": "connected", "last_error": None}


async def crash(sup: Supervisor, comp: Crashy, clock: FakeClock, after: float) -> None:
    """Let the component run `after` seconds of supervisor time, then crash it once."""
    state = sup.states[comp.name]
    restarts = state.restarts
    await until(
        lambda: comp.waiting and state.state == "running",
        5,
        'comp.waiting and state.state == "running"',
    )
    clock.advance(after)
    comp.crashes.put_nowait(f"cannot reach mqtt://sentinel:{PASSWORD}@broker:1883")
    await until(lambda: state.restarts == restarts + 1, 5, "state.restarts == restarts + 1")


async def test_restart_loop_is_counted_in_a_window_and_pages_once(
    store: Store, clock: FakeClock
) -> None:
    outbox = Outbox()
    engine = await started_engine(store, Config(), outbox, clock)
    sup = Supervisor(
        backoff_initial=0.001, backoff_max=0.001, alarm_count=2, alarm_window=600.0, clock=clock
    )
    watch = ComponentWatch(sup, engine.submit, clock=clock)
    comp = Crashy("source:serial-a")
    sup.start(comp)

    # two failures in the window: restarted quietly (a blip is not a page)
    await crash(sup, comp, clock, 10)
    await crash(sup, comp, clock, 10)
    await watch.report()
    assert not sup.states[comp.name].failing
    assert await sent(store) == []

    # a third within ten minutes: the restart loop pages, once
    await crash(sup, comp, clock, 10)
    await until(lambda: comp.waiting, 5, "comp.waiting")
    await watch.report()
    await watch.report()
    pages = await sent(store)
    assert [(p["event"], p["severity"], p["sensor_id"]) for p in pages] == [
        ("firing", "critical", "component:source:serial-a")
    ]
    reason = pages[0]["reason"]
    assert "source:serial-a" in reason and "3 restarts in 10m" in reason
    assert "OSError: cannot reach mqtt://sentinel:" in reason and PASSWORD not in reason

    # status: the crash's own error (not the component's None), the count, the mark
    health = sup.health()[comp.name]
    assert health["failing"] is True
    assert health["restarts"] == 3 and health["restarts_in_window"] == 3
    assert health["last_error"].startswith("OSError: cannot reach mqtt://")
    assert PASSWORD not in str(health)
    report = {
        "daemon": {"state": "up"},
        "alarms": [],
        "alerts": {},
        "components": {comp.name: health},
    }
    assert any("keeps failing" in r and "OSError" in r for r in judge(report).reasons)

    # running again, but the window still holds a failure: the alarm stays
    clock.advance(595)
    await watch.report()
    assert len(await sent(store)) == 1 and sup.states[comp.name].failing

    # a whole window without a failure: resolved through the same engine
    clock.advance(10)
    await watch.report()
    pages = await sent(store)
    assert [p["event"] for p in pages] == ["firing", "resolved"]
    assert sup.health()[comp.name]["restarts_in_window"] == 0

    # old failures do not count: two new ones stay below the count
    await crash(sup, comp, clock, 10)
    await crash(sup, comp, clock, 10)
    await watch.report()
    assert len(await sent(store)) == 2
    await sup.stop_all()


async def test_a_restart_neither_resolves_nor_pages_a_restart_alarm_again(
    store: Store, clock: FakeClock
) -> None:
    """After a restart (or reload) the new supervisor knows no earlier failures: an alarm
    raised before stays until a whole window passed, for a component still configured
    and for one that left the config."""
    outbox = Outbox()
    engine = await started_engine(store, Config(), outbox, clock)
    for name in ("source:serial-a", "source:old"):
        await engine.submit(
            Reading(
                f"component:{name}",
                "component",
                True,
                "",
                clock(),
                detail=f"component {name} keeps failing",
            )
        )
    assert len(await sent(store)) == 2

    sup = Supervisor(alarm_count=2, alarm_window=600.0, clock=clock)
    watch = ComponentWatch(sup, engine.submit, active_alarms=engine.active_alarms, clock=clock)
    comp = Crashy("source:serial-a")
    sup.start(comp)
    await until(lambda: comp.waiting, 5, "comp.waiting")
    await watch.report()
    clock.advance(599)
    await watch.report()
    assert len(await sent(store)) == 2 and len(engine.active_alarms()) == 2

    clock.advance(2)
    await watch.report()
    assert sorted((p["event"], p["sensor_id"]) for p in (await sent(store))[2:]) == [
        ("resolved", "component:source:old"),
        ("resolved", "component:source:serial-a"),
    ]
    assert engine.active_alarms() == []
    await sup.stop_all()
