"""Who may act from the web: login and logout, the session cookie, CSRF, the client address.

Viewing may be open (view = "open"); acting always needs a login. A session is a random
token in an HttpOnly, SameSite=Strict cookie (Secure over TLS, direct or through a trusted
proxy); every state-changing POST also carries the session's CSRF token in the
X-CSRF-Token header (or a `csrf` form field), and a POST whose Origin names another site
is refused whatever it carries. Failed logins are limited per client address and per user
name (sentinel/web/limiter.py) and logged with the address, never the password.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import logging
import math
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from aiohttp import web

from sentinel.web.context import CTX
from sentinel.web.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, Session

log = logging.getLogger("sentinel.web")

# longer input is not a name or a password anyone types; argon2 need not hash a megabyte
MAX_NAME = 64
MAX_PASSWORD = 1024
# what view = "login" still serves without a session: the way in, and what cannot wait
_OPEN_PATHS = ("/login", "/logout", "/healthz", "/metrics", "/static/", "/ack/")

_TEXT = {
    "ko": {
        "title": "sentinel 로그인",
        "user": "사용자",
        "password": "비밀번호",
        "login": "로그인",
        "wrong": "사용자 이름이나 비밀번호가 틀렸습니다.",
        "locked": "로그인 실패가 너무 많습니다. {wait} 뒤에 다시 시도하세요.",
        "off": "지금은 아무도 로그인할 수 없습니다: 사용자 파일이 없거나 읽을 수 없습니다 "
        "(데몬 로그 참조).",
        "back": "대시보드로",
    },
    "en": {
        "title": "sentinel login",
        "user": "User",
        "password": "Password",
        "login": "Log in",
        "wrong": "Wrong user name or password.",
        "locked": "Too many failed logins. Try again in {wait}.",
        "off": "Nobody can log in right now: the users file is missing or unreadable (see "
        "the daemon's log).",
        "back": "Back to the dashboard",
    },
}


def _networks(trusted: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(t, strict=False) for t in trusted]


def trusted_address(host: str | None, trusted: Sequence[str]) -> bool:
    """`host` is one of the trusted proxies' addresses or networks."""
    if not host or not trusted:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in _networks(trusted))


