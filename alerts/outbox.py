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

from alerts import reasons
from alerts.channels import Channel
from alerts.event import AlarmEvent, EventType, Severity

log = logging.getLogger("sentinel.alerts")

# The page about rows set aside: sentinel's own health notice, like "#DB" for the database.
UNDELIVERABLE_ID = "OUTBOX"
UNDELIVERABLE_KIND = "outbox_undeliverable"
UNDELIVERABLE_SENSOR = "sentinel:outbox"
# rows a notice names one by one (its reason text is capped at 1000 characters too)
UNDELIVERABLE_LISTED = 5
ERROR_TEXT_MAX = 300

DEFAULT_ROUTES: Mapping[str, Sequence[str]] = {
    "critical": ("critical",),
    "warning": ("warning",),
    "info": ("info",),
}


# Routes that must reach somebody: check-config and run refuse a config where they do not.
REQUIRED_ROUTES = ("critical", "warning")


def unrouted(
    channels: Sequence[Channel], routes: Mapping[str, Sequence[str]]
) -> list[tuple[str, tuple[str, ...]]]:
    """Each required severity whose route matches no channel, with the route's tags."""
    missing = []
    for severity in REQUIRED_ROUTES:
        tags = tuple(routes.get(severity, ()))  # as Outbox.route: no entry, no channel
        if not any(c.matches(tags) for c in channels):
            missing.append((severity, tags))
    return missing


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
                event.alarm_id,
                event.severity,
                event.event,
            )
            return 0
        await self._insert(db, event, channels)
        self.wake.set()
        return len(channels)

    async def _insert(
        self, db: aiosqlite.Connection, event: AlarmEvent, channels: Sequence[Channel]
    ) -> None:
        payload = encode_event(event)
        now = self._clock()
        await db.executemany(
            "INSERT INTO outbox_message(channel, alarm_id, event, severity, payload, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(c.key, event.alarm_id, event.event, event.severity, payload, now) for c in channels],
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
            try:
                event = decode_event(payload)
            except Exception as exc:
                await self.set_aside(db, [(int(row[0]), describe(exc))])
                continue
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
            "UPDATE outbox_message SET state = 'orphaned' WHERE id = ? AND state = 'pending'",
            [(r[0],) for r in orphans],
        )
        log.warning(
            "%d pending message(s) were for channels no longer in the Apprise config; "
            "re-routed to the channels configured now",
            len(orphans),
        )
        self.wake.set()
        return len(orphans)

    async def set_aside(self, db: aiosqlite.Connection, rows: Sequence[tuple[int, str]]) -> None:
        """Marks rows that can never become a message (undecodable, unrenderable) 'dead'
        with their error, inside the caller's transaction, so they stop blocking their
        channel's lane; they stay in the table for forensics. Each is logged once (it is no
        longer pending, so nothing reads it again), and a notice is queued on the remaining
        path: critical if a set-aside row was a critical page, else warning."""
        if not rows:
            return
        marks = ",".join("?" * len(rows))
        found = await db.execute_fetchall(
            f"SELECT id, channel, alarm_id, event, severity FROM outbox_message "
            f"WHERE id IN ({marks})",
            [row_id for row_id, _ in rows],
        )
        info = {int(r[0]): (str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in found}
        await db.executemany(
            "UPDATE outbox_message SET state = 'dead', error = ? WHERE id = ?",
            [(error[:ERROR_TEXT_MAX], row_id) for row_id, error in rows],
        )
        described: list[str] = []
        items: list[dict[str, Any]] = []
        critical = False
        for row_id, error in rows:
            channel, alarm_id, what, severity = info.get(row_id, ("?", "?", "?", "?"))
            shown = self.by_key[channel].display if channel in self.by_key else channel
            log.error(
                "alerts: outbox message %d (alarm %s, %s %s) for %s cannot be made into a "
                "message and is set aside (state 'dead', kept in the database): %s",
                row_id,
                alarm_id,
                severity,
                what,
                shown,
                error,
            )
            critical = critical or severity == Severity.CRITICAL
            described.append(f"#{row_id} (alarm {alarm_id}, {severity} {what}): {error}")
            items.append(
                {
                    "row": row_id,
                    "alarm": alarm_id,
                    "severity": severity,
                    "event": what,
                    "error": error[:ERROR_TEXT_MAX],
                }
            )
        if all(info.get(row_id, ("", ""))[1] == UNDELIVERABLE_ID for row_id, _ in rows):
            return  # the notice itself cannot be rendered: another would fail the same way
        notice = AlarmEvent(
            alarm_id=UNDELIVERABLE_ID,
            event=str(EventType.FIRING),
            severity=str(Severity.CRITICAL if critical else Severity.WARNING),
            sensor_id=UNDELIVERABLE_SENSOR,
            location="alert outbox",
            kind=UNDELIVERABLE_KIND,
            value=len(rows),
            unit="",
            reason=(
                f"{len(rows)} outbox message(s) cannot be sent and were set aside; a page "
                f"may be missing, check the room and `sentinel status`: " + "; ".join(described)
            )[:1000],
            ts=self._clock(),
            cause=reasons.UNDELIVERABLE,
            params={"count": len(rows), "items": items[:UNDELIVERABLE_LISTED]},
        )
        channels = self.route(notice)
        if channels:
            await self._insert(db, notice, channels)
        self.wake.set()


def describe(exc: BaseException) -> str:
    """One line for an exception: its type and message."""
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:ERROR_TEXT_MAX]
