"""What `sentinel status` shows about sensors, alarms and silences, and the alarm history
`sentinel alarms --history` and the dashboard's timeline show (sync, read-only)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

ACTIVE_STATES = ("pending", "firing", "acknowledged")


def read_status(conn: sqlite3.Connection, now: float) -> dict[str, Any]:
    """JSON-ready: {"sensors": [...], "alarms": [...], "silences": [...],
    "pending_commands": n}. Empty lists when the engine never created its tables."""
    empty: dict[str, Any] = {"sensors": [], "alarms": [], "silences": [], "pending_commands": 0}
    try:
        alarms = _alarms(conn)
        silences = _silences(conn, now)
        sensors = _sensors(conn, now, alarms, silences)
        pending = conn.execute(
            "SELECT count(*) FROM alarm_commands WHERE applied IS NULL"
        ).fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return empty
        raise
    return {
        "sensors": sensors,
        "alarms": alarms,
        "silences": silences,
        "pending_commands": int(pending),
    }


def _alarms(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, sensor_id, subject, condition, location, kind, severity, state, opened, "
        "fired, value, unit, reason, acked_by, latched FROM alarm_alarms "
        "WHERE closed IS NULL ORDER BY severity = 'critical' DESC, opened"
    ).fetchall()
    return [
        {
            "id": r[0],
            "sensor": r[1],
            "subject": r[2],
            "condition": r[3],
            "location": r[4],
            "kind": r[5],
            "severity": r[6],
            "state": r[7],
            "since": r[9] if r[9] is not None else r[8],
            "value": _value(r[10]),
            "unit": r[11],
            "reason": r[12],
            "acked_by": r[13],
            "latched": bool(r[14]),
        }
        for r in rows
    ]


def _silences(conn: sqlite3.Connection, now: float) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, sensor_id, reason, created_by, created, until FROM alarm_silences "
        "WHERE ended IS NULL AND until > ? ORDER BY id",
        (now,),
    ).fetchall()
    return [
        {
            "id": r[0],
            "sensor": r[1] or "all",
            "reason": r[2],
            "by": r[3],
            "since": r[4],
            "until": r[5],
            "remaining": max(0.0, r[5] - now),
        }
        for r in rows
    ]


def _sensors(
    conn: sqlite3.Connection,
    now: float,
    alarms: list[dict[str, Any]],
    silences: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, kind, location, unit, max_age, value, value_ts, fault FROM alarm_sensors "
        "ORDER BY id, kind"
    ).fetchall()
    by_sensor: dict[str, list[dict[str, Any]]] = {}
    for alarm in alarms:
        if alarm["state"] != "pending":
            by_sensor.setdefault(alarm["sensor"], []).append(alarm)
    out = []
    for r in rows:
        sid, kind, location, unit, max_age, value, value_ts, fault = r
        own = by_sensor.get(sid, [])
        age = None if value_ts is None else max(0.0, now - value_ts)
        conditions = {a["condition"] for a in own}
        if "lost" in conditions:
            state = "lost"
        elif "fault" in conditions or fault:
            state = "fault"
        elif any(a["condition"] in (kind, "rate", "battery") for a in own):
            state = "alarm"
        elif value_ts is None:
            state = "never-seen"
        elif max_age is not None and age is not None and age > max_age:
            state = "lost"
        else:
            state = "ok"
        silence = next((s for s in silences if s["sensor"] in ("all", sid)), None)
        out.append(
            {
                "id": sid,
                "location": location,
                "kind": kind,
                "value": _value(value),
                "unit": unit,
                "age": age,
                "state": state,
                "silenced": None
                if silence is None
                else {"id": silence["id"], "until": silence["until"], "reason": silence["reason"]},
            }
        )
    return out


def _value(text: str | None) -> Any:
    return None if text is None else json.loads(text)


_TRANSITIONS = (
    "SELECT t.ts, t.alarm_id, a.sensor_id, a.kind, a.location, t.from_state, t.to_state, "
    "t.severity, t.reason, t.event, t.notified FROM alarm_transitions t "
    "LEFT JOIN alarm_alarms a ON a.id = t.alarm_id ORDER BY t.seq DESC LIMIT ?"
)
_ACTIONS = (
    "SELECT ts, requested, command, target, until, reason, declared_by AS by, uid, user, "
    "sudo_uid, sudo_user, address, result FROM alarm_actions ORDER BY id DESC LIMIT ?"
)


def _rows(conn: sqlite3.Connection, sql: str, kind: str, limit: int) -> list[dict[str, Any]]:
    try:
        return [{"type": kind, **dict(r)} for r in conn.execute(sql, (limit,))]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # the daemon has not created (or migrated) them yet
            return []
        raise


def _actions(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    try:
        return _rows(conn, _ACTIONS, "action", limit)
    except sqlite3.OperationalError as exc:
        if "no such column" not in str(exc):
            raise
    # a database the daemon has not migrated yet (alarm migration 4, after an upgrade): it
    # holds no action from the web, and this read-only command cannot add the column
    older = _ACTIONS.replace(" address,", "")
    return [{**r, "address": None} for r in _rows(conn, older, "action", limit)]


def read_history(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    """Transitions and safety actions (who acked/silenced, with the real uid and the web's
    client address), newest first: `sentinel alarms --history` and the dashboard's timeline."""
    rows = _rows(conn, _TRANSITIONS, "transition", limit)
    rows += _actions(conn, limit)
    rows.sort(key=lambda r: r["ts"], reverse=True)
    return rows[:limit]
