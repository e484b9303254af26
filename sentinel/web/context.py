"""What every route of the web server shares: the config, the state directory and the one
status snapshot. Stored on the aiohttp application under `CTX`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from sentinel.config import Config
from sentinel.config.web import WebConfig
from sentinel.web.snapshot import Snapshot


@dataclass
class WebContext:
    config: Config
    snapshot: Snapshot
    clock: Callable[[], float] = time.time
    # counters the web component's health reports
    stats: dict[str, Any] = field(default_factory=lambda: {"requests": 0, "streams": 0})

    @property
    def web(self) -> WebConfig:
        assert self.config.web is not None
        return self.config.web

    @property
    def state_dir(self) -> Path:
        return self.config.daemon.state_dir


CTX: web.AppKey[WebContext] = web.AppKey("sentinel", WebContext)
