"""Acting from the web: acknowledge, silence, end a silence.

The same command rows the CLI writes (sentinel/command_rows.py, checked and shaped by
sentinel/alarm/requests.py), with the actor: the logged-in user, "web:<user>", and the
client address. The engine applies them within a second; the request waits for its result
without holding the loop (the database work runs in worker threads, the wait is a sleep)
and returns it, so the person sees what the daemon did, or why it did nothing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sentinel import command_rows
from sentinel.alarm.actor import Actor
from sentinel.alarm.commands import NotInitialised, StateDbError, connect, find_alarm
from sentinel.alarm.requests import (
    Refused,
    ack_args,
    refusal,
    silence_args,
    silence_duration,
    unsilence_args,
    unsilence_target,
)
from sentinel.alarm.silence import silence_number
from sentinel.web.auth import acting_session, client_address, error
from sentinel.web.context import CTX, WebContext

log = logging.getLogger("sentinel.web")

POLL = 0.1
RESULT_WAIT = 10.0
MAX_REASON = 500
NOT_YET = "recorded; the daemon has not applied it yet (it applies it at its next tick)"


@dataclass(frozen=True, slots=True)
class Done:
    """What a request came to: the HTTP status and the JSON body."""

    status: int
    body: dict[str, Any]


def _ok(result: str) -> Done:
    return Done(200, {"ok": True, "result": result})


def _no(status: int, message: str) -> Done:
    return Done(status, {"ok": False, "error": message})


def _write(ctx: WebContext, work: Any) -> Any:
    """Runs `work(conn)` on a fresh read-write connection (in a worker thread)."""
    conn = connect(ctx.state_dir)
    try:
        return work(conn)
    finally:
        conn.close()


async def _run(ctx: WebContext, command: str, args: dict[str, Any], actor: Actor) -> Done:
    """Writes the row and waits (POLL, up to RESULT_WAIT) for the engine's result."""
    try:
        row = await asyncio.to_thread(
            _write, ctx, lambda c: command_rows.add(c, command_rows.ALARM, command, args)
        )
        deadline = asyncio.get_running_loop().time() + RESULT_WAIT
        while True:
            state = await asyncio.to_thread(
                _write, ctx, lambda c: command_rows.look(c, command_rows.ALARM, row)
            )
            if state.result is not None or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(POLL)
    except (NotInitialised, StateDbError, sqlite3.Error) as exc:
        log.error("web: %s by %s could not be recorded: %s", command, actor.describe(), exc)
        return _no(503, f"could not record it: {exc}")
    result = state.result
    log.info("web: %s by %s: %s", command, actor.describe(), result or "not applied yet")
    if result is None:
        return Done(202, {"ok": True, "result": NOT_YET})
    if refusal(result):
        return _no(409, f"the daemon did not apply it: {result}")
    return _ok(result)


async def acknowledge(ctx: WebContext, alarm_text: str, reason: str, actor: Actor) -> Done:
    """Acknowledges an alarm as `sentinel ack` does (the signed ack links use it too)."""

    def look(conn: sqlite3.Connection) -> dict[str, Any] | None:
        row = find_alarm(conn, alarm_text)
        return None if row is None else dict(row)

    try:
        alarm = await asyncio.to_thread(_write, ctx, look)
    except (NotInitialised, StateDbError, sqlite3.Error) as exc:
        return _no(503, f"cannot read the alarms: {exc}")
    if alarm is None:
        return _no(404, f"no such alarm {alarm_text!r}")
    if alarm["state"] in ("resolved", "cancelled"):
        return _no(409, f"{alarm['id']} is already {alarm['state']}; nothing to acknowledge")
    if alarm["state"] == "acknowledged":
        return _ok(f"{alarm['id']} was already acknowledged by {alarm['acked_by']}")
    return await _run(ctx, "ack", ack_args(alarm["id"], reason, actor), actor)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        error(400, "expected a JSON object")
    if not isinstance(data, dict):
        error(400, "expected a JSON object")
    return data


def one_line(text: str) -> str:
    """`text` as one line of visible characters: it goes into SMS, announcements and the log
    as it is, and a control or direction-changing character (U+202E turns the rest of a line
    around) would let it pass for something else there, such as who acted from where."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _reason(data: dict[str, Any], *, required: bool = False) -> str:
    value = data.get("reason", "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        error(400, "reason: expected text")
    value = one_line(value)[:MAX_REASON]
    if required and not value:
        error(400, "a silence needs a reason (shown in status and announced with it)")
    return value


def _actor(request: web.Request, user: str) -> Actor:
    ctx = request.app[CTX]
    return Actor.web(user, client_address(request, ctx.web.trusted_proxies))


def _reply(done: Done) -> web.Response:
    return web.json_response(done.body, status=done.status)


async def _ack(request: web.Request) -> web.Response:
    session = await acting_session(request)
    data = await _body(request)
    ctx = request.app[CTX]
    actor = _actor(request, session.user)
    return _reply(await acknowledge(ctx, request.match_info["alarm"], _reason(data), actor))


async def _silence(request: web.Request) -> web.Response:
    session = await acting_session(request)
    data = await _body(request)
    ctx = request.app[CTX]
    sensor = data.get("sensor")
    if sensor is not None and not isinstance(sensor, str):
        error(400, "sensor: expected a sensor id, or null for every alarm")
    reason = _reason(data, required=True)
    actor = _actor(request, session.user)
    try:
        duration = silence_duration(ctx.config, data.get("duration"), everything=sensor is None)
        args = silence_args(ctx.config, sensor, duration, reason, actor)
    except Refused as exc:
        error(404 if exc.exit_code == 1 else 400, str(exc))
    return _reply(await _run(ctx, "silence", args, actor))


async def _unsilence(request: web.Request) -> web.Response:
    session = await acting_session(request)
    data = await _body(request)
    ctx = request.app[CTX]
    number = silence_number(request.match_info["n"])
    if number is None:
        error(400, f"no such silence {request.match_info['n']!r}: expected its number")
    actor = _actor(request, session.user)
    target = unsilence_target(ctx.config, number)
    return _reply(await _run(ctx, "unsilence", unsilence_args(target, _reason(data), actor), actor))


def routes(app: web.Application) -> None:
    app.router.add_post("/api/alarms/{alarm}/ack", _ack)
    app.router.add_post("/api/silences", _silence)
    app.router.add_post("/api/silences/{n}/end", _unsilence)
