"""The alert sender's confirm hook for the keeper (issue 11): a critical leak, smoke or fire
page (or any UPS power page, issue 15) makes every keeper room ship an urgent heartbeat at
once and poll its receipt until the keeper answers it or `confirm_wait` passes; the page
then carries the keeper's `safe_as_of`. Without an answer it carries the newest older
receipt's, marked as older, or nothing when there was never a receipt
(sentinel/room_heartbeat.py ships and reads them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from alerts.event import AlarmEvent, EventType, Severity
from backup.replicator import Replicator
from sentinel.room_heartbeat import RoomHeartbeat, clock_text

log = logging.getLogger("sentinel.keeper")

# The alarm kinds whose critical page asks the keeper for a confirmation first: the
# disasters that may take the room down with the page. A combined rule is named by its
# sensor id ("fire"; any name starting with "fire").
DISASTER_KINDS = frozenset({"water_leak", "smoke", "fire"})
# A UPS on battery, low, short of runtime or feeding nothing (issue 15): at any severity,
# since the room may go dark before a critical page would be due; the last page must say
# how fresh the off-site copy is.
POWER_KINDS = frozenset({"ups_on_battery", "ups_battery_low", "ups_runtime", "ups_output_off"})
# Confirmations (one per alarm firing, shared by every channel's lane) are forgotten after
# this long: a retried send re-renders with the first answer instead of waiting again.
CONFIRM_FORGET = 600.0


def needs_confirmation(event: AlarmEvent) -> bool:
    """A critical leak, smoke or fire alarm firing in the room (not sentinel's own health),
    or a power alarm of any severity."""
    if event.event != EventType.FIRING:
        return False
    if event.kind in POWER_KINDS:
        return True
    if event.severity != Severity.CRITICAL:
        return False
    if event.kind in DISASTER_KINDS:
        return True
    return event.kind == "combined" and event.sensor_id.lower().startswith("fire")


class KeeperConfirm:
    """The sender's confirm hook over every keeper room (see module doc). One confirmation
    per alarm firing, shared by all channels' lanes (each awaits it; none starts another)."""

    def __init__(
        self, rooms: Sequence[RoomHeartbeat], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.rooms = list(rooms)
        self._clock = clock
        self._pending: dict[
            tuple[str, float], tuple[float, asyncio.Task[tuple[float | None, bool]]]
        ] = {}

    @property
    def wait(self) -> float:
        return max((r.keeper.confirm_wait for r in self.rooms), default=0.0)

    async def __call__(self, events: Sequence[AlarmEvent]) -> list[AlarmEvent]:
        if not any(needs_confirmation(e) for e in events):
            return list(events)
        self._forget()
        # every confirmation asked for at once (a leak and a smoke alarm in one message
        # wait together, not one after the other)
        waits = {}
        for event in events:
            if not needs_confirmation(event):
                continue
            key = (event.alarm_id, event.ts)
            if key not in self._pending:
                task = asyncio.create_task(self._confirm(event), name=f"keeper:{event.alarm_id}")
                self._pending[key] = (time.monotonic(), task)
            waits[key] = self._pending[key][1]
        # shielded: a lane cancelled at shutdown must not cancel the others' answer
        answers = dict(
            zip(waits, await asyncio.shield(asyncio.gather(*waits.values())), strict=True)
        )
        out = []
        for event in events:
            answer = answers.get((event.alarm_id, event.ts))
            if answer is None or answer[0] is None:
                out.append(event)
                continue
            safe, answered = answer
            out.append(dataclasses.replace(event, safe_as_of=safe, safe_unconfirmed=not answered))
        return out

    async def _confirm(self, event: AlarmEvent) -> tuple[float | None, bool]:
        urgent = self._clock()
        began = time.monotonic()
        results = await asyncio.gather(*(self._one(room, urgent) for room in self.rooms))
        safe_values = [s for s, _ in results]
        answered = all(a for _, a in results)
        # the page speaks for every replication: all of them are safe up to the oldest
        safe = (
            None
            if not safe_values or None in safe_values
            else min(s for s in safe_values if s is not None)
        )
        waited = round(time.monotonic() - began, 3)
        for room, (room_safe, room_answered) in zip(self.rooms, results, strict=True):
            room.last_confirm = {
                "alarm": event.alarm_id,
                "urgent": urgent,
                "answered": room_answered,
                "safe_as_of": room_safe,
                "waited": waited,
            }
        if answered:
            log.info(
                "alarm %s: keeper confirmed data safe to %s (%.2fs)",
                event.alarm_id,
                clock_text(safe),
                waited,
            )
        else:
            log.warning(
                "alarm %s: the keeper did not confirm within %.1fs; the page goes out with %s",
                event.alarm_id,
                self.wait,
                "the newest older receipt" if safe is not None else 'no "data safe to"',
            )
        return safe, answered

    async def _one(self, room: RoomHeartbeat, urgent: float) -> tuple[float | None, bool]:
        try:
            async with asyncio.timeout(room.keeper.confirm_wait):
                return await room.confirm(urgent)
        except TimeoutError:
            return room.newest_safe(), False
        except Exception as exc:  # a page must go out whatever the keeper path does
            log.warning("keeper %s: confirmation failed: %s", room.room, exc)
            return room.newest_safe(), False

    def _forget(self) -> None:
        now = time.monotonic()
        for key, (started, task) in list(self._pending.items()):
            if task.done() and now - started > CONFIRM_FORGET:
                del self._pending[key]

    async def close(self) -> None:
        tasks = [task for _, task in self._pending.values() if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ReplicaFreshness:
    """The sender's confirm hook when no replication has a keeper: a page that would ask one
    (see `needs_confirmation`) says instead up to when the room's own replications had
    shipped every change they saw, so the last page before the UPS dies still says how fresh
    the copy is (issue 15). No receipt stands behind it: it is said only while every
    replication runs caught up with no failure (then "now"), and worded apart from a
    keeper's ("자료 14:02:10까지 복제", not "안전"). Nothing is waited for."""

    def __init__(
        self, replicators: Sequence[Replicator], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.replicators = list(replicators)
        self._clock = clock

    def synced_through(self) -> float | None:
        """Now, when every replication has shipped all it saw; None when any may not have
        (behind, failing, not running, never synced: a claim the page must not make)."""
        for rep in self.replicators:
            health = rep.replication_health()
            if (
                health.phase != "running"
                or health.never_synced
                or health.consecutive_failures
                or not rep.caught_up
            ):
                return None
        return self._clock() if self.replicators else None

    async def __call__(self, events: Sequence[AlarmEvent]) -> list[AlarmEvent]:
        if not any(needs_confirmation(e) for e in events):
            return list(events)
        through = self.synced_through()
        if through is None:
            return list(events)
        return [
            dataclasses.replace(e, safe_as_of=through, safe_replicated=True)
            if needs_confirmation(e)
            else e
            for e in events
        ]
