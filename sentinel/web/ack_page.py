"""The pages behind a signed ack link (sentinel/web/ack_links.py signs and checks them).

GET shows the alarm and a button, and never acts: SMS apps and link scanners fetch links
before anyone taps them. Only the button's POST acknowledges, as "link" (or the name typed
beside the button) from the client's address.
"""

from __future__ import annotations

import asyncio
import html
import logging
import sqlite3
from pathlib import Path

from aiohttp import web

from sentinel.alarm.actor import LINK_USER, Actor
from sentinel.alarm.commands import find_alarm
from sentinel.alarm.ids import normalize
from sentinel.store import open_readonly
from sentinel.web.ack_links import AckLinks, KeyFileError
from sentinel.web.actions import acknowledge, one_line
from sentinel.web.auth import MAX_NAME, client_address, page, same_origin
from sentinel.web.context import CTX
from sentinel.web.users import LINK_NAME

log = logging.getLogger("sentinel.web")

_TEXT = {
    "ko": {
        "title": "경보 확인",
        "ask": "이 경보를 확인(ack)합니까? 반복 알림과 상향 보고가 멈춥니다.",
        "name": "이름 (선택)",
        "button": "확인합니다",
        "forged": "이 링크는 올바르지 않습니다. 대시보드에 로그인해서 확인하세요.",
        "expired": "이 링크는 만료되었습니다. 대시보드에 로그인해서 확인하세요.",
        "unusable": "확인 링크를 지금 쓸 수 없습니다 (데몬 로그 참조).",
        "done": "처리 결과",
        "failed": "확인하지 못했습니다",
    },
    "en": {
        "title": "Acknowledge alarm",
        "ask": "Acknowledge this alarm? Repeats and escalation stop.",
        "name": "Your name (optional)",
        "button": "Acknowledge",
        "forged": "This link is not valid. Log in to the dashboard to acknowledge.",
        "expired": "This link has expired. Log in to the dashboard to acknowledge.",
        "unusable": "Acknowledge links cannot be used right now (see the daemon's log).",
        "done": "Result",
        "failed": "Not acknowledged",
    },
}


def _links(request: web.Request) -> AckLinks:
    links = request.app[CTX].links
    if links is None:
        raise web.HTTPNotFound(text="acknowledge links are off ([web] ack_links)")
    return links


def _checked(request: web.Request, exp: str | None, sig: str | None) -> web.Response | None:
    """None when the link is good; else the 403 page that says why."""
    ctx = request.app[CTX]
    text = _TEXT[ctx.web.language]
    alarm = request.match_info["alarm"]
    try:
        why = _links(request).check(alarm, exp, sig, ctx.clock())
    except (KeyFileError, OSError) as exc:
        log.error("ack link for %s not checked: %s", alarm, exc)
        return page(ctx.web.language, text["title"], f"<p>{text['unusable']}</p>", status=503)
    if why is None:
        return None
    address = client_address(request, ctx.web.trusted_proxies)
    log.warning("ack link for %s from %s refused: %s", alarm, address, why)
    return page(ctx.web.language, text["title"], f"<p>{text[why]}</p>", status=403)


def _describe(alarm: sqlite3.Row | None) -> str:
    if alarm is None:
        return ""
    where = alarm["location"] or alarm["sensor_id"]
    return (
        f"<p><strong>{html.escape(alarm['id'])}</strong>: {html.escape(alarm['severity'])} "
        f"{html.escape(alarm['kind'])} — {html.escape(where)} ({html.escape(alarm['state'])})"
        f"<br>{html.escape(alarm['reason'])}</p>"
    )


def _find(state_dir: Path, alarm_text: str) -> sqlite3.Row | None:
    conn = open_readonly(state_dir)
    if conn is None:
        return None
    try:
        return find_alarm(conn, alarm_text)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


async def _confirm(request: web.Request) -> web.Response:
    """GET: the page with the button. Never acts (link scanners fetch every link)."""
    exp, sig = request.query.get("exp"), request.query.get("sig")
    refused = _checked(request, exp, sig)
    if refused is not None:
        return refused
    ctx = request.app[CTX]
    text = _TEXT[ctx.web.language]
    alarm_id = normalize(request.match_info["alarm"])
    alarm = await asyncio.to_thread(_find, ctx.state_dir, alarm_id)
    body = (
        f"{_describe(alarm)}<p>{text['ask']}</p>"
        f'<form method="post" action="/ack/{html.escape(alarm_id)}">'
        f'<input type="hidden" name="exp" value="{html.escape(exp or "")}">'
        f'<input type="hidden" name="sig" value="{html.escape(sig or "")}">'
        f'<p><label>{text["name"]} <input name="name" maxlength="{MAX_NAME}" '
        'autocomplete="name"></label></p>'
        f'<p><button type="submit">{text["button"]}</button></p></form>'
    )
    return page(ctx.web.language, text["title"], body)


async def _ack(request: web.Request) -> web.Response:
    """POST: acknowledges, as "link" (or the name typed) from the client's address."""
    ctx = request.app[CTX]
    text = _TEXT[ctx.web.language]
    if not same_origin(request):
        return page(ctx.web.language, text["title"], f"<p>{text['forged']}</p>", status=403)
    form = await request.post()
    exp, sig, name = form.get("exp"), form.get("sig"), form.get("name")
    refused = _checked(
        request, exp if isinstance(exp, str) else None, sig if isinstance(sig, str) else None
    )
    if refused is not None:
        return refused
    declared = one_line(name)[:MAX_NAME] if isinstance(name, str) else ""
    address = client_address(request, ctx.web.trusted_proxies)
    actor = Actor(declared or LINK_NAME, None, LINK_USER, address=address)
    done = await acknowledge(ctx, request.match_info["alarm"], "", actor)
    heading = text["done"] if done.body["ok"] else text["failed"]
    message = done.body.get("result") or done.body.get("error") or ""
    return page(
        ctx.web.language,
        text["title"],
        f"<p><strong>{heading}</strong>: {html.escape(str(message))}</p>",
        status=done.status,
    )


def routes(app: web.Application) -> None:
    app.router.add_get("/ack/{alarm}", _confirm)
    app.router.add_post("/ack/{alarm}", _ack)
