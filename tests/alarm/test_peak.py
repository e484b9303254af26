"""A resolved alarm names the worst it got and how long it lasted, across a restart and
across the upgrade that added the peak to the state database."""

from __future__ import annotations

import aiosqlite

from alerts.event import AlarmEvent
from alerts.templates import Templates
from sentinel import migrations
from sentinel.alarm.engine import Engine
from sentinel.alarm.schema import MIGRATIONS, OWNER
from sentinel.store import Store
from tests.alarm.helpers import SENSORS, config, reading
from tests.fixtures.core import FakeClock

TEMP = [{**SENSORS[1], "max_age": "1d"}]  # built-in rule: warn 30, crit 35, hysteresis 1


class Recorder:
    """An enqueue that keeps the events themselves, committed or not."""

    def __init__(self) -> None:
        self.events: list[AlarmEvent] = []

    async def __call__(self, db: aiosqlite.Connection, event: AlarmEvent) -> None:
        self.events.append(event)


async def test_resolved_names_the_peak_and_duration_across_a_restart(
    store: Store, clock: FakeClock
) -> None:
    sent = Recorder()
    await migrations.migrate(store)
    first = Engine(store, config(TEMP), enqueue=sent, clock=clock)
    await first.start()
    fired_at = clock.now
    await first.submit(reading("temp-1", "temperature", 36.2, unit="°C"))
    [fired] = sent.events
    assert (fired.cause, fired.params["limit"]) == ("high", 35.0)
    clock.advance(300)
    await first.submit(reading("temp-1", "temperature", 32.0, unit="°C"))  # eased to warning
    assert first.active_alarms()[0]["severity"] == "warning"

    clock.advance(60)
    second = Engine(store, config(TEMP), enqueue=sent, clock=clock)
    await second.start()
    clock.advance(390)
    await second.submit(reading("temp-1", "temperature", 25.0, unit="°C"))
    resolved = sent.events[-1]
    assert (resolved.event, resolved.severity, resolved.peak) == ("resolved", "warning", "critical")
    assert resolved.since == fired_at and resolved.cause == "cleared"

    message = Templates(site="본청").render(resolved, "long")
    assert message.title == "[본청] 위험 온도 경보 해제", message.title
    assert "지속 시간: 12분 30초" in message.body and "사유: 정상 복귀" in message.body
    sms = Templates(language="en").render(resolved, "sms").body
    assert sms.startswith("[OK] rack A top CRIT temperature alarm back to normal") and (
        "lasted 12 min 30 s" in sms
    ), sms


async def test_an_alarm_open_before_the_upgrade_resolves_under_its_own_severity(
    store: Store, clock: FakeClock
) -> None:
    """A state database from before migration 3 has no peak: the open alarm's severity is
    what its resolution names, and the reason code is simply missing (English text kept)."""
    await store.migrate(OWNER, MIGRATIONS[:2])
    async with store.write() as db:
        await db.execute(
            "INSERT INTO alarm_alarms(id, n, subject, condition, sensor_id, location, kind, "
            "unit, state, severity, value, reason, opened, fired, last_notified, updated) "
            "VALUES ('OLD1', 1, 'temp-1', 'temperature', 'temp-1', 'rack A top', "
            "'temperature', '°C', 'firing', 'critical', '36.0', '36°C (limit 35°C)', ?, ?, ?, ?)",
            (clock.now, clock.now, clock.now, clock.now),
        )
        await db.execute("UPDATE alarm_seq SET n = 1")
    clock.advance(90)
    sent = Recorder()
    await migrations.migrate(store)  # the upgraded daemon migrates before the engine starts
    engine = Engine(store, config(TEMP), enqueue=sent, clock=clock)
    await engine.start()
    await engine.submit(reading("temp-1", "temperature", 25.0, unit="°C"))
    [resolved] = sent.events
    assert (resolved.alarm_id, resolved.peak, resolved.since) == (
        "OLD1",
        "critical",
        clock.now - 90,
    )
    body = Templates().render(resolved, "sms").body
    assert "온도 위험경보 정상 복귀" in body and "지속 1분 30초" in body, body
