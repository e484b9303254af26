"""One status report shared by every page, stream and scrape.

The dashboard, its live stream and /metrics all show what `sentinel status --json` prints,
built by the same code (sentinel/status.py) from the state database and the live status
file. It is built at most once per `interval`, in a worker thread: ten phones watching must
not mean ten database reads a second, and no read may stall the event loop that delivers
alerts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sentinel.config import Config
from sentinel.status import build_report

log = logging.getLogger("sentinel.web")

INTERVAL = 1.0
# a report that differs only in ages and counters still goes to open streams this often, so
# a phone left open on the page does not pull a report a second over a mobile network
QUIET_PUSH = 15.0
# nobody looked for this long: stop rebuilding until someone does
IDLE_AFTER = 30.0


class Snapshot:
    def __init__(
        self,
        config: Config,
        *,
        interval: float = INTERVAL,
        build: Callable[[Config], dict[str, Any]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._interval = interval
        self._build = build or (lambda c: build_report(c))
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._report: dict[str, Any] | None = None
        self._json = b"null"
        self._built = float("-inf")
        self._wanted = float("-inf")
        self._changed = asyncio.Event()
        self.version = 0
        self._meaning = ""
        self._pushed = float("-inf")
        self.watchers = 0
        self.builds = 0
        self.last_error: str | None = None

    async def report(self) -> dict[str, Any]:
        """The newest report, rebuilt if older than the interval."""
        await self._fresh()
        assert self._report is not None
        return self._report

    async def report_json(self) -> bytes:
        await self._fresh()
        return self._json

    async def _fresh(self) -> None:
        self._wanted = self._monotonic()
        if self._report is not None and self._monotonic() - self._built < self._interval:
            return
        async with self._lock:
            if self._report is not None and self._monotonic() - self._built < self._interval:
                return
            await self._rebuild()

    async def _rebuild(self) -> None:
        try:
            report = await asyncio.to_thread(self._build, self._config)
        except Exception as exc:  # the page says so; it must never show an old report as new
            self.last_error = f"cannot build the status report: {exc}"
            log.error("web: %s", self.last_error)
            report = {"overall": {"state": "UNKNOWN", "reasons": [self.last_error]}}
        else:
            self.last_error = None
        self._report = report
        self._json = json.dumps(report, default=str, ensure_ascii=False).encode()
        self._built = self._monotonic()
        self.builds += 1
        meaning = _meaning(report)
        if meaning == self._meaning and self._built - self._pushed < QUIET_PUSH:
            return
        self._meaning = meaning
        self._pushed = self._built
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def run(self) -> None:
        """Rebuilds every interval while someone watches (a stream is open or a page or
        scrape asked recently), so streams see a leak within about a second."""
        while True:
            idle = self._monotonic() - self._wanted > IDLE_AFTER
            if self.watchers or not idle:
                async with self._lock:
                    await self._rebuild()
            await asyncio.sleep(self._interval)

    async def wait_newer(self, version: int, within: float) -> bool:
        """True when a report newer than `version` exists (waits up to `within` s)."""
        if self.version > version:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), within)
        except TimeoutError:
            return False
        return self.version > version

    def health(self) -> dict[str, Any]:
        return {
            "watchers": self.watchers,
            "report_builds": self.builds,
            "report_error": self.last_error,
        }


# what changes every second without anything having happened: clocks, ages, counters
_VOLATILE = frozenset({"generated", "uptime", "heartbeat_ts", "ts", "last_flush", "components"})


def _meaning(report: dict[str, Any]) -> str:
    """The report without its clocks, ages and counters: what a person would call a change
    (a value, a state, an alarm, a pending count). The components' own counters change with
    every reading; a failing component reaches `overall` and the alarms."""
    return json.dumps(_strip(report), sort_keys=True, default=str)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip(v)
            for k, v in value.items()
            if k not in _VOLATILE and not (k == "age" or k.endswith("_age"))
        }
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
