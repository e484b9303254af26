"""Signed, expiring acknowledge links: `<base_url>/ack/A7F3?exp=<epoch>&sig=<hex>`.

The person paged acknowledges from the SMS itself, without logging in: the signature is the
permission, for that one alarm until `exp`. sig = HMAC-SHA256(key, "A7F3|<exp>"), the first
32 hex characters (128 bits). The key is 32 random bytes in <state_dir>/web-ack.key (0600),
made on first use; deleting it voids every link given out.

The pages behind a link are in sentinel/web/ack_page.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiosqlite

from alerts.event import AlarmEvent, EventType
from sentinel.alarm.ids import normalize
from sentinel.alarm.repository import Enqueue
from sentinel.config import Config

log = logging.getLogger("sentinel.web")

KEY_NAME = "web-ack.key"
KEY_BYTES = 32
SIG_CHARS = 32


class KeyFileError(Exception):
    """The key file exists but may not be used (readable by others, not a file, wrong size)."""


def load_key(state_dir: Path) -> bytes:
    """The key, made on first use. Refuses a key others could read (anyone who reads it can
    acknowledge any alarm) and a symlink in its place."""
    path = state_dir / KEY_NAME
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    tmp = state_dir / f".{KEY_NAME}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        if os.geteuid() == 0:  # `sentinel web ack-link` under sudo: the daemon must read it
            owner = os.stat(state_dir)
            os.fchown(fd, owner.st_uid, owner.st_gid)
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        # whole or absent; fails if another process made one first, which then stands
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise KeyFileError(f"the ack link key {path} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"the ack link key {path} is not a regular file")
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise KeyFileError(
                f"the ack link key {path} is readable by others (mode "
                f"{stat.S_IMODE(st.st_mode):o}); anyone who reads it can acknowledge any "
                "alarm: delete it (a new one is made, old links stop working) or chmod 600"
            )
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != KEY_BYTES:
        raise KeyFileError(
            f"the ack link key {path} holds {len(key)} bytes, not {KEY_BYTES}: delete it "
            "(a new one is made, old links stop working)"
        )
    return key


def signature(key: bytes, alarm_id: str, exp: int) -> str:
    mac = hmac.new(key, f"{normalize(alarm_id)}|{exp}".encode(), hashlib.sha256)
    return mac.hexdigest()[:SIG_CHARS]


class AckLinks:
    """Signs and checks links with the key in `state_dir` (read at first use)."""

    def __init__(self, state_dir: Path, ttl: float, base_url: str) -> None:
        self.state_dir = state_dir
        self.ttl = ttl
        self.base_url = base_url.rstrip("/")
        self._key: bytes | None = None

    def _the_key(self) -> bytes:
        if self._key is None:
            self._key = load_key(self.state_dir)
        return self._key

    def path(self, alarm_id: str, now: float) -> str:
        """`/ack/A7F3?exp=...&sig=...`: valid for `ttl` from `now`."""
        alarm = normalize(alarm_id)
        exp = int(now + self.ttl)
        return f"/ack/{alarm}?exp={exp}&sig={signature(self._the_key(), alarm, exp)}"

    def link(self, alarm_id: str, now: float) -> str | None:
        """The whole link for a message; None without a base_url (a phone cannot follow a
        link without a host)."""
        if not self.base_url:
            return None
        return self.base_url + self.path(alarm_id, now)

    def check(self, alarm_id: str, exp: str | None, sig: str | None, now: float) -> str | None:
        """None when the link is good; else why not ("forged" or "expired"). The signature
        is checked first, so an expiry that was tampered with reads as forged."""
        if not exp or not sig or not exp.isdigit() or len(exp) > 12:
            return "forged"
        expected = signature(self._the_key(), alarm_id, int(exp))
        if not hmac.compare_digest(expected.encode(), sig.lower().encode()):
            return "forged"
        if now >= int(exp):
            return "expired"
        return None


def ack_link(config: Config, alarm_id: str, now: float) -> str | None:
    """The link a message carries for `alarm_id` (None: ack links are off, or the key
    cannot be used, which is logged: the message goes out without it)."""
    web_config = config.web
    if web_config is None or not web_config.ack_links or not web_config.base_url:
        return None
    links = AckLinks(config.daemon.state_dir, web_config.ack_link_ttl, web_config.base_url)
    try:
        return links.link(alarm_id, now)
    except (KeyFileError, OSError) as exc:
        log.error("no ack link in the message: %s", exc)
        return None


# the events that ask a person to act: their pages carry a link
_PAGES = frozenset({EventType.FIRING, EventType.REPEAT, EventType.ESCALATED})


class LinkingEnqueue:
    """Wraps the outbox's `enqueue`: a page that asks for an acknowledgement gets a fresh
    signed link (valid `ack_link_ttl` from when it was queued; each repeat brings a new one).
    A key that cannot be used is logged and the page goes out without a link: a missing
    link must never cost the page itself."""

    def __init__(self, config: Config, enqueue: Enqueue, clock: Callable[[], float]) -> None:
        web_config = config.web
        assert web_config is not None
        self._links = AckLinks(
            config.daemon.state_dir, web_config.ack_link_ttl, web_config.base_url
        )
        self._enqueue = enqueue
        self._clock = clock

    async def __call__(self, db: aiosqlite.Connection, event: AlarmEvent) -> object:
        if event.event in _PAGES and not event.link:
            try:
                link = self._links.link(event.alarm_id, self._clock())
            except (KeyFileError, OSError) as exc:
                log.error("no ack link in the page for %s: %s", event.alarm_id, exc)
            else:
                event = replace(event, link=link or "")
        return await self._enqueue(db, event)


def paging_enqueue(config: Config, enqueue: Enqueue, clock: Callable[[], float]) -> Enqueue:
    """The outbox's `enqueue`, with links in the pages when `[web] ack_links` is on."""
    if config.web is None or not config.web.ack_links:
        return enqueue
    return LinkingEnqueue(config, enqueue, clock)
