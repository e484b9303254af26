"""Failed logins, counted per client address and per user name, lock both out for a while.

FAILURES failures within WINDOW lock the address (or the name) for LOCK; each further lock
within a day doubles, up to MAX_LOCK. While locked, no password is even checked, so the
right password does not get in either, and a success elsewhere does not lift an address's
lock early. A locked user name is a way to keep that user out for a while; that is the
price of slowing down guessing of a known name from many addresses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

FAILURES = 5
WINDOW = 300.0
LOCK = 300.0
MAX_LOCK = 86400.0
# a key quiet this long starts afresh (its locks stop doubling)
FORGET = 86400.0
# Retry-After while earlier attempts of the same address or name are still being checked
BUSY = 2.0
# entries kept at most (a bound on memory under a flood of made-up names or addresses)
MAX_KEYS = 10000


@dataclass(slots=True)
class _Record:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0
    locks: int = 0
    last: float = 0.0
    # attempts being checked right now: counted as failures until they are known, so
    # attempts sent all at once cannot each pass before the first of them has failed
    checking: int = 0


class LoginLimiter:
    def __init__(
        self,
        clock: Callable[[], float],
        failures: int = FAILURES,
        window: float = WINDOW,
        lock: float = LOCK,
        max_lock: float = MAX_LOCK,
    ) -> None:
        self._clock = clock
        self._failures = failures
        self._window = window
        self._lock = lock
        self._max_lock = max_lock
        self._records: dict[tuple[str, str], _Record] = {}

    def retry_after(self, address: str, user: str) -> float | None:
        """Seconds until this address and this name may try again (None: they may now)."""
        now = self._clock()
        waits = [
            r.locked_until - now
            for r in (self._records.get(k) for k in _keys(address, user))
            if r is not None and r.locked_until > now
        ]
        return max(waits) if waits else None

    def begin(self, address: str, user: str) -> float | None:
        """Before a check: None, and the attempt counts as checking until `failed` or
        `succeeded`; or the seconds to wait (locked, or the attempts already being checked
        would use up what is left of the limit)."""
        wait = self.retry_after(address, user)
        if wait is not None:
            return wait
        now = self._clock()
        records = [self._record(key, now) for key in _keys(address, user)]
        for record in records:
            recent = sum(1 for t in record.failures if now - t < self._window)
            if recent + record.checking >= self._failures:
                return BUSY
        for record in records:
            record.checking += 1
            record.last = now
        return None

    def _done(self, address: str, user: str) -> None:
        for key in _keys(address, user):
            record = self._records.get(key)
            if record is not None and record.checking > 0:
                record.checking -= 1

    def failed(self, address: str, user: str) -> float | None:
        """Counts a failure; returns the lock it started (seconds), if it started one."""
        self._done(address, user)
        now = self._clock()
        started = None
        for key in _keys(address, user):
            record = self._record(key, now)
            record.failures = [t for t in record.failures if now - t < self._window]
            record.failures.append(now)
            record.last = now
            if len(record.failures) >= self._failures and record.locked_until <= now:
                lock = min(self._lock * 2**record.locks, self._max_lock)
                record.locks += 1
                record.locked_until = now + lock
                record.failures.clear()
                started = max(started or 0.0, lock)
        return started

    def succeeded(self, address: str, user: str) -> None:
        """A right password clears the name's failures; the address's stay as they are."""
        self._done(address, user)
        record = self._records.get(("user", user))
        if record is not None and record.locked_until <= self._clock() and not record.checking:
            del self._records[("user", user)]

    def abandoned(self, address: str, user: str) -> None:
        """The check did not happen (the users file is gone): neither failure nor success."""
        self._done(address, user)

    def _record(self, key: tuple[str, str], now: float) -> _Record:
        record = self._records.get(key)
        if (
            record is not None
            and now - record.last >= FORGET
            and record.locked_until <= now
            and not record.checking
        ):
            record = None
        if record is None:
            if len(self._records) >= MAX_KEYS:
                self._prune(now)
            record = self._records[key] = _Record()
        return record

    def _prune(self, now: float) -> None:
        """Drops a tenth of the entries that lock nothing, oldest first (a tenth at once, so
        a flood does not sort the table at every new name)."""
        idle = sorted(
            (r.last, k)
            for k, r in self._records.items()
            if r.locked_until <= now and not r.checking
        )
        for _, key in idle[: max(1, MAX_KEYS // 10)]:
            del self._records[key]
        while len(self._records) >= MAX_KEYS:  # every entry locks: drop the oldest anyway
            del self._records[next(iter(self._records))]


def _keys(address: str, user: str) -> tuple[tuple[str, str], tuple[str, str]]:
    return ("address", address), ("user", user)
