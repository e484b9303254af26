"""A stand-in for the dashboard's server: sentinel/web/static/ and canned answers in the shape
of docs/status.md and the web contract, so the page can be looked at (and tested in a
browser) without a daemon. `python -m tests.web.fake_api --port 8099`, then
POST /fake/leak?on=1|0 floods or dries the room (&lag=1: the sensor row lags the alarm),
POST /fake/tick sends a report with nothing new, POST /fake/broken?on=1|0 a report the
server could not build, POST /fake/stop-events ends the stream.

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

# the real server's policy, so a page that would break under it breaks here too
from sentinel.web.app import _CSP

STATIC = Path(__file__).resolve().parents[2] / "sentinel" / "web" / "static"
CSRF = "fake-csrf-token"
# A sensor name that would run script if the page put it in as markup.
HOSTILE = '<img src=x onerror="window.__pwned=1">'


class Room:
    """The fake room's state and everyone waiting for it to change."""

    def __init__(self, language: str = "ko", extra_sensors: int = 0) -> None:
        self.language = language
        self.extra_sensors = extra_sensors  # more temperature tiles, for timing the page
        self.leak = False
        self.acked: str | None = None
        self.silences: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.user: str | None = None
        self.failed_logins = 0
        # the engine's batched write of latest values lags its alarm: "dry" next to the alarm
        self.value_lags = False
        self.broken = False  # the server cannot build the report (snapshot.py's answer)
        self.view = "open"  # "login": seeing the dashboard needs a login too
        self.streams: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.started = time.time()

    def report(self) -> dict[str, Any]:
        now = time.time()
        if self.broken:
            reason = "cannot build the status report: database is locked"
            return {"overall": {"state": "UNKNOWN", "reasons": [reason]}}
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
                    "since": now - 1 if self.value_lags else self.started,
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
                    "value": self.leak and not self.value_lags,
                    "unit": "",
                    "age": 30.0 if self.value_lags else 3.0,
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
                *(
                    {
                        "id": f"temp-{n}",
                        "location": f"랙 {n}",
                        "kind": "temperature",
                        "value": 22.0,
                        "unit": "°C",
                        "age": 5.0,
                        "state": "ok",
                        "silenced": None,
                    }
                    for n in range(self.extra_sensors)
                ),
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
            "view": self.view,
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
    if request.app[ROOM].view == "login" and request.app[ROOM].user is None:
        raise web.HTTPSeeOther("/login")
    # as the real server: a browser must ask again, not show a page from its cache
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def login_page(request: web.Request) -> web.Response:
    return web.Response(
        text="<!doctype html><title>login</title><p>login page</p>", content_type="text/html"
    )


async def status(request: web.Request) -> web.Response:
    room = request.app[ROOM]
    if room.view == "login" and room.user is None:
        return web.json_response({"ok": False, "error": "log in first"}, status=401)
    return web.json_response({**room.report(), "web": room.web()})


async def history(request: web.Request) -> web.Response:
    rng = request.query.get("range", "24h")
    if rng not in SPAN:
        return web.json_response({"error": f"unknown range {rng}"}, status=400)
    chart = _chart(request, request.query.get("sensor", ""), request.query.get("kind", ""), rng)
    return web.json_response(chart)


async def histories(request: web.Request) -> web.Response:
    """The real server's batch form: parallel sensor=, kind=, range= parameters."""
    asked = zip(
        request.query.getall("sensor", []),
        request.query.getall("kind", []),
        request.query.getall("range", []),
        strict=True,
    )
    return web.json_response({"charts": [_chart(request, s, k, r) for s, k, r in asked]})


def _chart(request: web.Request, sensor: str, kind: str, rng: str) -> dict[str, Any]:
    now = time.time()
    step = SPAN[rng] / 720  # as many buckets as the real server's most
    ts = [now - SPAN[rng] + i * step for i in range(721)]
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

    def with_gap(values: list[float]) -> list[float | None]:
        return [None if gap <= i < gap + 5 else v for i, v in enumerate(values)]

    columns = {"min": with_gap(lo), "avg": with_gap(avg), "max": with_gap(hi)}
    return {
        "sensor": sensor,
        "kind": kind,
        "unit": "°C" if kind == "temperature" else "",
        "range": rng,
        "from": ts[0],
        "to": ts[-1],
        "step": step,
        "t": ts,
        **columns,
        "thresholds": thresholds,
    }


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
            "target": request.match_info["id"],  # the real timeline names it so
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
    form = await request.json() if request.content_type == "application/json" else {}
    room = request.app[ROOM]
    if room.failed_logins >= 3:
        return web.json_response(
            {"ok": False, "error": "locked"}, status=429, headers={"Retry-After": "300"}
        )
    if form.get("user") == "kim" and form.get("password") == "pw":
        room.user = "kim"
        raise web.HTTPSeeOther("/")
    room.failed_logins += 1
    return web.json_response({"ok": False, "error": "wrong user or password"}, status=401)


async def logout(request: web.Request) -> web.Response:
    request.app[ROOM].user = None
    raise web.HTTPSeeOther("/")


async def fake_leak(request: web.Request) -> web.Response:
    room = request.app[ROOM]
    room.leak = request.query.get("on") == "1"
    room.value_lags = request.query.get("lag") == "1"
    room.acked = None
    room.changed()
    return web.json_response({"ok": True})


async def fake_broken(request: web.Request) -> web.Response:
    room = request.app[ROOM]
    room.broken = request.query.get("on") == "1"
    room.changed()
    return web.json_response({"ok": True})


async def fake_tick(request: web.Request) -> web.Response:
    request.app[ROOM].changed()  # a new report with nothing else new, as the real one sends
    return web.json_response({"ok": True})


async def fake_stop_events(request: web.Request) -> web.Response:
    room = request.app[ROOM]
    for queue in room.streams:
        queue.put_nowait(None)
    return web.json_response({"ok": True})


@web.middleware
async def _policy(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    response.headers.setdefault("Content-Security-Policy", _CSP)
    return response


def build(language: str = "ko", extra_sensors: int = 0) -> web.Application:
    app = web.Application(middlewares=[_policy])
    app[ROOM] = Room(language, extra_sensors)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/history", history)
    app.router.add_get("/api/histories", histories)
    app.router.add_get("/api/timeline", timeline)
    app.router.add_get("/events", events)
    app.router.add_post("/api/alarms/{id}/ack", ack)
    app.router.add_post("/api/silences", silence)
    app.router.add_post("/api/silences/{n}/end", unsilence)
    app.router.add_post("/login", login)
    app.router.add_get("/login", login_page)
    app.router.add_post("/logout", logout)
    app.router.add_post("/fake/leak", fake_leak)
    app.router.add_post("/fake/tick", fake_tick)
    app.router.add_post("/fake/broken", fake_broken)
    app.router.add_post("/fake/stop-events", fake_stop_events)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--language", default="ko", choices=["ko", "en"])
    parser.add_argument("--extra-sensors", type=int, default=0)
    args = parser.parse_args()
    web.run_app(build(args.language, args.extra_sensors), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
