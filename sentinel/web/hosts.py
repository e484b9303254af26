"""The names the dashboard answers to: against DNS rebinding.

A web page from anywhere can point a name of its own (evil.example) at this host's address,
and its script then reads the dashboard as if it were its own site: status, charts and the
timeline, through the browser of whoever opens that page on a network that reaches the
dashboard. The browser still sends the page's name as Host, so a request for a name this
dashboard was never given is refused. Allowed: an address written as such (no rebinding
goes through an address), localhost, this machine's host name and its fully qualified name
(serverroom-host.county.local, as the resolver gives it at start), base_url's name, and
[web] hosts. Not any name that merely begins with the host name: serverroom-host.evil.example
is anyone's to register. /healthz and /metrics
answer to any name: monitoring addresses them by whatever name it has, and /metrics is open
by design (docs/web.md).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sentinel.web.context import CTX

_ANY_NAME = ("/healthz", "/metrics")


def _name(host: str) -> str:
    """`host` as sent (name:port, [v6]:port) without its port, lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def this_host() -> frozenset[str]:
    """This machine's host name and its fully qualified name. getfqdn may ask the resolver
    (seconds when DNS is down): call it off the event loop, once."""
    return frozenset(n.lower().rstrip(".") for n in (socket.gethostname(), socket.getfqdn()))


def allowed_names(base_url: str, hosts: Iterable[str], here: Iterable[str] = ()) -> frozenset[str]:
    names = {"localhost", socket.gethostname().lower(), *here}
    if base_url:
        names.add((urlsplit(base_url).hostname or "").lower())
    names.update(h.strip().lower() for h in hosts)
    names.discard("")
    return frozenset(names)


def answers_to(host: str | None, names: frozenset[str]) -> bool:
    if not host:
        return True  # HTTP/1.0 without Host: not a browser
    name = _name(host).rstrip(".")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return True
    return name in names


@web.middleware
async def host_guard(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path in _ANY_NAME:
        return await handler(request)
    ctx = request.app[CTX]
    names = allowed_names(ctx.web.base_url, ctx.web.hosts, ctx.host_names)
    host = request.headers.get("Host")
    if answers_to(host, names):
        return await handler(request)
    name = _name(host or "")
    raise web.HTTPMisdirectedRequest(
        text=json.dumps(
            {
                "ok": False,
                "error": f"this dashboard does not answer to the name {name!r}: add it to "
                "[web] hosts (or base_url) if people reach it by that name",
            }
        ),
        content_type="application/json",
    )
