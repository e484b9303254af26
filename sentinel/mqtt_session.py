"""Whether the broker should still hold each MQTT source's session when sentinel starts.

A restarted sentinel connects with the client id it used before, and the broker should hand
back that persistent session with what it queued meanwhile. Only the previous run knew it
had one: its last heartbeat row keeps each source's health, and `session_expected` there
(or a connect under the same client id and broker) says so. With no such row (a fresh state
directory) the first connect cannot tell a lost session from a first one, and judges none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import aiosqlite

log = logging.getLogger("sentinel.mqtt_session")


async def expect_sessions(db: aiosqlite.Connection, sources: Iterable[Any]) -> None:
    """Sets `expect_session` on each MQTT source the previous heartbeat saw connected, and
    `session_alarm` where its lost-session alarm may still be on (to be resolved)."""
    try:
        async with db.execute("SELECT components FROM heartbeat WHERE id = 1") as cur:
            row = await cur.fetchone()
        before: dict[str, Any] = json.loads(row[0]) if row else {}
    except (aiosqlite.Error, ValueError, TypeError) as exc:
        log.warning("cannot read the last heartbeat, no MQTT session expected: %s", exc)
        return
    for source in sources:
        if not hasattr(source, "expect_session"):
            continue
        seen = before.get(f"source:{source.name}")
        if not isinstance(seen, dict):
            continue
        # its alarm is on the pseudo-sensor source:<name>, whatever the client id now
        source.session_alarm = bool(seen.get("session_alarm"))
        same = (
            seen.get("client_id") == source.settings.client_id
            and seen.get("broker") == f"{source.settings.host}:{source.settings.port}"
        )
        if same and (seen.get("session_expected") or seen.get("connects")):
            source.expect_session = True
