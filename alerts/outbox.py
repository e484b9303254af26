"""The transactional outbox: alarm events become durable per-channel rows in SQLite.

`Outbox.enqueue(db, event)` runs inside the caller's own `store.write()` transaction, so an
alarm transition and the messages it owes commit (or roll back) together. The `Sender`
(sender.py) then delivers the rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import aiosqlite

from alerts.channels import Channel
from alerts.event import AlarmEvent

log = logging.getLogger("sentinel.alerts")

DEFAULT_ROUTES: Mapping[str, Sequence[str]] = {
    "critical": ("critical",),
    "warning": ("warning",),
    "info": ("info",),
}


def encode_event(event: AlarmEvent) -> str:
    data = asdict(event)
    data["tags"] = list(event.tags)
    return json.dumps(data, ensure_ascii=False)


def decode_event(payload: str) -> AlarmEvent:
    data: dict[str, Any] = json.loads(payload)
    data["tags"] = tuple(data.get("tags") or ())
    return AlarmEvent(**data)


class Outbox:
    """Routes alarm events to channels and writes one outbox row per channel.

    `channels` are loaded once at start (alerts.channels.load_channels); `routes` maps a
    severity to the Apprise tags that receive it. An event's own `tags` (escalation) replace
    the severity route.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        routes: Mapping[str, Sequence[str]] = DEFAULT_ROUTES,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channels: tuple[Channel, ...] = tuple(channels)
        self.by_key: dict[str, Channel] = {c.key: c for c in self.channels}
        self.routes = {k: tuple(v) for k, v in routes.items()}
        self._clock = clock
        self.wake = asyncio.Event()
        self.unrouted = 0

    def route(self, event: AlarmEvent) -> list[Channel]:
        """The channels that receive this event."""
        tags: Iterable[str] = event.tags or self.routes.get(event.severity, ())
        wanted = set(tags)
        return [c for c in self.channels if c.matches(wanted)]

    async def enqueue(self, db: aiosqlite.Connection, event: AlarmEvent) -> int:
        """Adds the event's rows inside the caller's open transaction; returns the row count.

        The sender is woken at once: it reads the outbox inside its own write transaction,
        which the store serialises after the caller's, so it sees the rows only once they
        are committed (and never if the caller rolls back).
        """
        channels = self.route(event)
        if not channels:
            self.unrouted += 1
            log.warning(
                "alarm %s (%s, %s): no channel is tagged for it; nobody will be told",
                event.alarm_id, event.severity, event.event,
            )
            return 0
        await self._insert(db, event, channels)
        self.wake.set()
        return len(channels)

    def notify_committed(self) -> None:
        """Wakes the sender (the caller may call this after its commit; enqueue already does)."""
        self.wake.set()

    async def _insert(
        self, db: aiosqlite.Connection, event: AlarmEvent, channels: Sequence[Channel]
    ) -> None:
        payload = encode_event(event)
        now = self._clock()
        await db.executemany(
            "INSERT INTO outbox_message(channel, alarm_id, event, severity, payload, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (c.key, event.alarm_id, event.event, event.severity, payload, now)
                for c in channels
            ],
        )

    async def adopt_orphans(self, db: aiosqlite.Connection) -> int:
        """Re-routes pending rows whose channel left the config (inside a write transaction).

        A page must not be lost because someone edited the Apprise config while it was
        pending: each such row goes to the channels that match it now (once per event), and
        the old row is marked 'orphaned'. Returns how many rows were orphaned.
        """
        rows = await db.execute_fetchall(
            "SELECT id, channel, payload FROM outbox_message WHERE state = 'pending'"
        )
        orphans = [r for r in rows if r[1] not in self.by_key]
        if not orphans:
            return 0
        done: set[str] = set()
        for row in orphans:
            payload = str(row[2])
            if payload in done:
                continue
            done.add(payload)
            event = decode_event(payload)
            have = {
                str(r[0])
                for r in await db.execute_fetchall(
                    "SELECT channel FROM outbox_message WHERE payload = ?", (payload,)
                )
            }
            targets = [c for c in self.route(event) if c.key not in have]
            if targets:
                await self._insert(db, event, targets)
        await db.executemany(
            "UPDATE outbox_message SET state = 'orphaned' WHERE id = ?",
            [(r[0],) for r in orphans],
        )
        log.warning(
            "%d pending message(s) were for channels no longer in the Apprise config; "
            "re-routed to the channels configured now",
            len(orphans),
        )
        self.wake.set()
        return len(orphans)
