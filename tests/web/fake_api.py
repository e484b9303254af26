"""A stand-in for the dashboard's server: sentinel/web/static/ and canned answers in the shape
of docs/status.md and the web contract, so the page can be looked at (and tested in a
browser) without a daemon. `python -m tests.web.fake_api --port 8099`, then
POST /fake/leak?on=1|0 floods or dries the room and POST /fake/stop-events ends the stream.

Not the real server: sentinel/web/app.py is. This one checks nothing it does not have to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

from aiohttp import web

STATIC = Path(__file__).resolve().parents[2] / "sentinel" / "web" / "static"
CSRF = "fake-csrf-token"
# A sensor name that would run script if the page put it in as markup.
HOSTILE = '<img src=x onerror="window.__pwned=1">'


class Room:
    """The fake room's state and everyone waiting for it to change."""

    def __init__(self, language: str = "ko") -> None:
        self.language = language
        self.leak = False
        self.acked: str | None = None
        self.silences: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.user: str | None = None
        self.streams: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.started = time.time()

    def report(self) -> dict[str, Any]:
        now = time.time()
        alarms = []
        if self.leak:
            alarms.append(
                {
                    "id": "EYDH",
                    "sensor": "leak-ups",
                    "subject": "leak-ups",
                    "condition": "water_leak",
                    "location": "전산실 UPS 하단 누수",
                    "kind": "water_leak",
                    "severity": "critical",
                    "state": "acknowledged" if self.acked else "firing",
                    "since": self.started,
                    "value": True,
                    "unit": "",
                    "reason": "water leak detected",
                    "acked_by": self.acked,
                    "latched": False,
                }
            )
        reasons = (
            ["critical: 전산실 UPS 하단 누수 water leak detected"] if self.leak else ["all normal"]
        )
        return {
            "schema": 1,
            "generated": now,
            "version": "0.1.0",
            "site": "OO군청 전산실",
            "state_dir": "/var/lib/sentinel",
            "overall": {"state": "CRITICAL" if self.leak else "OK", "reasons": reasons},
            "daemon": {
                "state": "up",
                "pid": 1,
                "heartbeat_age": 0.5,
                "config": {"site": "OO군청 전산실"},
            },
            "components": {},
            "sensors": [
                {
                    "id": "leak-ups",
                    "location": "전산실 UPS 하단 누수",
                    "kind": "water_leak",
                    "value": self.leak,
                    "unit": "",
                    "age": 3.0,
                    "state": "alarm" if self.leak else "ok",
                    "silenced": None,
                },
                {
                    "id": "temp-rack1",
                    "location": "1번 랙 상단",
                    "kind": "temperature",
                    "value": round(_temperature(now), 2),
                    "unit": "°C",
                    "age": 12.0,
                    "state": "ok",
                    "silenced": None,
                },
                {
                    "id": "hum-room",
                    "location": HOSTILE,
                    "kind": "humidity",
                    "value": 41.0,
                    "unit": "%",
                    "age": 30.0,
                    "state": "ok",
                    "silenced": None,
                },
            ],
            "alarms": alarms,
            "silences": self.silences,
            "replication": [
                {
                    "name": "onnara",
                    "rpo_seconds": 0.4,
                    "pending": 3,
                    "last_success": now - 2,
                    "consecutive_failures": 0,
                    "last_error": None,
                    "guard_tripped": False,
                    "guard": {"tripped": False, "reason": None},
                    "verify": "ok",
                    "last_verify": {"ts": now - 3600, "ok": True, "differences": 0},
                    "quarantine": {"count": 0, "paths": []},
                    "keeper": {"room": "main-office", "safe_as_of": now - 5, "problem": None},
                }
            ],
            "alerts": {
                "channels": [
                    {
                        "key": "436ba09067",
                        "name": "json://sms-gateway/...",
                        "service": "JSON",
                        "last_success": now - 60,
                        "last_failure": None,
                        "last_error": None,
                        "consecutive_failures": 0,
                        "sent": 2,
                    }
                ],
                "outbox_pending": 0,
                "oldest_pending_age": None,
                "all_channels_failing_since": None,
            },
            "configured": {"sensors": 3, "replication": 1, "channels": 1},
        }

    def web(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "user": self.user,
            "csrf": CSRF if self.user else None,
            "can_act": self.user is not None,
            "view": "open",
        }

    def changed(self) -> None:
        report = self.report()
        for queue in self.streams:
            queue.put_nowait(report)


def _temperature(ts: float) -> float:
    return 23.0 + 2.5 * math.sin(ts / 3600.0)


ROOM: web.AppKey[Room] = web.AppKey("room", Room)
SPAN = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def status(request: web.Request) -> web.Response:
    room = request.app[ROOM]
    return web.json_response({**room.report(), "web": room.web()})


