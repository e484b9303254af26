"""Runs every component as a supervised task: a failure is logged and restarted with
exponential backoff and jitter, and never stops the others."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("sentinel.supervisor")

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0
# A component that ran this long before failing counts as healthy again: backoff restarts.
STABLE_AFTER = 60.0


@runtime_checkable
class Component(Protocol):
    """Something the daemon runs for its whole life.

    `run()` runs until cancelled; returning or raising counts as a failure and the
    supervisor restarts it. `health()` is shown in `sentinel status` (keep it cheap: it is
    called every heartbeat) and must never contain secrets.
    """

    name: str

    async def run(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


@dataclass
class TaskState:
    name: str
    state: str = "starting"  # starting | running | restarting | stopped | failed
    restarts: int = 0
    last_error: str | None = None
    last_error_ts: float | None = None
    started: float = field(default_factory=time.time)


class Supervisor:
    def __init__(
        self,
        *,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._clock = clock
        self._components: dict[str, Component] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.states: dict[str, TaskState] = {}

    def start(self, component: Component) -> None:
        if component.name in self._tasks:
            raise ValueError(f"component {component.name!r} is already running")
        self._components[component.name] = component
        self.states[component.name] = TaskState(component.name)
        self._tasks[component.name] = asyncio.create_task(
            self._supervise(component), name=f"component:{component.name}"
        )

    async def stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        self._components.pop(name, None)
        if task:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.states.pop(name, None)

    async def stop_all(self) -> None:
        for name in list(self._tasks):
            await self.stop(name)

    @property
    def names(self) -> list[str]:
        return list(self._tasks)

    def health(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, state in self.states.items():
            try:
                detail = self._components[name].health()
            except Exception as exc:  # health must never break the heartbeat
                detail = {"health_error": repr(exc)}
            out[name] = {
                "task": state.state,
                "restarts": state.restarts,
                "last_error": state.last_error,
                "last_error_ts": state.last_error_ts,
                **detail,
            }
        return out

    async def _supervise(self, component: Component) -> None:
        state = self.states[component.name]
        delay = self.backoff_initial
        while True:
            began = self._clock()
            state.state = "running"
            try:
                await component.run()
                error = "run() returned"
            except asyncio.CancelledError:
                state.state = "stopped"
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.error("component %s failed: %s", component.name, error, exc_info=exc)
            else:
                log.error("component %s stopped unexpectedly; restarting", component.name)
            if self._clock() - began >= STABLE_AFTER:
                delay = self.backoff_initial
            state.state = "restarting"
            state.restarts += 1
            state.last_error = error
            state.last_error_ts = time.time()
            # full jitter keeps several failing components from retrying in lockstep
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.backoff_max)
