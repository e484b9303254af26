"""The interface every sensor source offers, and the retry/log helpers they share."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, runtime_checkable

from common import retry
from sensors.reading import Reading

# Retry timing shared by every transport unless its config says otherwise.
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0
# A repeated problem (the same malformed payload every second) is logged at most this often.
LOG_INTERVAL = 60.0


@runtime_checkable
class Source(Protocol):
    """A transport that turns a device's messages into `Reading`s of configured sensors.

    `readings()` is an async generator that runs forever: it reconnects and retries inside
    (exponential backoff with jitter) and never ends on its own. `health()` is cheap,
    JSON-ready and free of secrets.
    """

    name: str

    def readings(self) -> AsyncIterator[Reading]: ...

    def health(self) -> dict[str, Any]: ...


class Backoff:
    """A transport's reconnect delays (common/retry.py): initial, x2, ... capped at maximum,
    each within ±jitter of its base; reset on success."""

    def __init__(
        self,
        initial: float = BACKOFF_INITIAL,
        maximum: float = BACKOFF_MAX,
        *,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"bad backoff: initial={initial}, maximum={maximum}")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng or random.Random()
        # jitter both ways spreads reconnect storms when many clients lose one broker at once
        self._retries = retry.Retries(retry.Backoff(initial, maximum, retry.spread(jitter)))

    def next(self) -> float:
        return self._retries.next(self._rng.random())

    def reset(self) -> None:
        self._retries.reset()


class RateLimitedLog:
    """Logs each distinct problem at most once per interval, with a count of the silenced ones."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        if len(self._last) > 1000:
            # Keys come from device data; never let them grow without bound.
            self._last.clear()
            self._suppressed.clear()
        self._last[key] = now
        silenced = self._suppressed.pop(key, 0)
        suffix = f" ({silenced} more like this since the last report)" if silenced else ""
        self._logger.warning("%s%s", message, suffix)
