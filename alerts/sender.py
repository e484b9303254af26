"""The sender: delivers outbox rows through Apprise, one independent lane per channel.

Each channel has at most one send in flight; channels never wait for each other. A send
that fails or times out is retried with exponential backoff and jitter, forever: a page is
never dropped. A row stays pending until its channel confirmed it, so after a crash every
unconfirmed row is sent again (at-least-once; the alarm id in every message makes a
duplicate recognisable).

Grouping: a channel's first message goes out at once; what arrives for it during the next
`group_window` seconds is merged into one message sent when the window ends.

Confirmation: a deployment with a keeper (sentinel/room_heartbeat.py) gives the sender a
`confirm` hook, awaited just before a message is rendered; it may hold a critical leak, smoke
or fire page for up to a second or two and returns the events with the keeper's "data safe
to" filled in. The rows are already durable and stay pending during the wait, and the lane
stays busy (one send in flight per channel), so the wait can neither lose nor duplicate a
row: it only delays it. Without a keeper the hook is None and nothing is awaited.

Fallback: channels tagged with one of `fallback_tags` (a modem, alerts/modem/) get nothing
through the routes unless a route names their tag. When every channel an event is pending
on has been failing for `fallback_after` seconds and none has delivered it, the event gets a
row for each fallback channel it has none for, marked `fallback = 1`, in the same write
transaction that read it: the new row is itself the marker, so a crash before the commit
loses nothing (the check runs again) and one after it cannot add a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite
import apprise

from alerts.channels import Channel, guard_logs
from alerts.event import AlarmEvent, EventType, Severity, current_events
from alerts.outbox import Outbox, decode_event, describe
from alerts.templates import Templates
from common.db import WriteTx
from common.retry import Backoff

log = logging.getLogger("sentinel.alerts")

# Each channel's first pending rows (one more than a message takes, to see a backlog).
_DUE_ROWS = (
    "SELECT channel, id, payload, created, n FROM ("
    " SELECT channel, id, payload, created,"
    " ROW_NUMBER() OVER (PARTITION BY channel ORDER BY id) AS n"
    " FROM outbox_message WHERE state = 'pending')"
    " WHERE n <= ? ORDER BY channel, id"
)

DEFAULT_SEND_TIMEOUT = 10.0
DEFAULT_GROUP_WINDOW = 10.0
RETRY_INITIAL = 2.0
RETRY_MAX = 300.0
ALL_FAILED_AFTER = 300.0
# Fallback wake-up: enqueue wakes us directly, this only bounds a missed wake-up.
POLL_INTERVAL = 0.2
# A merged message lists at most this many events; the rest follow in the next message.
BATCH_LIMIT = 20
# Extra time granted to Apprise past its own deadline before we stop waiting.
TIMEOUT_GRACE = 1.0
# A failing channel is logged on its first failure, then at most once per this many seconds.
FAILURE_LOG_INTERVAL = 60.0
ERROR_TEXT_MAX = 300
_PROBLEM_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})
# Events in, the same events (some with `safe_as_of`) out; see the module docstring.
ConfirmHook = Callable[[Sequence[AlarmEvent]], Awaitable[list[AlarmEvent]]]
# However the hook behaves, a page is never held longer than this (the hook's own bound is
# the configured confirm_wait, at most 5 s).
CONFIRM_LIMIT = 6.0
DEFAULT_FALLBACK_AFTER = 120.0


@dataclass(slots=True)
class _Lane:
    """What the sender remembers about one channel between sends."""

    window_until: float = 0.0
    retry_at: float = 0.0
    failures: int = 0
    failing_since: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    last_logged: float = float("-inf")
    suppressed: int = 0


class Sender:
    """Component "alerts": claims due outbox rows and sends them through Apprise."""

    name = "alerts"

    def __init__(
        self,
        outbox: Outbox,
        write: WriteTx,
        templates: Templates,
        *,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        group_window: float = DEFAULT_GROUP_WINDOW,
        retry_initial: float = RETRY_INITIAL,
        retry_max: float = RETRY_MAX,
        all_failed_after: float = ALL_FAILED_AFTER,
        poll_interval: float = POLL_INTERVAL,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        confirm: ConfirmHook | None = None,
        fallback_tags: Sequence[str] = (),
        fallback_after: float = DEFAULT_FALLBACK_AFTER,
    ) -> None:
        self.outbox = outbox
        self.confirm = confirm
        self._write = write
        self.templates = templates
        self.send_timeout = send_timeout
        self.group_window = group_window
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.all_failed_after = all_failed_after
        self.poll_interval = poll_interval
        self._clock = clock
        self._rng = rng
        self._lanes: dict[str, _Lane] = {c.key: _Lane() for c in outbox.channels}
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._pending = 0
        self._oldest: float | None = None
        self._sent = 0
        self._failed_sends = 0
        self._undeliverable = 0
        self._all_failing_logged = False
        self._outcomes: list[tuple[Channel, list[int], bool, str, float]] = []
        self._record_lock = asyncio.Lock()
        tags = set(fallback_tags)
        self.fallback = [c for c in outbox.channels if tags and not c.tags.isdisjoint(tags)]
        self.fallback_after = fallback_after
        # payloads already handed to the fallback (or found delivered): not looked up again
        self._fallen_back: set[str] = set()
        self._fallbacks = 0
        self._last_fallback: float | None = None

    # -- Component -------------------------------------------------------------------------

    async def run(self) -> None:
        guard_logs()
        try:
            await self._start()
            while True:
                self.outbox.wake.clear()
                delay = await self._dispatch()
                timeout = self.poll_interval if delay is None else min(self.poll_interval, delay)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives as the event fires, and the component would never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(timeout, 0.0)):
                        await self.outbox.wake.wait()
        finally:
            tasks = list(self._inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._inflight.clear()

    def health(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "channels": len(self.outbox.channels),
            "pending": self._pending,
            "oldest_pending_age": None if self._oldest is None else max(0.0, now - self._oldest),
            "in_flight": len(self._inflight),
            "sent": self._sent,
            "failed_sends": self._failed_sends,
            "set_aside": self._undeliverable,
            "failing_channels": sum(1 for lane in self._lanes.values() if lane.failures),
            "all_channels_failing_since": self.all_channels_failing_since(),
            "fallbacks": self._fallbacks,
            "last_fallback": self._last_fallback,
        }

    # -- state -----------------------------------------------------------------------------

    def all_channels_failing_since(self) -> float | None:
        """When the last channel that had been working began failing, if all now fail.

        Only channels that were tried count: a channel nobody routed anything to is unknown,
        not failing.
        """
        tried = [lane for lane in self._lanes.values() if lane.last_success or lane.failures]
        if not tried or any(lane.failures == 0 for lane in tried):
            return None
        return max(lane.failing_since or 0.0 for lane in tried)

    async def _start(self) -> None:
        """Records the configured channels for status; picks up where the last run stopped."""
        async with self._write() as db:
            await db.execute("UPDATE alert_channel SET configured = 0")
            for c in self.outbox.channels:
                await db.execute(
                    "INSERT INTO alert_channel(key, display, service, tags, form, configured) "
                    "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT(key) DO UPDATE SET "
                    "display = excluded.display, service = excluded.service, "
                    "tags = excluded.tags, form = excluded.form, configured = 1",
                    (c.key, c.display, c.service, json.dumps(sorted(c.tags)), c.form),
                )
            rows = await db.execute_fetchall(
                "SELECT key, consecutive_failures, failing_since, last_success, last_failure "
                "FROM alert_channel WHERE configured = 1"
            )
            await self.outbox.adopt_orphans(db)
        for key, failures, since, success, failure in rows:
            lane = self._lanes.setdefault(str(key), _Lane())
            lane.failures = int(failures)
            lane.failing_since = since
            lane.last_success = success
            lane.last_failure = failure

    # -- dispatch --------------------------------------------------------------------------

    async def _dispatch(self) -> float | None:
        """Starts a send for every channel that is due; returns seconds until the next one."""
        # Reading inside a write transaction serialises us after any open transaction on the
        # shared connection, so we never see rows an enqueuer might still roll back. The
        # rows themselves are read here too, once for all lanes, instead of once per lane.
        if self._outcomes:
            # outcomes a failed write could not record: record them before reading, so a
            # message already delivered is not sent again (kept for later if this fails too)
            with contextlib.suppress(Exception):
                await self._flush_outcomes()
        unrecorded = {i for _c, ids, ok, _e, _t in self._outcomes if ok for i in ids}
        async with self._write() as db:
            rows = await db.execute_fetchall(_DUE_ROWS, (BATCH_LIMIT + 1,))
            fallback_due: float | None = None
            if self.fallback:
                added, fallback_due = await self._fall_back(db, rows)
                if added:
                    rows = await db.execute_fetchall(_DUE_ROWS, (BATCH_LIMIT + 1,))
            async with db.execute(
                "SELECT COUNT(*), MIN(created) FROM outbox_message WHERE state = 'pending'"
            ) as cur:
                count = await cur.fetchone()
        now = self._clock()
        self._pending = int(count[0]) if count else 0
        self._oldest = float(count[1]) if count and count[1] is not None else None
        self._check_all_failing(now)
        due: dict[str, list[tuple[int, str]]] = {}
        for key, row_id, payload, _created, _n in rows:
            if int(row_id) in unrecorded:
                continue
            due.setdefault(str(key), []).append((int(row_id), str(payload)))
        # wake when the next event's fallback is due, not up to a poll interval later
        soonest = None if fallback_due is None else max(0.0, fallback_due - now)
        for key, channel_rows in due.items():
            channel = self.outbox.by_key.get(key)
            if channel is None or channel.key in self._inflight:
                continue
            lane = self._lanes[channel.key]
            ready = max(lane.window_until, lane.retry_at)
            if now >= ready:
                self._inflight[channel.key] = asyncio.create_task(
                    self._send(channel, channel_rows), name=f"alerts:{channel.key}"
                )
            else:
                soonest = ready - now if soonest is None else min(soonest, ready - now)
        return soonest

    async def _fall_back(
        self, db: aiosqlite.Connection, rows: Iterable[Any]
    ) -> tuple[int, float | None]:
        """Adds fallback rows for events stuck on failing channels (see the module
        docstring), inside the dispatcher's write transaction; returns how many, and when
        the next event stuck on failing channels will be due (None: none waits)."""
        now = self._clock()
        fallback_keys = {c.key for c in self.fallback}
        stuck: dict[str, set[str]] = {}
        rows = list(rows)
        # forget what no longer waits (a payload seen again is looked up again, and its
        # fallback row found): the set stays as small as the backlog
        self._fallen_back &= {str(r[2]) for r in rows}
        for key, _row_id, payload, _created, _n in rows:
            if str(payload) not in self._fallen_back and str(key) not in fallback_keys:
                stuck.setdefault(str(payload), set()).add(str(key))
        added = 0
        next_due: float | None = None
        for payload, keys in stuck.items():
            lanes = [self._lanes.get(k) for k in keys]
            if not all(lane and lane.failing_since is not None for lane in lanes):
                continue
            due = max(lane.failing_since or 0.0 for lane in lanes if lane) + self.fallback_after
            if now < due:
                next_due = due if next_due is None else min(next_due, due)
                continue
            have = await db.execute_fetchall(
                "SELECT channel, state FROM outbox_message WHERE payload = ?", (payload,)
            )
            self._fallen_back.add(payload)
            if any(str(state) == "sent" for _key, state in have):
                continue  # somebody was told already
            done = {str(key) for key, _state in have}
            targets = [c for c in self.fallback if c.key not in done]
            if not targets:
                continue
            event = decode_event(payload)
            await db.executemany(
                "INSERT INTO outbox_message(channel, alarm_id, event, severity, payload, "
                "created, fallback) VALUES (?, ?, ?, ?, ?, ?, 1)",
                [
                    (c.key, event.alarm_id, event.event, event.severity, payload, now)
                    for c in targets
                ],
            )
            added += len(targets)
            self._fallbacks += len(targets)
            self._last_fallback = now
            failing = min(lane.failing_since or now for lane in lanes if lane)
            log.warning(
                "alerts: alarm %s (%s %s): every channel for it has failed since %s; sending "
                "it through the fallback channel(s) %s",
                event.alarm_id,
                event.severity,
                event.event,
                time.strftime("%H:%M:%S", time.localtime(failing)),
                ", ".join(c.display for c in targets),
            )
        return added, next_due

    async def _send(self, channel: Channel, rows: list[tuple[int, str]]) -> None:
        try:
            await self._send_once(channel, rows)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # rows stay pending and are retried; only the message text is safe to log
            log.error(
                "alerts: sending to %s failed unexpectedly: %s",
                channel.display,
                channel.scrub(f"{type(exc).__name__}: {exc}"),
            )
            lane = self._lanes[channel.key]
            lane.retry_at = self._clock() + self._backoff(max(lane.failures, 1))
        finally:
            self._inflight.pop(channel.key, None)
            self.outbox.wake.set()

    async def _send_once(self, channel: Channel, rows: list[tuple[int, str]]) -> None:
        """Sends up to BATCH_LIMIT of the channel's pending rows (dispatch read up to one
        more, to know whether a backlog follows) as one message."""
        if not rows:
            return
        more = len(rows) > BATCH_LIMIT
        rows = rows[:BATCH_LIMIT]
        ids, events = await self._prepare(channel, rows)
        if not events:
            return  # all set aside; the wake-up set by _send brings the rows behind them
        if self.confirm is not None:
            events = await self._confirmed(events)
        ok, error = await self.deliver(channel, events)
        now = self._clock()
        await self._record(channel, ids, ok, error, now)
        lane = self._lanes[channel.key]
        if ok:
            # a backlog beyond one message goes on at once; otherwise the window opens
            lane.window_until = now if more else now + self.group_window
            lane.retry_at = 0.0
        else:
            lane.retry_at = now + self._backoff(lane.failures)

    async def _prepare(
        self, channel: Channel, rows: list[tuple[int, str]]
    ) -> tuple[list[int], list[AlarmEvent]]:
        """Decodes and renders each row on its own; a row that fails (a damaged database, a
        row another version wrote, a value no template can show) is set aside at once, so it
        never blocks the rows behind it. Returns the ids and events that can be sent."""
        ids: list[int] = []
        events: list[AlarmEvent] = []
        bad: list[tuple[int, str]] = []
        for row_id, payload in rows:
            try:
                event = decode_event(payload)
                self.templates.render(event, channel.form)
                notify_type([event])
            except Exception as exc:
                bad.append((row_id, channel.scrub(describe(exc))))
                continue
            ids.append(row_id)
            events.append(event)
        if bad:
            async with self._write() as db:
                await self.outbox.set_aside(db, bad)
            self._undeliverable += len(bad)
        return ids, events

    async def _confirmed(self, events: list[AlarmEvent]) -> list[AlarmEvent]:
        """The events as the confirm hook returns them; unchanged when it fails or overruns
        (a page without "data safe to" beats a page held or lost)."""
        assert self.confirm is not None
        try:
            async with asyncio.timeout(CONFIRM_LIMIT):
                confirmed = await self.confirm(events)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "alerts: the keeper confirmation failed, paging without it: %s",
                f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_MAX],
            )
            return events
        return confirmed if len(confirmed) == len(events) else events

    async def deliver(self, channel: Channel, events: Sequence[AlarmEvent]) -> tuple[bool, str]:
        """One message for these events to one channel; (ok, error text without secrets)."""
        return await deliver(channel, self.templates, events, self.send_timeout)

    async def _record(
        self, channel: Channel, ids: list[int], ok: bool, error: str, now: float
    ) -> None:
        """Persists one send's outcome. Outcomes of lanes finishing together share one
        transaction (group commit): with ten channels, ten fsyncs in a row would otherwise
        queue behind one another and in front of the next alarm's transaction."""
        self._outcomes.append((channel, ids, ok, error, now))
        await self._flush_outcomes()
        self._note_outcome(channel, len(ids), ok, error, now)

    async def _flush_outcomes(self) -> None:
        async with self._record_lock:
            batch, self._outcomes = self._outcomes, []
            if batch:
                try:
                    async with self._write() as db:
                        for item in batch:
                            await self._store_outcome(db, *item)
                except BaseException:
                    self._outcomes[:0] = batch  # the next holder writes them
                    raise

    @staticmethod
    async def _store_outcome(
        db: aiosqlite.Connection,
        channel: Channel,
        ids: list[int],
        ok: bool,
        error: str,
        now: float,
    ) -> None:
        marks = ",".join("?" * len(ids))
        if ok:
            await db.execute(
                f"UPDATE outbox_message SET state = 'sent', sent = ?, attempts = attempts + 1 "
                f"WHERE id IN ({marks}) AND state = 'pending'",
                (now, *ids),
            )
            await db.execute(
                "UPDATE alert_channel SET last_success = ?, consecutive_failures = 0, "
                "failing_since = NULL, sent_total = sent_total + ? WHERE key = ?",
                (now, len(ids), channel.key),
            )
        else:
            await db.execute(
                f"UPDATE outbox_message SET attempts = attempts + 1 WHERE id IN ({marks})",
                ids,
            )
            await db.execute(
                "UPDATE alert_channel SET last_failure = ?, last_error = ?, "
                "consecutive_failures = consecutive_failures + 1, "
                "failed_total = failed_total + 1, "
                "failing_since = COALESCE(failing_since, ?) WHERE key = ?",
                (now, error, now, channel.key),
            )

    def _note_outcome(self, channel: Channel, count: int, ok: bool, error: str, now: float) -> None:
        lane = self._lanes[channel.key]
        if ok:
            self._sent += count
            if lane.failures:
                log.info(
                    "alerts: %s works again after %d failed attempt(s)",
                    channel.display,
                    lane.failures,
                )
            lane.failures = 0
            lane.failing_since = None
            lane.last_success = now
            lane.suppressed = 0
            self._all_failing_logged = False
        else:
            self._failed_sends += 1
            lane.failures += 1
            lane.last_failure = now
            if lane.failing_since is None:
                lane.failing_since = now
            if now - lane.last_logged >= FAILURE_LOG_INTERVAL:
                extra = f" ({lane.suppressed} more not logged)" if lane.suppressed else ""
                log.warning(
                    "alerts: %s failed (%d in a row, %d message(s) waiting): %s%s",
                    channel.display,
                    lane.failures,
                    count,
                    error,
                    extra,
                )
                lane.last_logged = now
                lane.suppressed = 0
            else:
                lane.suppressed += 1
        self._check_all_failing(now)

    def _check_all_failing(self, now: float) -> None:
        since = self.all_channels_failing_since()
        if since is None or self._all_failing_logged:
            return
        if now - since >= self.all_failed_after:
            self._all_failing_logged = True
            log.critical(
                "alerts: every alert channel has been failing since %s: nobody is being "
                "paged (%d message(s) waiting)",
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)),
                self._pending,
            )

    def _backoff(self, failures: int) -> float:
        """Exponential in the failure count, capped, with jitter so channels do not align."""
        return Backoff(self.retry_initial, self.retry_max).delay(failures, self._rng())


