"""What every route of the web server shares: the config, the state directory and the one
status snapshot. Stored on the aiohttp application under `CTX`."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from sentinel.alarm.rules import RuleBook
from sentinel.config import Config
from sentinel.config.web import WebConfig
from sentinel.web import history
from sentinel.web.ack_links import AckLinks
from sentinel.web.limiter import LoginLimiter
from sentinel.web.sessions import Sessions
from sentinel.web.snapshot import Snapshot
from sentinel.web.users import USERS_NAME, UserFile

T = TypeVar("T")

# Worker threads for what anyone who reaches the port can ask for (charts, the timeline, the
# scrape). Their own, few: a flood of requests queues here instead of taking the event loop's
# default threads, which the daemon's own work (heartbeat files, replication checks, the
# status snapshot) needs, or more than two cores' worth of CPU.
READ_THREADS = 2


@dataclass
class WebContext:
    config: Config
    snapshot: Snapshot
    clock: Callable[[], float] = time.time
    # counters the web component's health reports
    stats: dict[str, Any] = field(default_factory=lambda: {"requests": 0, "streams": 0})
    # this machine's names the dashboard answers to (sentinel/web/hosts.py); the server
    # adds the fully qualified one at start, resolved in a worker thread
    host_names: frozenset[str] = frozenset()
    # who may act (sentinel/web/auth.py): made from the [web] section in __post_init__
    users: UserFile = field(init=False)
    sessions: Sessions = field(init=False)
    limiter: LoginLimiter = field(init=False)
    links: AckLinks | None = field(init=False)
    reads: ThreadPoolExecutor = field(init=False)
    # the thresholds drawn on the charts, resolved as the engine resolves them
    rules: RuleBook = field(init=False)

    def __post_init__(self) -> None:
        web = self.web
        self.users = UserFile(web.users_file or self.state_dir / USERS_NAME)
        self.sessions = Sessions(web.session_ttl, self.clock)
        self.limiter = LoginLimiter(self.clock)
        self.rules = history.rule_book(self.config)
        self.reads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="sentinel-web")
        self.links = (
            AckLinks(self.state_dir, web.ack_link_ttl, web.base_url) if web.ack_links else None
        )

    async def read(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in one of the web's own worker threads (READ_THREADS)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.reads, functools.partial(work, *args))

    @property
    def web(self) -> WebConfig:
        assert self.config.web is not None
        return self.config.web

    @property
    def state_dir(self) -> Path:
        return self.config.daemon.state_dir


CTX: web.AppKey[WebContext] = web.AppKey("sentinel", WebContext)
