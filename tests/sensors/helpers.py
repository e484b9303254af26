"""Runs a source in the background and lets a test wait for the readings it cares about."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from sensors.reading import Reading
from tests.fixtures.poll import until

DEADLINE = 15.0


class Collector:
    """Consumes `source.readings()` in a task; `wait_for` polls with a deadline."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.readings: list[Reading] = []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for reading in self.source.readings():
            self.readings.append(reading)

    async def wait_for(
        self, predicate: Callable[[Reading], bool], *, after: int = 0, within: float = DEADLINE
    ) -> Reading:
        """The first reading (from index `after` on) that satisfies `predicate`."""

        def first() -> Reading | None:
            self._raise_if_ended()
            return next((r for r in self.readings[after:] if predicate(r)), None)

        return await until(
            first, within, lambda: f"a matching reading; got {self.readings[after:]}"
        )

    async def wait_health(
        self, predicate: Callable[[dict[str, Any]], bool], *, within: float = DEADLINE
    ) -> dict[str, Any]:
        def matched() -> dict[str, Any] | None:
            self._raise_if_ended()
            health: dict[str, Any] = self.source.health()
            return health if predicate(health) else None

        return await until(matched, within, lambda: f"health to match: {self.source.health()}")

    def _raise_if_ended(self) -> None:
        # a source that stopped will never produce what is awaited: fail now, with its error
        if self._task.done():
            self._task.result()
            raise AssertionError("source ended")

    async def stop(self) -> None:
        # asked again while it runs: Python 3.11's asyncio.wait_for (inside pymodbus) can drop
        # a cancellation that arrives with a reply (sentinel/supervisor.py's stop() does too)
        self._task.cancel()
        while not (await asyncio.wait({self._task}, timeout=1.0))[0]:
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
