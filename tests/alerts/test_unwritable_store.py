"""Delivery while the state database cannot be written: the store runs from memory, and a
message that went out but whose outcome could not be recorded is not sent again."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sentinel.store import Store
from tests.alerts.helpers import enqueue, event, make_delivery, rows, running, write_apprise
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until
from tests.fixtures.tmpfs import fill, mounted_tmpfs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (needs root)")


async def test_delivered_message_whose_record_failed_is_not_sent_again(
    http_sink: HttpSink, tmp_path: Path
) -> None:
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/sms"), ["critical"])])
    with mounted_tmpfs(tmp_path / "state") as state:
        store = await Store.open(state, resilient=True)
        try:
            outbox, sender = await make_delivery(store, yml, retry_initial=0.05)
            http_sink.stall("/sms", 1.0)  # the disk fills while the message is on its way
            async with running(sender):
                await enqueue(store, outbox, event("C001"))
                await until(lambda: http_sink.requests("/sms"), 15, 'http_sink.requests("/sms")')
                fill(state)
                await http_sink.wait_delivered(1, "/sms")
                await until(
                    lambda: not store.durable, 15, "not store.durable"
                )  # recording it failed: now in memory

                async def recorded() -> bool:
                    return await rows(store, "SELECT state FROM outbox_message") == [("sent",)]

                for _ in range(200):
                    if await recorded():
                        break
                    await asyncio.sleep(0.05)
                assert await recorded()
                await asyncio.sleep(0.5)  # a wrong second send would be on its way by now
            assert len(http_sink.requests("/sms")) == 1
        finally:
            await store.close()
