"""The aiohttp application: the dashboard page, its JSON, its live stream, /metrics."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from aiohttp import web

from sentinel.web import ack_page, actions, auth, history, hosts, metrics, timeline
from sentinel.web.context import CTX, WebContext

log = logging.getLogger("sentinel.web")

STATIC = Path(__file__).parent / "static"
# a stream with nothing new still says it is alive this often (proxies drop idle ones)
PING_EVERY = 15.0
TIMELINE_MAX = 500
HISTORIES_MAX = 100

# No inline script or style and nothing from another host: a sensor name that smuggles in
# markup cannot run, and the page works with no internet.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@web.middleware
async def _headers(request: web.Request, handler: Any) -> web.StreamResponse:
    request.app[CTX].stats["requests"] += 1
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        # a raised answer (refusals, the login's redirect with its session cookie, 421)
        # passes the middleware as an exception: it needs the same headers
        _secure(request, exc.headers)
        raise
    _secure(request, response.headers)
    return response


def _secure(request: web.Request, headers: Any) -> None:
    headers.setdefault("Content-Security-Policy", _CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # an ack link's signature must not leak to another site through the Referer header
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith(("/api/", "/events", "/metrics", "/login", "/logout")):
        headers.setdefault("Cache-Control", "no-store")
    elif request.path.startswith("/static/"):
        # asked again each time (a 304 when unchanged): after an upgrade no browser keeps
        # running the old app.js against the new server
        headers.setdefault("Cache-Control", "no-cache")


def build_app(ctx: WebContext) -> web.Application:
    app = web.Application(middlewares=[_headers, hosts.host_guard], client_max_size=64 * 1024)
    app[CTX] = ctx
    app.router.add_get("/", _index)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/history", _history)
    app.router.add_get("/api/histories", _histories)
    app.router.add_get("/api/timeline", _timeline)
    app.router.add_get("/events", _events)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    metrics.routes(app)
    auth.routes(app)
    actions.routes(app)
    ack_page.routes(app)
    return app


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _status(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    report = dict(await ctx.snapshot.report())
    report["web"] = auth.session_view(request)
    return web.Response(body=_encode(report), content_type="application/json", charset="utf-8")


async def _history(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    sensor = request.query.get("sensor", "")
    kind = request.query.get("kind", "")
    chosen = request.query.get("range", "24h")
    span = history.RANGES.get(chosen)
    if not sensor or not kind or span is None:
        raise web.HTTPBadRequest(
            text="expected ?sensor=<id>&kind=<kind>&range=" + "|".join(history.RANGES)
        )

    def answer() -> bytes:
        [chart] = _charts(ctx, [(sensor, kind, span)], [chosen])
        return _encode(chart)

    return await _json_from_thread(request, "the history", answer)


async def _histories(request: web.Request) -> web.Response:
    """Several charts at once: parallel `sensor`, `kind`, `range` parameters, answered in
    their order as {"charts": [...]} (the page's first paint asks for every tile in one)."""
    ctx = request.app[CTX]
    sensors = request.query.getall("sensor", [])
    kinds = request.query.getall("kind", [])
    ranges = request.query.getall("range", [])
    every = request.query.get("all")
    if every is not None and not sensors:
        # every configured chart at one range: what index.html asks for beside /api/status,
        # so the charts' data is on its way before the page knows its tiles
        configured = _configured_charts(ctx)
        sensors = [sensor for sensor, _ in configured]
        kinds = [kind for _, kind in configured]
        ranges = [every] * len(configured)
        if not sensors:
            return web.json_response({"charts": []})
    if not sensors or not (len(sensors) == len(kinds) == len(ranges)):
        raise web.HTTPBadRequest(text="expected as many sensor=, kind= and range= as charts")
    if len(sensors) > HISTORIES_MAX:
        raise web.HTTPBadRequest(text=f"at most {HISTORIES_MAX} charts per request")
    spans = [history.RANGES.get(r) for r in ranges]
    if None in spans:
        raise web.HTTPBadRequest(text="range: expected one of " + "|".join(history.RANGES))
    charts = list(zip(sensors, kinds, [s for s in spans if s is not None], strict=True))

    def answer() -> bytes:
        return _encode({"charts": _charts(ctx, charts, ranges)})

    return await _json_from_thread(request, "the history", answer)


def _configured_charts(ctx: WebContext) -> list[tuple[str, str]]:
    """(sensor, kind) of every tile the page draws from the config: the sensors and each
    replication's RPO."""
    charts = [(s.id, s.kind) for s in ctx.config.sensors]
    charts += [(f"replication:{r.name}", "replication_lag") for r in ctx.config.replication]
    return charts[:HISTORIES_MAX]


def _charts(
    ctx: WebContext, charts: list[tuple[str, str, float]], ranges: list[str]
) -> list[dict[str, Any]]:
    results = history.query_many(ctx.state_dir, charts, ctx.clock())
    for result, chosen in zip(results, ranges, strict=True):
        result["range"] = chosen
        history.with_thresholds(result, ctx.rules)
    return results


async def _json_from_thread(
    request: web.Request, what: str, answer: Callable[[], bytes]
) -> web.Response:
    """Runs the query AND the encoding in the web's worker threads: twenty charts are half
    a megabyte of JSON, 20-27 ms of encoding that on the event loop held back pages. The
    answer is gzipped there too when the browser takes it (a phone on a mobile network)."""
    ctx = request.app[CTX]
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "")

    def run() -> bytes:
        body = answer()
        return gzip.compress(body, compresslevel=5) if gzipped else body

    try:
        body = await ctx.read(run)
    except sqlite3.Error as exc:
        _unreadable(what, exc)
    headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"} if gzipped else {}
    return web.Response(
        body=body, content_type="application/json", charset="utf-8", headers=headers
    )


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, default=str, ensure_ascii=False, separators=(",", ":")).encode()


async def _timeline(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    try:
        limit = max(1, min(TIMELINE_MAX, int(request.query.get("limit", "100"))))
    except ValueError:
        raise web.HTTPBadRequest(text="limit: expected a whole number") from None
    return await _json_from_thread(
        request, "the timeline", lambda: _encode({"items": timeline.read(ctx.state_dir, limit)})
    )


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the report at once and whenever a newer one is built."""
    ctx = request.app[CTX]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx would otherwise hold the stream back
        }
    )
    await response.prepare(request)
    ctx.snapshot.watchers += 1
    ctx.stats["streams"] += 1
    try:
        version = -1
        while True:
            newer = await ctx.snapshot.wait_newer(version, PING_EVERY)
            if ctx.web.view == "login" and auth.current_session(request) is None:
                # logged out, expired, or the user deleted since the stream opened: a phone
                # that was let in once must not keep watching the room for ever
                break
            if newer:
                data = await ctx.snapshot.report_json()
                version = ctx.snapshot.version
                await response.write(b"event: status\ndata: " + data + b"\n\n")
            else:
                await response.write(b": ping\n\n")
    except ConnectionResetError:
        pass  # the browser went away; a cancellation (shutdown) goes on up
    finally:
        ctx.snapshot.watchers -= 1
        with contextlib.suppress(Exception):
            await response.write_eof()
    return response


def _unreadable(what: str, exc: sqlite3.Error) -> NoReturn:
    """503 with the reason, for the page to show in place of the chart or the list (a bare
    500 said only that the server "got itself in trouble")."""
    log.error("web: cannot read %s: %s", what, exc)
    raise web.HTTPServiceUnavailable(
        text=json.dumps({"ok": False, "error": f"cannot read {what}: {exc}"}),
        content_type="application/json",
    )
