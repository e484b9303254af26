"""A failing component is restarted with backoff while the others keep running."""

from __future__ import annotations

import asyncio
from typing import Any

from sentinel.supervisor import Supervisor
from tests.fixtures.poll import until


class Flaky:
    def __init__(self, name: str, failures: int) -> None:
        self.name = name
        self.failures = failures
        self.runs = 0

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError(f"boom {self.runs}")
        await asyncio.Event().wait()

    def health(self) -> dict[str, Any]:
        return {"runs": self.runs}


class Ticker:
    name = "ticker"

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.005)

    def health(self) -> dict[str, Any]:
        return {"ticks": self.ticks}


async def test_failing_component_restarts_and_others_keep_running() -> None:
    sup = Supervisor(backoff_initial=0.02, backoff_max=0.05)
    flaky, ticker = Flaky("flaky", failures=3), Ticker()
    sup.start(flaky)
    sup.start(ticker)
    await until(lambda: flaky.runs == 4, 5, "flaky.runs == 4")
    ticks_when_recovered = ticker.ticks
    await until(
        lambda: ticker.ticks > ticks_when_recovered + 3,
        5,
        "ticker.ticks > ticks_when_recovered + 3",
    )
    health = sup.health()
    assert health["flaky"]["restarts"] == 3
    assert health["flaky"]["last_error"] == "RuntimeError: boom 3"
    assert health["flaky"]["task"] == "running"
    assert health["ticker"]["restarts"] == 0
    await sup.stop_all()
    assert sup.health() == {}


async def test_health_error_does_not_break_status() -> None:
    class Broken(Ticker):
        name = "broken"

        def health(self) -> dict[str, Any]:
            raise ValueError("nope")

    sup = Supervisor()
    sup.start(Broken())
    await asyncio.sleep(0)
    assert "health_error" in sup.health()["broken"]
    await sup.stop_all()


async def test_the_error_inside_a_task_group_is_the_one_shown() -> None:
    class Grouped(Ticker):
        name = "grouped"

        async def run(self) -> None:
            async def vanish() -> None:
                raise FileNotFoundError("source /srv/docs was deleted")

            async with asyncio.TaskGroup() as tg:
                tg.create_task(vanish())
                tg.create_task(asyncio.Event().wait())

    sup = Supervisor(backoff_initial=10, backoff_max=10)
    sup.start(Grouped())
    await until(
        lambda: sup.states["grouped"].restarts == 1, 5, 'sup.states["grouped"].restarts == 1'
    )
    assert sup.health()["grouped"]["last_error"] == (
        "FileNotFoundError: source /srv/docs was deleted"
    )
    await sup.stop_all()


class LostTarget(Flaky):
    """Crashed once, then runs, waiting for a target that is gone: its own error is news."""

    def health(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "last_error": "target missing or not mounted" if self.runs > 1 else None,
        }


async def test_a_running_components_own_error_comes_before_an_old_crash() -> None:
    sup = Supervisor(backoff_initial=0.02, backoff_max=0.05)
    lost = LostTarget("replication:docs", failures=1)
    sup.start(lost)
    await until(
        lambda: lost.runs == 2 and sup.health()[lost.name]["task"] == "running",
        5,
        'lost.runs == 2 and sup.health()[lost.name]["task"] == "running"',
    )
    health = sup.health()[lost.name]
    assert health["last_error"] == "target missing or not mounted"
    assert health["last_crash"] == "RuntimeError: boom 1"
    await sup.stop_all()


class Swallower:
    """Drops the first cancellation, as Python 3.11's asyncio.wait_for does when a reply
    arrives together with it (pymodbus awaits every Modbus reply that way)."""

    name = "swallower"

    def __init__(self) -> None:
        self.swallowed = 0

    async def run(self) -> None:
        while True:
            try:
                await asyncio.sleep(0.005)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1

    def health(self) -> dict[str, Any]:
        return {}


async def test_a_component_that_swallows_a_stop_is_still_stopped() -> None:
    """A stop or a reload that hung on one component would leave the room unwatched."""
    supervisor = Supervisor(backoff_initial=0.01, backoff_max=0.05)
    component = Swallower()
    supervisor.start(component)
    await asyncio.sleep(0.05)
    async with asyncio.timeout(10):
        await supervisor.stop_all()
    assert component.swallowed == 1
    assert supervisor.names == []