async def deliver(
    channel: Channel, templates: Templates, events: Sequence[AlarmEvent], limit: float
) -> tuple[bool, str]:
    """Renders the events as one message and sends it; (ok, error text without secrets)."""
    message = templates.render_group(events, channel.form)
    try:
        async with asyncio.timeout(limit + TIMEOUT_GRACE):
            result = await channel.apprise.async_notify(
                body=message.body,
                title=message.title,
                notify_type=notify_type(events),
                timeout=limit,
            )
    except TimeoutError:
        return False, f"no answer within {limit:g}s"
    except Exception as exc:
        return False, channel.scrub(f"{type(exc).__name__}: {exc}")[:ERROR_TEXT_MAX]
    return outcome(channel, result)


def notify_type(events: Sequence[AlarmEvent]) -> apprise.NotifyType:
    """Apprise's message type: failure for a critical alarm, success when all cleared (by
    each alarm's latest event: one that fired and cleared meanwhile counts as cleared)."""
    active = [
        e
        for e in current_events(events)
        if e.event not in (EventType.RESOLVED, EventType.ACKNOWLEDGED)
    ]
    if not active:
        return apprise.NotifyType.SUCCESS
    if any(e.severity == Severity.CRITICAL for e in active):
        return apprise.NotifyType.FAILURE
    if any(e.severity == Severity.WARNING for e in active):
        return apprise.NotifyType.WARNING
    return apprise.NotifyType.INFO


def outcome(channel: Channel, result: apprise.AppriseResult) -> tuple[bool, str]:
    """Reads the per-service results: the overall status alone can hide a failure."""
    services = list(result)
    if result.status == apprise.AppriseResultStatus.SUCCESS and services and all(services):
        return True, ""
    reasons: list[str] = []
    for service in services:
        if service:
            continue
        warnings = [e.message for e in service.logs() if str(e.level) in _PROBLEM_LEVELS]
        detail = warnings[-1] if warnings else ""
        reasons.append(f"{service.status.name}" + (f": {detail}" if detail else ""))
    if not reasons:
        reasons.append(result.status.name)
    return False, channel.scrub("; ".join(reasons))[:ERROR_TEXT_MAX]