async def history(request: web.Request) -> web.Response:
    sensor = request.query.get("sensor", "")
    kind = request.query.get("kind", "")
    rng = request.query.get("range", "24h")
    if rng not in SPAN:
        return web.json_response({"error": f"unknown range {rng}"}, status=400)
    now = time.time()
    step = SPAN[rng] / 360
    ts = [now - SPAN[rng] + i * step for i in range(361)]
    room = request.app[ROOM]
    thresholds: dict[str, float | None] = {
        "warn_high": None,
        "crit_high": None,
        "warn_low": None,
        "crit_low": None,
    }
    if kind in ("water_leak", "smoke"):
        flag = [0.0] * len(ts)
        if room.leak:
            flag[-3:] = [1.0, 1.0, 1.0]
        lo, avg, hi = flag, flag, flag
    elif kind == "replication_lag":
        avg = [0.3 + 0.2 * math.sin(x / 900) ** 2 for x in ts]
        lo, hi = [v * 0.5 for v in avg], [v * 2 for v in avg]
        thresholds["warn_high"] = 60.0
    else:
        avg = [_temperature(x) for x in ts]
        lo, hi = [v - 1.5 for v in avg], [v + 1.5 for v in avg]
        thresholds.update(warn_high=27.0, crit_high=32.0, warn_low=15.0)
    # a gap the way a lost sensor leaves one
    gap = len(ts) // 3
    lo, avg, hi = (s[:gap] + [None] * 5 + s[gap + 5 :] for s in (lo, avg, hi))
    return web.json_response(
        {
            "sensor": sensor,
            "kind": kind,
            "unit": "°C" if kind == "temperature" else "",
            "range": rng,
            "from": ts[0],
            "to": ts[-1],
            "step": step,
            "t": ts,
            "min": lo,
            "avg": avg,
            "max": hi,
            "thresholds": thresholds,
        }
    )


async def timeline(request: web.Request) -> web.Response:
    room = request.app[ROOM]
    items: list[dict[str, Any]] = list(reversed(room.actions))
    if room.leak:
        items.append(
            {
                "ts": room.started,
                "type": "transition",
                "alarm_id": "EYDH",
                "sensor": "leak-ups",
                "kind": "water_leak",
                "from": "pending",
                "to": "firing",
                "severity": "critical",
                "reason": "water leak detected",
                "by": None,
                "address": None,
            }
        )
    return web.json_response({"items": items})


async def events(request: web.Request) -> web.StreamResponse:
    room = request.app[ROOM]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    room.streams.add(queue)
    try:
        await response.write(_event(room.report()))
        while True:
            report = await queue.get()
            if report is None:
                break
            await response.write(_event(report))
    finally:
        room.streams.discard(queue)
    return response


def _event(report: dict[str, Any]) -> bytes:
    return f"event: status\ndata: {json.dumps(report)}\n\n".encode()


def _acting(request: web.Request) -> web.Response | None:
    room = request.app[ROOM]
    if room.user is None:
        return web.json_response({"ok": False, "error": "log in first"}, status=401)
    if request.headers.get("X-CSRF-Token") != CSRF:
        return web.json_response({"ok": False, "error": "bad CSRF token"}, status=403)
    return None


async def ack(request: web.Request) -> web.Response:
    refused = _acting(request)
    if refused:
        return refused
    room = request.app[ROOM]
    room.acked = room.user
    room.actions.append(
        {
            "ts": time.time(),
            "type": "action",
            "alarm_id": request.match_info["id"],
            "command": "ack",
            "by": room.user,
            "address": request.remote,
            "result": "acknowledged",
        }
    )
    room.changed()
    return web.json_response({"ok": True, "result": "acknowledged"})


async def silence(request: web.Request) -> web.Response:
    refused = _acting(request)
    if refused:
        return refused
    room = request.app[ROOM]
    body = await request.json()
    n = len(room.silences) + 1
    room.silences.append(
        {
            "id": n,
            "sensor": body.get("sensor") or "all",
            "reason": body.get("reason", ""),
            "by": f"web:{room.user}",
            "until": time.time() + 7200,
        }
    )
    room.changed()
    return web.json_response({"ok": True, "result": f"silence {n} started"})


async def unsilence(request: web.Request) -> web.Response:
    refused = _acting(request)
    if refused:
        return refused
    room = request.app[ROOM]
    n = int(request.match_info["n"])
    room.silences = [s for s in room.silences if s["id"] != n]
    room.changed()
    return web.json_response({"ok": True, "result": f"silence {n} ended"})


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    room = request.app[ROOM]
    if form.get("user") == "kim" and form.get("password") == "pw":
        room.user = "kim"
        raise web.HTTPSeeOther("/")
    return web.json_response({"ok": False, "error": "wrong user or password"}, status=401)


async def logout(request: web.Request) -> web.Response:
    request.app[ROOM].user = None
    raise web.HTTPSeeOther("/")


async def fake_leak(request: web.Request) -> web.Response:
    room = request.app[ROOM]
    room.leak = request.query.get("on") == "1"
    room.acked = None
    room.changed()
    return web.json_response({"ok": True})


async def fake_stop_events(request: web.Request) -> web.Response:
    room = request.app[ROOM]
    for queue in room.streams:
        queue.put_nowait(None)
    return web.json_response({"ok": True})


def build(language: str = "ko") -> web.Application:
    app = web.Application()
    app[ROOM] = Room(language)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/history", history)
    app.router.add_get("/api/timeline", timeline)
    app.router.add_get("/events", events)
    app.router.add_post("/api/alarms/{id}/ack", ack)
    app.router.add_post("/api/silences", silence)
    app.router.add_post("/api/silences/{n}/end", unsilence)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_post("/fake/leak", fake_leak)
    app.router.add_post("/fake/stop-events", fake_stop_events)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--language", default="ko", choices=["ko", "en"])
    args = parser.parse_args()
    web.run_app(build(args.language), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
