"""The web server as one supervised component of the daemon: it binds, serves, and keeps
the shared status snapshot fresh. A bind that fails (port taken, address gone) is a crash
the supervisor restarts and, repeated, pages about: a dashboard nobody can reach must not
look like a quiet room."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from sentinel.config import Config
from sentinel.web import hosts
from sentinel.web.app import build_app
from sentinel.web.auth import trusted_address
from sentinel.web.context import WebContext
from sentinel.web.snapshot import Snapshot

log = logging.getLogger("sentinel.web")

# the daemon's stop steps get 4 s each; open streams are cut, not waited for
SHUTDOWN_TIMEOUT = 1.0
# Every connection holds a file descriptor of the daemon's own, and systemd's default limit
# is 1024: idle connections from a neighbour must not leave none for the state database,
# the alert channels' sockets or rsync (measured: 1024 idle sockets and the leak's page was
# set aside as undeliverable). A browser opens at most six per host; a proxy (trusted_proxies)
# and this host itself (loopback) carry many people's, so only the total limits them.
MAX_CONNECTIONS = 256
PER_ADDRESS = 32
# a connection with no request in flight for this long is closed (aiohttp's own default
# here is an hour, from the moment of connecting, whether or not a request ever comes)
IDLE_TIMEOUT = 75.0
# "refused connections" goes to the log at most this often (a flood must not flood the log)
REFUSED_LOG_EVERY = 60.0


class _CappedServer(web.Server):
    """aiohttp's connection manager, closing a connection beyond the limits as it arrives."""

    max_connections: int
    per_address: int
    trusted: list[str]
    refused: int
    _logged: float

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        host = _host(transport)
        total = len(self._connections)
        crowded = total > self.max_connections
        if not crowded and not _shared(host, self.trusted):
            same = sum(1 for t in self._connections.values() if _host(t) == host)
            crowded = same > self.per_address
        if not crowded:
            return
        self.refused += 1
        handler.force_close()
        transport.abort()  # the descriptor is freed now, not after a goodbye
        now = time.monotonic()
        if now - self._logged >= REFUSED_LOG_EVERY:
            self._logged = now
            log.warning(
                "web: refusing connections (%d open, at most %d, %d per address); "
                "%d refused so far; the last from %s",
                total - 1,
                self.max_connections,
                self.per_address,
                self.refused,
                host,
            )


class _Runner(web.AppRunner):
    """An AppRunner whose connection manager keeps to the limits above."""

    def __init__(self, app: web.Application, trusted: list[str], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.trusted = trusted

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp makes its Server itself; only its connection_made changes here
        server.__class__ = _CappedServer
        capped = cast(_CappedServer, server)
        capped.max_connections = MAX_CONNECTIONS
        capped.per_address = PER_ADDRESS
        capped.trusted = self.trusted
        capped.refused = 0
        capped._logged = float("-inf")
        return capped


def _shared(host: str | None, trusted: list[str]) -> bool:
    """An address many people legitimately come from: a trusted proxy, or this host itself
    (a proxy on loopback, the demo, several pages on the same machine)."""
    if trusted_address(host, trusted):
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class WebServer:
    name = "web"

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        assert config.web is not None
        self.config = config
        self.context = WebContext(config=config, snapshot=Snapshot(config), clock=clock)
        self.urls: list[str] = []
        self.last_error: str | None = None
        self._runner: _Runner | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        web_config = self.config.web
        assert web_config is not None
        if web_config.tls_cert is None or web_config.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        key = web_config.tls_key

        def no_passphrase() -> bytes:
            # without this OpenSSL asks for it on the terminal, and the daemon's whole loop,
            # alarms and alerts included, waits for someone to type it
            raise ssl.SSLError(
                f"the TLS key {key} is encrypted: the daemon cannot type its passphrase; "
                "keep it unencrypted, readable by the daemon's user only (mode 0600)"
            )

        try:
            context.load_cert_chain(web_config.tls_cert, key, password=no_passphrase)
        except OSError as exc:
            if "encrypted" in str(exc):
                raise
            # OpenSSL's own words name neither file ("No such file", "PEM lib")
            raise ssl.SSLError(
                f"cannot load the TLS certificate {web_config.tls_cert} with the key {key} "
                f"([web] tls_cert, tls_key): {exc.strerror or exc}"
            ) from None
        return context

    async def run(self) -> None:
        web_config = self.config.web
        assert web_config is not None
        self.context.host_names = await asyncio.to_thread(hosts.this_host)
        # a fresh application per start: aiohttp does not start a cleaned-up one again
        runner = _Runner(
            build_app(self.context),
            list(web_config.trusted_proxies),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            handle_signals=False,
            keepalive_timeout=IDLE_TIMEOUT,
        )
        await runner.setup()
        self._runner = runner
        try:
            try:
                site = web.TCPSite(
                    runner,
                    web_config.listen,
                    web_config.port,
                    ssl_context=self.ssl_context(),
                    reuse_address=True,
                )
                await site.start()
            except (OSError, ssl.SSLError) as exc:
                self.last_error = (
                    f"cannot serve the dashboard on {web_config.listen}:{web_config.port}: {exc}"
                )
                raise
            self.last_error = None
            scheme = "https" if web_config.tls else "http"
            self.urls = [_url(scheme, addr) for addr in runner.addresses]
            log.info("web: dashboard at %s", ", ".join(self.urls))
            await self.context.snapshot.run()
        finally:
            self.urls = []
            self._runner = None
            await asyncio.shield(runner.cleanup())

    def health(self) -> dict[str, Any]:
        return {
            "urls": list(self.urls),
            "last_error": self.last_error,
            # why nobody can log in (no users file, unreadable, empty); viewing still works
            "users_problem": self.context.users.problem,
            "connections": self.connections(),
            "refused_connections": self.refused_connections(),
            **self.context.stats,
            **self.context.snapshot.health(),
        }

    def connections(self) -> int:
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    def refused_connections(self) -> int:
        server = self._runner.server if self._runner is not None else None
        return server.refused if isinstance(server, _CappedServer) else 0


def _url(scheme: str, address: Any) -> str:
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}/"
