"""Runs a source in the background and lets a test wait for the readings it cares about."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from sensors.reading import Reading

DEADLINE = 15.0


class Collector:
    """Consumes `source.readings()` in a task; `wait_for` polls with a deadline, no sleeps."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.readings: list[Reading] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for reading in self.source.readings():
            self.readings.append(reading)
            self._changed.set()

    async def wait_for(
        self, predicate: Callable[[Reading], bool], *, after: int = 0, within: float = DEADLINE
    ) -> Reading:
        """The first reading (from index `after` on) that satisfies `predicate`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        index = after
        while True:
            while index < len(self.readings):
                if predicate(self.readings[index]):
                    return self.readings[index]
                index += 1
            if self._task.done():
                self._task.result()
                raise AssertionError("source ended")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no matching reading; got {self.readings[after:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))

    async def wait_health(
        self, predicate: Callable[[dict[str, Any]], bool], *, within: float = DEADLINE
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            health = self.source.health()
            if predicate(health):
                return health
            if self._task.done():
                self._task.result()
                raise AssertionError("source ended")
            if loop.time() > deadline:
                raise AssertionError(f"health never matched: {health}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def match(sensor_id: str, kind: str | None = None, value: Any = ...) -> Callable[[Reading], bool]:
    def predicate(r: Reading) -> bool:
        return (
            r.sensor_id == sensor_id
            and (kind is None or r.kind == kind)
            and (value is ... or r.value == value)
        )

    return predicate
