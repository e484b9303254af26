"""Runs every component as a supervised task: a failure is logged and restarted with
exponential backoff and jitter, and never stops the others.

A component that keeps failing (more than `alarm_count` failures within `alarm_window`)
is marked failing: a restart loop is not something to retry quietly for ever, it is an
alarm (sentinel/component_watch.py turns the mark into a Reading for the alarm engine)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from common.retry import Backoff, Retries
from sentinel.secrets import mask

log = logging.getLogger("sentinel.supervisor")

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0
# A component that ran this long before failing counts as healthy again: backoff restarts.
STABLE_AFTER = 60.0
# More than this many failures within the window make a component "failing" (an alarm).
RESTART_ALARM_COUNT = 5
RESTART_ALARM_WINDOW = 600.0
# An exception text can be a whole HTTP body; status and pages need the start of it.
ERROR_TEXT_MAX = 500
# A component still running this long after it was cancelled is cancelled again (see stop()).
RECANCEL_AFTER = 1.0


def describe(exc: BaseException) -> str:
    """`Type: message` of what really failed: a TaskGroup's ExceptionGroup says only
    "unhandled errors in a TaskGroup", so the first error inside it is named instead."""
    others = 0
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        others += len(exc.exceptions) - 1
        exc = exc.exceptions[0]
    text = f"{type(exc).__name__}: {exc}"
    return text + (f" (and {others} more)" if others else "")


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
    # supervisor-clock times of the failures still inside the alarm window
    failures: deque[float] = field(default_factory=deque)
    failing: bool = False
    failing_since: float | None = None  # wall time
    supervised_since: float = 0.0  # supervisor-clock time of start()


class Supervisor:
    def __init__(
        self,
        *,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        alarm_count: int = RESTART_ALARM_COUNT,
        alarm_window: float = RESTART_ALARM_WINDOW,
        redact: Callable[[str], str] = mask,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.alarm_count = alarm_count
        self.alarm_window = alarm_window
        self._redact = redact
        self._clock = clock
        self._components: dict[str, Component] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.states: dict[str, TaskState] = {}

    def start(self, component: Component) -> None:
        if component.name in self._tasks:
            raise ValueError(f"component {component.name!r} is already running")
        self._components[component.name] = component
        self.states[component.name] = TaskState(component.name, supervised_since=self._clock())
        self._tasks[component.name] = asyncio.create_task(
            self._supervise(component), name=f"component:{component.name}"
        )

    async def stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        self._components.pop(name, None)
        if task:
            task.cancel()
            # Python 3.11's asyncio.wait_for returns a result that arrives together with the
            # cancellation and drops the cancellation (fixed in 3.12); pymodbus awaits every
            # reply that way, so a bus polled every 50 ms can swallow a stop. Asking once
            # would leave a stop or a reload hanging for ever with the room unwatched.
            while not (await asyncio.wait({task}, timeout=RECANCEL_AFTER))[0]:
                log.warning("component %s did not stop when asked; asking again", name)
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.states.pop(name, None)

    async def stop_all(self) -> None:
        for name in list(self._tasks):
            await self.stop(name)

    @property
    def names(self) -> list[str]:
        return list(self._tasks)

    def restarts_in_window(self, state: TaskState) -> int:
        horizon = self._clock() - self.alarm_window
        while state.failures and state.failures[0] <= horizon:
            state.failures.popleft()
        return len(state.failures)

    def judged(self, state: TaskState) -> bool:
        """Whether the mark means something yet: failing, or watched a whole window.

        A fresh supervisor (after a restart or reload) knows no earlier failures, so a
        component is called healthy only once it has run a whole window under it; until
        then a restart alarm raised before stays as it is.
        """
        return state.failing or self._clock() - state.supervised_since >= self.alarm_window

    def check(self) -> list[TaskState]:
        """Re-judges every component's failing mark; returns those whose mark changed.

        Failing: more than `alarm_count` failures within `alarm_window`. Healthy again only
        when it is running and a whole window passed without a failure, so a component
        that fails now and then at the edge of the count does not page over and over.
        """
        changed = []
        for state in list(self.states.values()):
            count = self.restarts_in_window(state)
            if not state.failing and count > self.alarm_count:
                state.failing = True
                state.failing_since = time.time()
                log.critical(
                    "component %s keeps failing: %d restarts within %.0f s; last error: %s",
                    state.name,
                    count,
                    self.alarm_window,
                    state.last_error,
                )
                changed.append(state)
            elif state.failing and count == 0 and state.state == "running":
                state.failing = False
                state.failing_since = None
                log.info(
                    "component %s has run %.0f s without failing again",
                    state.name,
                    self.alarm_window,
                )
                changed.append(state)
        return changed

    def health(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, state in self.states.items():
            try:
                detail = dict(self._components[name].health())
            except Exception as exc:  # health must never break the heartbeat
                detail = {"health_error": self._redact(repr(exc))}
            # The supervisor's keys come last: a component's own `last_error` (often None
            # while it is between runs) must not hide the error that crashed it.
            crashing = state.state == "restarting" or state.failing
            out[name] = {
                **detail,
                "task": state.state,
                "restarts": state.restarts,
                "restarts_in_window": self.restarts_in_window(state),
                "failing": state.failing,
                "failing_since": state.failing_since,
                # the crash is the error while it restarts or keeps failing; once it runs
                # again, its own current error (say, target missing) comes before a crash
                # of weeks ago, which stays in last_crash
                "last_error": (
                    state.last_error if crashing else detail.get("last_error") or state.last_error
                ),
                "last_crash": state.last_error,
                "last_error_ts": state.last_error_ts,
            }
        return out

    async def _supervise(self, component: Component) -> None:
        state = self.states[component.name]
        # full jitter keeps several failing components from retrying in lockstep
        retries = Retries(Backoff(self.backoff_initial, self.backoff_max))
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
                error = self._redact(describe(exc))[:ERROR_TEXT_MAX]
                log.error("component %s failed: %s", component.name, error, exc_info=exc)
            else:
                log.error("component %s stopped unexpectedly; restarting", component.name)
            now = self._clock()
            if now - began >= STABLE_AFTER:
                retries.reset()
            state.state = "restarting"
            state.restarts += 1
            state.last_error = error
            state.last_error_ts = time.time()
            state.failures.append(now)
            self.check()
            await asyncio.sleep(retries.next(random.random()))
