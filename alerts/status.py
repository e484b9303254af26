"""`sentinel status` data for alert delivery, read from the state database (sync, read-only)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def read_status(conn: sqlite3.Connection, now: float) -> dict[str, Any]:
    """Channels (masked), outbox depth, oldest pending age, all-channels-failing time.

    Empty when the daemon never created the tables. Holds no secrets: channels are shown by
    their masked URL only.
    """
    try:
        channel_rows = _channel_rows(conn)
        pending_rows = conn.execute(
            "SELECT channel, COUNT(*), MIN(created) FROM outbox_message "
            "WHERE state = 'pending' GROUP BY channel"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    dead = _dead_rows(conn)
    fallback = _fallback_rows(conn)
    pending = {str(r[0]): (int(r[1]), float(r[2])) for r in pending_rows}
    channels = []
    for row in channel_rows:
        waiting, _oldest = pending.get(str(row[0]), (0, None))
        channels.append(
            {
                "key": row[0],
                "name": row[1],  # the masked URL
                "url": row[1],
                "service": row[2],
                "tags": json.loads(row[3]),
                "form": row[4],
                "last_success": row[5],
                "last_failure": row[6],
                "last_error": row[7],
                "consecutive_failures": row[8],
                "failing_since": row[9],
                "sent": row[10],
                "failed": row[11],  # failed attempts, never reset (None: not migrated yet)
                "pending": waiting,
            }
        )
    depth = sum(n for n, _ in pending.values())
    oldest = min((ts for _, ts in pending.values()), default=None)
    return {
        "channels": channels,
        "outbox_pending": depth,
        "oldest_pending_age": None if oldest is None else max(0.0, now - oldest),
        "all_channels_failing_since": _all_failing_since(channels),
        # rows set aside because no message could be made of them (the newest few shown)
        "undeliverable": len(dead),
        "undeliverable_rows": dead[:5],
        # events sent through a fallback channel (modem) because their channels kept failing
        "fallback_used": fallback[0],
        "last_fallback": fallback[1],
    }


def _fallback_rows(conn: sqlite3.Connection) -> tuple[int, float | None]:
    try:
        row = conn.execute(
            "SELECT COUNT(*), MAX(created) FROM outbox_message WHERE fallback = 1"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such column" in str(exc):  # a database the daemon has not migrated yet
            return 0, None
        raise
    return int(row[0]), None if row[1] is None else float(row[1])


_CHANNEL_COLUMNS = (
    "key, display, service, tags, form, last_success, last_failure, last_error, "
    "consecutive_failures, failing_since, sent_total"
)


def _channel_rows(conn: sqlite3.Connection) -> list[Any]:
    query = "SELECT {} FROM alert_channel WHERE configured = 1 ORDER BY display, key"
    try:
        return conn.execute(query.format(_CHANNEL_COLUMNS + ", failed_total")).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such column" not in str(exc):
            raise
    # a database the daemon has not migrated yet: status is read-only and cannot add it
    return [(*row, None) for row in conn.execute(query.format(_CHANNEL_COLUMNS)).fetchall()]


def _dead_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    try:
        rows = conn.execute(
            "SELECT id, alarm_id, severity, created, error FROM outbox_message "
            "WHERE state = 'dead' ORDER BY id DESC"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such column" in str(exc):  # a database the daemon has not migrated yet
            return []
        raise
    return [
        {"id": r[0], "alarm_id": r[1], "severity": r[2], "created": r[3], "error": r[4]}
        for r in rows
    ]


def _all_failing_since(channels: list[dict[str, Any]]) -> float | None:
    """Same rule as the sender: every channel that was tried is failing; since the latest."""
    tried = [c for c in channels if c["last_success"] or c["consecutive_failures"]]
    if not tried or any(not c["consecutive_failures"] for c in tried):
        return None
    return max(float(c["failing_since"] or 0.0) for c in tried)
