"""The alarm timeline: every transition and every safety action (ack, silence, unsilence),
newest first, with who did it and from where: `sentinel alarms --history`'s rows
(sentinel/alarm/status.py `read_history`) in the page's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentinel.alarm.status import read_history
from sentinel.store import open_readonly


def read(state_dir: Path, limit: int) -> list[dict[str, Any]]:
    conn = open_readonly(state_dir)
    if conn is None:
        return []
    try:
        return [_item(row) for row in read_history(conn, limit)]
    finally:
        conn.close()


def _item(row: dict[str, Any]) -> dict[str, Any]:
    if row["type"] == "transition":
        return {
            "type": "transition",
            "ts": row["ts"],
            "alarm_id": row["alarm_id"],
            "sensor": row["sensor_id"],
            "kind": row["kind"],
            "location": row["location"],
            "from": row["from_state"],
            "to": row["to_state"],
            "severity": row["severity"],
            "reason": row["reason"],
        }
    return {
        "type": "action",
        "ts": row["ts"],
        "command": row["command"],
        "target": row["target"],
        "until": row["until"],
        "reason": row["reason"],
        "by": row["by"],
        "user": row["user"],
        "address": row["address"],
        "result": row["result"],
    }
