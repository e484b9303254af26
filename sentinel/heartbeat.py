"""The daemon's heartbeat row: proof of life that `sentinel status` reads without the daemon."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

from common.db import WriteTx
from sentinel import __version__

# A heartbeat older than this many intervals means the daemon is gone (hung or killed).
STALE_AFTER_BEATS = 3


async def beat(
    write: WriteTx,
    *,
    now: float,
    started: float,
    status: str,
    components: dict[str, Any],
    config: dict[str, Any],
    stopped: bool = False,
) -> None:
    async with write() as db:
        await db.execute(
            "INSERT INTO heartbeat(id, ts, started, pid, version, status, components, config, "
            "stopped) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "ts=excluded.ts, started=excluded.started, pid=excluded.pid, "
            "version=excluded.version, status=excluded.status, components=excluded.components, "
            "config=excluded.config, stopped=excluded.stopped",
            (
                now,
                started,
                os.getpid(),
                __version__,
                status,
                json.dumps(components, default=str, ensure_ascii=False),
                json.dumps(config, default=str, ensure_ascii=False),
                now if stopped else None,
            ),
        )


@dataclass(frozen=True)
class DaemonView:
    """What status says about the daemon process itself."""

    state: str  # up | down | stale | stopped | never-started
    pid: int | None = None
    version: str | None = None
    started: float | None = None
    heartbeat_ts: float | None = None
    heartbeat_age: float | None = None
    status: str = ""
    components: dict[str, Any] | None = None
    config: dict[str, Any] | None = None

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "version": self.version,
            "started": self.started,
            "uptime": (now - self.started) if self.started and self.state == "up" else None,
            "heartbeat_ts": self.heartbeat_ts,
            "heartbeat_age": self.heartbeat_age,
            "status": self.status,
        }


DEFAULT_INTERVAL = 5.0


def read_daemon(conn: sqlite3.Connection | None, now: float, interval: float | None) -> DaemonView:
    """The heartbeat row; `interval` None (the config cannot be read): the interval the
    daemon recorded with its heartbeat."""
    if conn is None:
        return DaemonView("never-started")
    try:
        row = conn.execute(
            "SELECT ts, started, pid, version, status, components, config, stopped "
            "FROM heartbeat WHERE id = 1"
        ).fetchone()
    except sqlite3.OperationalError:
        return DaemonView("never-started")
    if row is None:
        return DaemonView("never-started")
    return _view(
        {
            "ts": row["ts"],
            "started": row["started"],
            "pid": row["pid"],
            "version": row["version"],
            "status": row["status"],
            "stopped": row["stopped"],
            "components": json.loads(row["components"] or "{}"),
            "config": json.loads(row["config"] or "{}"),
        },
        now,
        interval,
    )


def view_from_live(live: dict[str, Any], now: float, interval: float | None) -> DaemonView:
    """The same view from the daemon's live status file (sentinel/livestatus.py)."""
    return _view(live, now, interval)


def _view(beat: dict[str, Any], now: float, interval: float | None) -> DaemonView:
    config = beat.get("config") or {}
    if interval is None:
        interval = float(config.get("heartbeat") or DEFAULT_INTERVAL)
    ts = float(beat.get("ts") or 0)
    age = max(0.0, now - ts)
    pid = int(beat.get("pid") or 0)
    if beat.get("stopped") is not None:
        state = "stopped"
    elif not pid_alive(pid):
        state = "down"
    elif age > STALE_AFTER_BEATS * interval:
        # the process is there but not beating: it hangs, or cannot write the database
        state = "stale"
    else:
        state = "up"
    return DaemonView(
        state=state,
        pid=pid,
        version=beat.get("version"),
        started=beat.get("started"),
        heartbeat_ts=ts,
        heartbeat_age=age,
        status=str(beat.get("status") or ""),
        components=beat.get("components") or {},
        config=config,
    )


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (the admin reading status)
        return True
    return True
