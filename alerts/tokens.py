"""KakaoTalk's rotated refresh token, kept in the state database across restarts.

Apprise's `kakaotalk://` plugin trades the URL's refresh token for access tokens, and Kakao
hands out a new refresh token once the old one has under a month left; the old one then
stops working. The plugin keeps the new one in its PersistentStore, which sentinel gives no
path, so it would die with the process and the channel with the next restart (~60 days on).

Here each Kakao channel's plugin is wrapped: before each send its store is seeded with the
newest token saved in place of its URL's token (table `alert_token`, one row per
Channel.key; any channel's row counts, as two channels may share one token and a rotation
by either retires it for both), after the send a token that changed is saved. Both happen
in Apprise's worker thread with a short sqlite3 connection of their own (WAL: the daemon's
writer is not held up), so the token is on disk before the send counts as done. A row is
only used while the URL still holds the token it replaced (`configured` is that token's
SHA-256): an operator who pastes a fresh token into the URL gets that one, not an older
rotated one.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from alerts.channels import LOG_GUARD, Channel

log = logging.getLogger("sentinel.alerts")

KAKAO_SCHEMES = frozenset({"kakao", "kakaotalk"})
STORE_KEY = "refresh_token"  # the plugin's own key in its PersistentStore
BUSY_TIMEOUT = 5.0
# the kakaotalk plugin's own check of a refresh token
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenKeeper:
    """Keeps the refresh tokens of a process's Kakao channels in the database at `db_path`."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._lock = threading.Lock()

    def attach(self, channels: Sequence[Channel]) -> int:
        """Wraps the send of every Kakao channel's plugin; returns how many there were."""
        kept = 0
        for channel in channels:
            if channel.schema not in KAKAO_SCHEMES:
                continue
            for service in channel.apprise:
                if getattr(service, "refresh_token", None):
                    # this instance only: Apprise's dispatch calls self.send
                    service.send = self._keeping(  # type: ignore[method-assign]
                        channel, service, service.send
                    )
                    kept += 1
        return kept

    def _keeping(
        self, channel: Channel, service: Any, send: Callable[..., bool]
    ) -> Callable[..., bool]:
        configured = fingerprint(str(service.refresh_token))
        # the `saved` time of the newest token this plugin holds: a row no newer is not
        # seeded again (after a failed save, the plugin's own token is the newer one)
        held = [0.0]

        def send_and_keep(*args: Any, **kwargs: Any) -> bool:
            # before every send, not only the first: another channel with the same URL
            # token may have rotated it since, which retired the one this plugin holds
            self._seed(channel, service, configured, held)
            before = service.store.get(STORE_KEY)
            try:
                return send(*args, **kwargs)
            finally:
                # Kakao may rotate it even when the message itself then fails
                after = service.store.get(STORE_KEY)
                if after and after != before:
                    LOG_GUARD.add([str(after)])
                    held[0] = max(held[0], time.time())
                    self._save(channel, configured, str(after))

        return send_and_keep

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: never create a database where the daemon has none (an in-memory store)
        conn = sqlite3.connect(
            f"file:{self.db_path}?mode=rw", uri=True, timeout=BUSY_TIMEOUT, isolation_level=None
        )
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        return conn

    def _seed(self, channel: Channel, service: Any, configured: str, held: list[float]) -> None:
        """Gives the plugin the newest token saved in place of its URL's, by any channel:
        two channels may carry the same token (one to "me", one to friends)."""
        try:
            with self._lock:
                conn = self._connect()
                try:
                    row = conn.execute(
                        "SELECT token, saved FROM alert_token WHERE configured = ? "
                        "ORDER BY saved DESC LIMIT 1",
                        (configured,),
                    ).fetchone()
                finally:
                    conn.close()
        except sqlite3.Error as exc:
            log.warning(
                "alerts: %s: cannot read its saved refresh token (%s); using the URL's",
                channel.display,
                exc,
            )
            return
        if not row or not isinstance(row[1], int | float) or row[1] <= held[0]:
            return
        token = row[0]
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            # a damaged row would be sent to Kakao on every retry; the URL's may still work
            log.warning(
                "alerts: %s: its saved refresh token is not a token (damaged row); using the URL's",
                channel.display,
            )
            held[0] = row[1]
            return
        LOG_GUARD.add([token])
        service.store.set(STORE_KEY, token)
        held[0] = row[1]

    def _save(self, channel: Channel, configured: str, token: str) -> None:
        try:
            with self._lock:
                conn = self._connect()
                try:
                    conn.execute(
                        "INSERT INTO alert_token(channel, configured, token, saved) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT(channel) DO UPDATE SET "
                        "configured = excluded.configured, token = excluded.token, "
                        "saved = excluded.saved",
                        (channel.key, configured, token, time.time()),
                    )
                finally:
                    conn.close()
        except sqlite3.Error as exc:
            # the token works until this process ends; the next restart would lose it
            log.error(
                "alerts: %s: Kakao rotated its refresh token and it could not be saved "
                "(%s): the channel stops working at the next restart unless a new token is "
                "put in its URL",
                channel.display,
                exc,
            )
            return
        log.info("alerts: %s: Kakao rotated its refresh token; saved", channel.display)