def client_address(request: web.BaseRequest, trusted: Sequence[str]) -> str:
    """request.remote; behind a trusted proxy, the right-most X-Forwarded-For hop that is
    not itself a trusted proxy (hops to its left are whatever the client claimed)."""
    remote = request.remote or "unknown"
    if not trusted_address(remote, trusted):
        return remote
    hops = [
        h.strip()
        for value in request.headers.getall("X-Forwarded-For", [])
        for h in value.split(",")
    ]
    last = remote
    for hop in reversed([h for h in hops if h]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return last  # not an address: the proxy to its right is all we know
        if not trusted_address(hop, trusted):
            return hop
        last = hop
    return last


def via_tls(request: web.BaseRequest, trusted: Sequence[str]) -> bool:
    """Served over TLS: directly, or X-Forwarded-Proto https from a trusted proxy."""
    if request.secure:
        return True
    if not trusted_address(request.remote, trusted):
        return False
    proto = request.headers.get("X-Forwarded-Proto", "")
    return proto.split(",")[-1].strip().lower() == "https"


def same_origin(request: web.Request) -> bool:
    """False when an Origin header is present and names another site than this one (the
    Host the request came to, or base_url's). No Origin: older browsers and curl; the
    session cookie (SameSite=Strict) and the CSRF token still stand."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    if not netloc:
        return False
    ours = {request.host.lower()}
    base = request.app[CTX].web.base_url
    if base:
        ours.add(urlsplit(base).netloc.lower())
    return netloc in ours


def current_session(request: web.Request) -> Session | None:
    """The request's live session; one whose user was deleted or whose password changed
    since the login has ended."""
    ctx = request.app[CTX]
    session = ctx.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    stamp = ctx.users.stamp(session.user)
    if stamp is None or not hmac.compare_digest(stamp, session.stamp):
        ctx.sessions.end(session.token)
        return None
    return session


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    429: web.HTTPTooManyRequests,
    503: web.HTTPServiceUnavailable,
}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> NoReturn:
    """Ends the request with {"ok": false, "error": message}."""
    raise _ERRORS[status](
        text=json.dumps({"ok": False, "error": message}, ensure_ascii=False),
        content_type="application/json",
        headers=headers,
    )


async def acting_session(request: web.Request) -> Session:
    """The session allowed to change something, or the request ends: 403 for another
    site's Origin, 401 without a session, 403 without the session's CSRF token."""
    if not same_origin(request):
        error(403, "refused: this request came from another site (Origin)")
    session = current_session(request)
    if session is None:
        error(401, "log in first")
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        field = (await request.post()).get(CSRF_FIELD)
        token = field if isinstance(field, str) else None
    if not session.csrf_ok(token):
        error(403, f"refused: missing or wrong {CSRF_HEADER} (reload the page)")
    return session


def session_view(request: web.Request) -> dict[str, Any]:
    """The "web" part of /api/status: who is logged in, and the token the page sends back."""
    ctx = request.app[CTX]
    session = current_session(request)
    return {
        "language": ctx.web.language,
        "view": ctx.web.view,
        "user": session.user if session else None,
        "csrf": session.csrf if session else None,
        "can_act": session is not None,
        "logins": ctx.users.problem is None,
    }


@web.middleware
async def view_guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """view = "login": the dashboard and its data need a session too."""
    ctx = request.app[CTX]
    if ctx.web.view != "login" or request.path.startswith(_OPEN_PATHS):
        return await handler(request)
    if current_session(request) is not None:
        return await handler(request)
    if request.path == "/":
        raise web.HTTPSeeOther("/login")
    error(401, "log in first")


async def _read_login(request: web.Request) -> tuple[str, str, bool]:
    """(user, password, from a form); JSON or a form."""
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except ValueError:
            error(400, 'expected JSON {"user": ..., "password": ...}')
        if not isinstance(data, dict):
            error(400, 'expected JSON {"user": ..., "password": ...}')
        form = False
    else:
        data = dict(await request.post())
        form = True
    user, password = data.get("user"), data.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        error(400, "expected a user and a password")
    return user[:MAX_NAME], password[:MAX_PASSWORD], form


def _wait_text(seconds: float, language: str) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes}분" if language == "ko" else f"{minutes} min"


async def _login(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    if not same_origin(request):
        error(403, "refused: this request came from another site (Origin)")
    address = client_address(request, ctx.web.trusted_proxies)
    user, password, form = await _read_login(request)
    text = _TEXT[ctx.web.language]
    wait = ctx.limiter.begin(address, user)
    if wait is not None:
        # not even checked: while locked, the right password does not get in either
        log.warning("web login refused for %r from %s: locked for %ds", user, address, wait)
        return _login_failed(
            request,
            form,
            429,
            text["locked"].format(wait=_wait_text(wait, ctx.web.language)),
            {"Retry-After": str(math.ceil(wait))},
        )
    try:
        right = await ctx.users.verify(user, password)
    except BaseException:
        ctx.limiter.abandoned(address, user)
        raise
    if right:
        stamp = ctx.users.stamp(user)
        if stamp is not None:  # None: deleted in the 50 ms since the check
            ctx.limiter.succeeded(address, user)
            session = ctx.sessions.start(user, address, stamp)
            log.info("web login: %s from %s", user, address)
            response = web.HTTPSeeOther("/")
            response.set_cookie(
                COOKIE,
                session.token,
                max_age=int(ctx.sessions.ttl),
                path="/",
                httponly=True,
                samesite="Strict",
                secure=via_tls(request, ctx.web.trusted_proxies),
            )
            raise response
    if ctx.users.problem is not None:
        ctx.limiter.abandoned(address, user)
        return _login_failed(request, form, 503, text["off"], {})
    locked = ctx.limiter.failed(address, user)
    log.warning(
        "web login failed for %s from %s%s",
        # a name no user has may be a password typed into the wrong field: not logged
        repr(user) if ctx.users.has(user) else f"an unknown name ({len(user)} characters)",
        address,
        f"; locked for {locked:.0f}s" if locked else "",
    )
    return _login_failed(request, form, 401, text["wrong"], {})


def _login_failed(
    request: web.Request, form: bool, status: int, message: str, headers: dict[str, str]
) -> web.Response:
    if not form:
        return web.json_response({"ok": False, "error": message}, status=status, headers=headers)
    ctx = request.app[CTX]
    return page(
        ctx.web.language,
        _TEXT[ctx.web.language]["title"],
        f"<p>{html.escape(message)}</p>" + _login_form(ctx.web.language),
        status=status,
        headers=headers,
    )


def _login_form(language: str) -> str:
    t = _TEXT[language]
    return (
        '<form method="post" action="/login">'
        f'<p><label>{t["user"]} <input name="user" autocomplete="username" required></label></p>'
        f'<p><label>{t["password"]} <input name="password" type="password" '
        'autocomplete="current-password" required></label></p>'
        f'<p><button type="submit">{t["login"]}</button></p></form>'
    )


async def _login_page(request: web.Request) -> web.Response:
    """The way in without the dashboard's script (view = "login", or a phone without JS)."""
    language = request.app[CTX].web.language
    return page(language, _TEXT[language]["title"], _login_form(language))


async def _logout(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    if not same_origin(request):
        error(403, "refused: this request came from another site (Origin)")
    session = current_session(request)
    if session is not None:
        ctx.sessions.end(session.token)
        log.info("web logout: %s", session.user)
    response = web.HTTPSeeOther("/")
    response.del_cookie(COOKIE, path="/")
    raise response


def page(
    language: str,
    title: str,
    body: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A small self-contained HTML page (the CSP forbids inline styles and scripts)."""
    text = (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f'{body}<p><a href="/">{_TEXT[language]["back"]}</a></p></body></html>'
    )
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=headers
    )


def routes(app: web.Application) -> None:
    app.middlewares.append(view_guard)
    app.router.add_get("/login", _login_page)
    app.router.add_post("/login", _login)
    app.router.add_post("/logout", _logout)
