"""A supervised component that keeps failing becomes an alarm, like a leak does.

The supervisor marks a component failing (more than `[daemon] restart_alarm_count`
failures within `restart_alarm_window`). This watch turns each component's mark into a
Reading of kind "component" for the pseudo-sensor "component:<name>", so the one rules
engine raises the alarm (with the component's last error as its reason) and resolves it
once the component has run a whole window without failing.

When the failing component is the alarm road itself (the engine, or the sender that
drains the outbox), that road cannot carry the page. The watch then also sends it
directly to the channels, bypassing the outbox: at most once per failing spell, not
durable (a restart forgets it), retried while no channel took it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alerts import reasons
from alerts.channels import Channel
from alerts.event import AlarmEvent, EventType, Severity
from alerts.outbox import Outbox
from alerts.sender import deliver
from alerts.templates import Templates
from sensors.reading import Kind, Reading
from sentinel.config.types import format_duration
from sentinel.supervisor import Supervisor, TaskState

log = logging.getLogger("sentinel.components")

SENSOR_PREFIX = "component:"
# The components a page travels through: the alarm engine and the outbox sender.
ALARM_PATH = frozenset({"alarms", "alerts"})
WATCH_INTERVAL = 2.0
DIRECT_RETRY = 30.0
SUBMIT_TIMEOUT = 10.0
# Shown as the alarm id of a page that went around the outbox; the engine's id is unknown.
DIRECT_ID = "SELF"


def sensor_id(name: str) -> str:
    """The pseudo-sensor a component's restart alarm carries (and `sentinel silence` takes)."""
    return SENSOR_PREFIX + name


def failure_text(supervisor: Supervisor, state: TaskState) -> str:
    """What the page says: which component, how often, and the error that crashed it."""
    count = supervisor.restarts_in_window(state)
    return (
        f"component {state.name} keeps failing: {count} restarts in "
        f"{format_duration(supervisor.alarm_window)}; last error: {state.last_error}"
    )


def failure_params(supervisor: Supervisor, state: TaskState) -> dict[str, Any]:
    """`failure_text` as parameters of alerts/reasons.py's COMPONENT, for the page's wording."""
    return {
        "name": state.name,
        "count": supervisor.restarts_in_window(state),
        "window": supervisor.alarm_window,
        "error": state.last_error,
    }


def component_readings(supervisor: Supervisor, now: float) -> list[Reading]:
    """One reading per component whose mark is judged: True while it is marked failing."""
    supervisor.check()
    return [
        Reading(
            sensor_id(state.name),
            str(Kind.COMPONENT),
            state.failing,
            "",
            now,
            source="supervisor",
            detail=failure_text(supervisor, state) if state.failing else None,
            cause=reasons.COMPONENT if state.failing else None,
            params=failure_params(supervisor, state) if state.failing else None,
        )
        for state in list(supervisor.states.values())
        if supervisor.judged(state)
    ]


@dataclass
class _DirectPage:
    event: AlarmEvent
    waiting: list[Channel]
    next_try: float = 0.0
    done: list[str] = field(default_factory=list)


class ComponentWatch:
    """Feeds the supervisor's failing marks to the engine every few seconds.

    Not a supervised component itself: it watches the supervisor, and its loop survives
    any error (each is logged) so it can still report when everything else is broken.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        submit: Callable[[Reading], Any],
        *,
        active_alarms: Callable[[], list[dict[str, Any]]] = list,
        outbox: Outbox | None = None,
        templates: Templates | None = None,
        send_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        interval: float = WATCH_INTERVAL,
    ) -> None:
        self._supervisor = supervisor
        self._submit = submit
        self._active_alarms = active_alarms
        self._started = clock()
        self._outbox = outbox
        self._templates = templates
        self._send_timeout = send_timeout
        self._clock = clock
        self._interval = interval
        self._direct: dict[str, _DirectPage] = {}
        self._paged: set[str] = set()
        self._submit_failed = False

    async def run(self) -> None:
        while True:
            try:
                await self.report()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the watch must outlive what it watches
                log.error("component watch: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self._interval)

    async def report(self) -> None:
        now = self._clock()
        readings = component_readings(self._supervisor, now) + self._gone(now)
        # first: the direct page must not wait behind an engine that hangs
        await self._send_direct(now)
        try:
            async with asyncio.timeout(SUBMIT_TIMEOUT):
                for reading in readings:
                    await self._submit(reading)
        except Exception as exc:
            if not self._submit_failed:
                log.critical(
                    "component watch: the alarm engine refused a reading (%s: %s); "
                    "restart alarms go only to the log and status",
                    type(exc).__name__,
                    exc,
                )
            self._submit_failed = True
        else:
            self._submit_failed = False

    def _gone(self, now: float) -> list[Reading]:
        """Resolves restart alarms of components this config no longer runs (after a
        window, like any other: a reload must not resolve and page them again at once)."""
        if now - self._started < self._supervisor.alarm_window:
            return []
        running = {sensor_id(name) for name in self._supervisor.states}
        return [
            Reading(a["sensor"], str(Kind.COMPONENT), False, "", now, source="supervisor")
            for a in self._active_alarms()
            if a.get("kind") == Kind.COMPONENT
            and str(a.get("sensor")).startswith(SENSOR_PREFIX)
            and a["sensor"] not in running
        ]

    # -- the page around a broken alarm road ------------------------------------------------

    async def _send_direct(self, now: float) -> None:
        failing = {
            s.name: s
            for s in self._supervisor.states.values()
            if s.failing and s.name in ALARM_PATH
        }
        for name in list(self._paged):
            if name not in failing:
                self._paged.discard(name)
                self._direct.pop(name, None)
        if self._outbox is None or self._templates is None:
            return
        for name, state in failing.items():
            if name not in self._paged:
                self._paged.add(name)
                event = self._event(state, now)
                self._direct[name] = _DirectPage(event, list(self._outbox.route(event)))
        due = [p for p in self._direct.values() if p.waiting and p.next_try <= now]
        if due:
            await asyncio.gather(*(self._try(page, now) for page in due))

    def _event(self, state: TaskState, now: float) -> AlarmEvent:
        road = "alarm engine" if state.name == "alarms" else "alert sender"
        reason = (
            f"{failure_text(self._supervisor, state)} (sent directly: the {road} is "
            "failing, this page did not go through the outbox)"
        )
        return AlarmEvent(
            alarm_id=DIRECT_ID,
            event=str(EventType.FIRING),
            severity=str(Severity.CRITICAL),
            sensor_id=sensor_id(state.name),
            location=sensor_id(state.name),
            kind=str(Kind.COMPONENT),
            value=True,
            unit="",
            reason=reason,
            ts=now,
            cause=reasons.COMPONENT,
            params={**failure_params(self._supervisor, state), "direct": True},
        )

    async def _try(self, page: _DirectPage, now: float) -> None:
        assert self._templates is not None
        results = await asyncio.gather(
            *(deliver(c, self._templates, [page.event], self._send_timeout) for c in page.waiting)
        )
        left = []
        for channel, (ok, error) in zip(page.waiting, results, strict=True):
            if ok:
                page.done.append(channel.display)
                log.warning(
                    "component %s: failure paged directly to %s",
                    page.event.sensor_id,
                    channel.display,
                )
            else:
                left.append(channel)
                log.error(
                    "component %s: direct page to %s failed: %s",
                    page.event.sensor_id,
                    channel.display,
                    error,
                )
        page.waiting = left
        page.next_try = now + DIRECT_RETRY
