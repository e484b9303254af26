"""A group message names the room's alarm first, not sentinel's own health notice."""

from __future__ import annotations

import time
from pathlib import Path

from alerts.event import AlarmEvent
from sentinel.store import Store
from tests.alerts.helpers import enqueue, event, make_delivery, running, write_apprise
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until


def _db_notice() -> AlarmEvent:
    """What the daemon queues after moving a corrupt state database aside."""
    return AlarmEvent(
        alarm_id="DB",
        event="firing",
        severity="critical",
        sensor_id="sentinel:state-db",
        location="state database was corrupt, started fresh",
        kind="state_db",
        value=None,
        unit="",
        reason="moved aside",
        ts=time.time(),
    )


async def test_leak_leads_the_group_over_the_database_notice(
    store: Store, http_sink: HttpSink, tmp_path: Path
):
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/sms"), ["critical"])])
    outbox, sender = await make_delivery(store, yml)
    # both pending when the sender starts (a restart after a corrupt database): one message
    await enqueue(store, outbox, _db_notice(), event("EYDH", location="UPS floor"))
    async with running(sender):
        await http_sink.wait_delivered(1, "/sms")
        await until(lambda: sender.health()["pending"] == 0, 15, 'sender.health()["pending"] == 0')
    [got] = http_sink.delivered("/sms")
    text = got.message
    # the leak's own SMS comes first, in full: what, where, and its id
    assert text.startswith("[위험] UPS floor 누수 감지"), text
    assert text.index("#EYDH") < text.index("#DB")
