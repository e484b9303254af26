"""Building blocks for the alerts tests: Apprise configs, events, a running sender."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from alerts.channels import load_channels
from alerts.event import AlarmEvent
from alerts.outbox import Outbox
from alerts.sender import Sender
from alerts.templates import Templates
from sentinel import migrations
from sentinel.store import Store


def write_apprise(path: Path, entries: Sequence[tuple[str, Sequence[str]]]) -> Path:
    """An Apprise YAML config: one `url` with its tags per entry."""
    lines = ["urls:"]
    for url, tags in entries:
        if tags:
            lines += [f'  - "{url}":', f"    - tag: {', '.join(tags)}"]
        else:
            lines.append(f'  - "{url}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


_counter = 0


def event(
    alarm_id: str | None = None,
    *,
    kind: str = "water_leak",
    severity: str = "critical",
    event_type: str = "firing",
    value: float | bool | str | None = True,
    unit: str = "",
    location: str = "전산실 UPS 하단",
    tags: tuple[str, ...] = (),
    ts: float | None = None,
) -> AlarmEvent:
    global _counter
    _counter += 1
    return AlarmEvent(
        alarm_id=alarm_id or f"A{_counter:03X}",
        event=event_type,
        severity=severity,
        sensor_id="leak-ups",
        location=location,
        kind=kind,
        value=value,
        unit=unit,
        reason="test",
        ts=time.time() if ts is None else ts,
        tags=tags,
    )


async def make_delivery(
    store: Store,
    apprise_yml: Path,
    *,
    clock: Callable[[], float] = time.time,
    routes: dict[str, list[str]] | None = None,
    **sender_args: Any,
) -> tuple[Outbox, Sender]:
    await migrations.migrate(store)
    channels = load_channels(apprise_yml)
    outbox = Outbox(
        channels,
        routes or {"critical": ["critical"], "warning": ["warning"], "info": ["info"]},
        clock=clock,
    )
    args: dict[str, Any] = {"group_window": 0.0, "retry_initial": 0.05, "send_timeout": 5.0}
    args.update(sender_args)
    sender = Sender(outbox, store.write, Templates(site="본청"), clock=clock, **args)
    return outbox, sender


async def enqueue(store: Store, outbox: Outbox, *events: AlarmEvent) -> None:
    async with store.write() as db:
        for e in events:
            await outbox.enqueue(db, e)


@contextlib.asynccontextmanager
async def running(sender: Sender) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sender.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def rows(store: Store, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    async with store.write() as db:
        return [tuple(r) for r in await db.execute_fetchall(sql, params)]
