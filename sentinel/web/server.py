"""The web server as one supervised component of the daemon: it binds, serves, and keeps
the shared status snapshot fresh. A bind that fails (port taken, address gone) is a crash
the supervisor restarts and, repeated, pages about: a dashboard nobody can reach must not
look like a quiet room."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from sentinel.config import Config
from sentinel.web.app import build_app
from sentinel.web.context import WebContext
from sentinel.web.snapshot import Snapshot

log = logging.getLogger("sentinel.web")

# the daemon's stop steps get 4 s each; open streams are cut, not waited for
SHUTDOWN_TIMEOUT = 1.0


class WebServer:
    name = "web"

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        assert config.web is not None
        self.config = config
        self.context = WebContext(config=config, snapshot=Snapshot(config), clock=clock)
        self.urls: list[str] = []
        self.last_error: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        web_config = self.config.web
        assert web_config is not None
        if web_config.tls_cert is None or web_config.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(web_config.tls_cert, web_config.tls_key)
        return context

    async def run(self) -> None:
        web_config = self.config.web
        assert web_config is not None
        # a fresh application per start: aiohttp does not start a cleaned-up one again
        runner = web.AppRunner(
            build_app(self.context),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            handle_signals=False,
        )
        await runner.setup()
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
            await asyncio.shield(runner.cleanup())

    def health(self) -> dict[str, Any]:
        return {
            "urls": list(self.urls),
            "last_error": self.last_error,
            # why nobody can log in (no users file, unreadable, empty); viewing still works
            "users_problem": self.context.users.problem,
            **self.context.stats,
            **self.context.snapshot.health(),
        }


def _url(scheme: str, address: Any) -> str:
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}/"
