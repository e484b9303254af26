"""The alarm timeline: every transition and every safety action (ack, silence, unsilence),
newest first, with who did it and from where."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sentinel.store import open_readonly

_TRANSITIONS = (
    "SELECT t.ts, t.alarm_id, a.sensor_id, a.kind, a.location, t.from_state, t.to_state, "
    "t.severity, t.reason FROM alarm_transitions t "
    "LEFT JOIN alarm_alarms a ON a.id = t.alarm_id ORDER BY t.seq DESC LIMIT ?"
)
_ACTIONS = "SELECT * FROM alarm_actions ORDER BY id DESC LIMIT ?"


def read(state_dir: Path, limit: int) -> list[dict[str, Any]]:
    conn = open_readonly(state_dir)
    if conn is None:
        return []
    items: list[dict[str, Any]] = []
    try:
        for r in conn.execute(_TRANSITIONS, (limit,)):
            items.append(
                {
                    "type": "transition",
                    "ts": r["ts"],
                    "alarm_id": r["alarm_id"],
                    "sensor": r["sensor_id"],
                    "kind": r["kind"],
                    "location": r["location"],
                    "from": r["from_state"],
                    "to": r["to_state"],
                    "severity": r["severity"],
                    "reason": r["reason"],
                }
            )
        for r in conn.execute(_ACTIONS, (limit,)):
            row = dict(r)
            items.append(
                {
                    "type": "action",
                    "ts": row["ts"],
                    "command": row["command"],
                    "target": row["target"],
                    "until": row["until"],
                    "reason": row["reason"],
                    "by": row["declared_by"],
                    "user": row.get("user"),
                    # the web's client address (alarm_actions migration 4); older rows: None
                    "address": row.get("address"),
                    "result": row["result"],
                }
            )
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
    finally:
        conn.close()
    items.sort(key=lambda i: float(i["ts"] or 0), reverse=True)
    return items[:limit]
