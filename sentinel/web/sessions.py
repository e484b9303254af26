"""Login sessions: a random token in the `sentinel_session` cookie, looked up in memory.

Held only in the daemon's memory, so a daemon restart logs everyone out (docs/web.md says
so): nothing secret is written to disk, and a stolen cookie dies with the process. Each
session has its own CSRF token, which the page sends back in a header on every POST.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "sentinel_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
# more than this many live sessions: the oldest end first (a bound on memory, whoever logs in)
MAX_SESSIONS = 1000


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    user: str
    csrf: str
    address: str
    # the user's password hash as it was at login (UserFile.stamp): a changed password, or a
    # deleted user, ends the session
    stamp: str
    started: float
    expires: float

    def csrf_ok(self, sent: str | None) -> bool:
        """Compared in constant time: the time taken says nothing about the token."""
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        self._by_token: dict[str, Session] = {}

    def __len__(self) -> int:
        self._expire()
        return len(self._by_token)

    def start(self, user: str, address: str, stamp: str) -> Session:
        self._expire()
        while len(self._by_token) >= MAX_SESSIONS:
            del self._by_token[next(iter(self._by_token))]  # dicts keep insertion order
        now = self._clock()
        session = Session(
            token=secrets.token_urlsafe(32),
            user=user,
            csrf=secrets.token_urlsafe(32),
            address=address,
            stamp=stamp,
            started=now,
            expires=now + self.ttl,
        )
        self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        if self._clock() >= session.expires:
            del self._by_token[token]
            return None
        return session

    def end(self, token: str | None) -> bool:
        return token is not None and self._by_token.pop(token, None) is not None

    def end_user(self, user: str) -> int:
        """Ends every session of `user` (removed from the users file, or password changed)."""
        gone = [t for t, s in self._by_token.items() if s.user == user]
        for token in gone:
            del self._by_token[token]
        return len(gone)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._by_token.items() if now >= s.expires]:
            del self._by_token[token]
