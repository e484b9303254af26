"""Apprise channels loaded from Apprise's own YAML config: one `Channel` per notification URL.

Each URL is its own channel with its own outbox rows, so a slow or failing one never holds
up the others. A channel is known everywhere by `key`, derived from its masked URL (never
from the secret-bearing one), so keys are stable across restarts and config reordering.

Which message form a channel gets (see `Channel.form`):
- tag `sms` -> SMS form; tag `lms` -> long form (tags win);
- otherwise `json://`, `form://` (SMS gateways' HTTP APIs), the Korean SMS gateways
  (`aligo://`, `nhnsms://`, `solapi://`: alerts/gateways/) and `kakao://` (200 chars)
  get the SMS form; every other scheme (mail, messengers, console, file) the long form.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
import yaml
from apprise.common import ConfigFormat
from apprise.config.base import ConfigBase

from alerts import gateways, plugins
from common.redaction import (
    MASK,
    MIN_SECRET_LENGTH,
    SECRET_NAME,
    URL,
    is_real_host,
    registrable_parts,
    scrub,
    worth_masking,
)

SMS_SCHEMES = frozenset({"json", "jsons", "form", "forms", "kakao", "kakaotalk"})
# an SMS agent's queue table (alerts/sms_agent.py); tag `lms` to use its long-message table
SMS_SCHEMES |= plugins.SMS_AGENT_SCHEMES
# the Korean SMS gateways' HTTP APIs (alerts/gateways/)
SMS_SCHEMES |= gateways.SCHEMES
# SMS through a USB modem (alerts/modem/)
SMS_SCHEMES |= {"modem"}
SMS_TAG = "sms"
LMS_TAG = "lms"
# Apprise itself treats this tag as "matches every filter"; we honour it the same way.
ALWAYS_TAG = "always"
REDACTED = MASK

# Apprise's privacy forms of a secret: "t...9" (first and last character), "...abcd" (the
# last four)
_ABBREVIATED = re.compile(r"[^/:@?&=]*\.\.\.[^/:@?&=]*")
_DEFAULT_ARGS = frozenset(
    {
        "method",
        "overflow",
        "retry",
        "wait",
        "optional",
        "format",
        "verify",
        "rto",
        "cto",
        "image",
        "detect",
        "silent",
        "preview",
        "album",
        "content",
        "mdv",
        "emojis",
        "store",
        "tz",
        "avatar",
        "mode",
        "priority",
        "batch",
    }
)
_SPLIT = re.compile(r"[/:@?&=#+,;\s]+")


class ChannelConfigError(ValueError):
    """The Apprise config cannot be used (missing, unreadable, or holds no valid URL)."""


@dataclass(frozen=True)
class Channel:
    """One notification URL: how to reach it, how to name it safely, which tags it has."""

    key: str
    index: int
    display: str  # masked URL: safe for logs, status and the CLI
    service: str  # Apprise's service name, e.g. "JSON", "Telegram"
    schema: str
    tags: frozenset[str]
    apprise: apprise.Apprise = field(repr=False, compare=False)
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def form(self) -> str:
        if SMS_TAG in self.tags:
            return "sms"
        if LMS_TAG in self.tags:
            return "long"
        return "sms" if self.schema in SMS_SCHEMES else "long"

    def matches(self, route: Iterable[str]) -> bool:
        """Whether this channel receives a message routed to these tags.

        A channel without tags receives everything (a one-URL config just works), and so
        does one tagged `always`, as in Apprise.
        """
        if not self.tags or ALWAYS_TAG in self.tags:
            return True
        return not self.tags.isdisjoint(route)

    def scrub(self, text: str) -> str:
        """The text with every secret of this channel's URL replaced by ****."""
        return scrub(text, self.secrets)


# Loggers that may print a URL with its secrets: Apprise's own (its privacy URLs keep json://
# header and argument values) and urllib3's request lines (they carry the query string).
GUARDED_LOGGERS = (
    "apprise",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.util.retry",
)


class SecretFilter(logging.Filter):
    """Scrubs every known channel secret from log records of the guarded loggers.

    Apprise logs each URL it loads ("Loaded URL: ...") before we can know its secrets, so
    those records are dropped outright.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets = tuple(sorted(set(self._secrets) | set(secrets), key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "apprise" and str(record.msg).startswith("Loaded URL"):
            return False
        text = record.getMessage()
        # Apprise's privacy form of a secret keeps its first and last character ("Z...r");
        # a URL it could not load was never registered here: show none of either
        clean = URL.sub(lambda m: _ABBREVIATED_IN_URL.sub(REDACTED, m.group(0)), text)
        if self._secrets:
            clean = scrub(clean, self._secrets)
        if clean != text:
            record.msg, record.args = clean, None
        return True


_ABBREVIATED_IN_URL = re.compile(r"[^/:@?&=#]*\.\.\.[^/:@?&=#]*")


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Drops a logger's records for a while: its lines would repeat our own clearer one."""
    logger, drop = logging.getLogger(name), _DropAll()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


LOG_GUARD = SecretFilter()


def guard_logs() -> None:
    """Installs the one process-wide `LOG_GUARD` on every guarded logger (idempotent)."""
    for name in GUARDED_LOGGERS:
        logger = logging.getLogger(name)
        if LOG_GUARD not in logger.filters:
            logger.addFilter(LOG_GUARD)


def load_channels(path: Path) -> list[Channel]:
    """Every URL in the Apprise YAML/text config at `path`, as channels in file order.

    Also teaches the process-wide log guard the channels' secrets.
    """
    plugins.register()
    guard_logs()
    if not path.exists():
        raise ChannelConfigError(f"{path}: Apprise config file not found")
    # before Apprise parses it: its own line for a URL it cannot parse may print the URL
    refused, total = _check_entries(path)
    if refused:
        none = "holds no valid notification URL: " if len(refused) == total else ""
        raise ChannelConfigError(
            f"{path}: {none}Apprise cannot load " + "; ".join(refused) + " (check the "
            "scheme's spelling and the URL's form; a channel Apprise cannot load reaches "
            "nobody)"
        )
    config = apprise.AppriseConfig()
    if not config.add(str(path)):
        raise ChannelConfigError(f"{path}: not a usable Apprise config file")
    loader = apprise.Apprise()
    loader.add(config)
    services = list(loader)
    if not services:
        raise ChannelConfigError(
            f"{path}: holds no valid notification URL (check each URL's spelling; Apprise "
            "skips URLs it cannot parse)"
        )
    return channels_from_services(services)


def unloadable_entries(path: Path) -> list[str]:
    """Each notification URL in the config that Apprise cannot load, by its position and
    masked ("urls entry 2 (line 5): jsonz://127.0.0.1:8080/****"). Apprise itself skips
    such a URL with a log line and loads the rest, so a typo would drop a channel
    silently; each entry is parsed alone here, by Apprise's own parser, to say which."""
    return _check_entries(path)[0]


def _check_entries(path: Path) -> tuple[list[str], int]:
    """The refused entries, and how many URL entries the file has."""
    plugins.register()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return [], 0  # the loader reports an unreadable file
    with _quiet("apprise"):
        fmt = ConfigBase.detect_config_format(text)
        if fmt == ConfigFormat.YAML:
            return _unloadable_yaml(text)
        if fmt == ConfigFormat.TEXT:
            return _unloadable_text(text)
    return [], 0


def _unloadable_yaml(text: str) -> tuple[list[str], int]:
    try:
        document = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError:
        return [], 0  # the loader reports a file that is not YAML
    if not isinstance(document, dict) or not isinstance(document.get("urls"), list):
        return [], 0
    lines: list[int | None] = [None] * len(document["urls"])
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "urls" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    rest = {k: v for k, v in document.items() if k not in ("urls", "include")}
    refused = []
    for number, entry in enumerate(document["urls"], start=1):
        alone = yaml.safe_dump({**rest, "urls": [entry]})
        servers, _ = ConfigBase.config_parse_yaml(alone, asset=apprise.AppriseAsset())
        if not servers:
            line = lines[number - 1] if number <= len(lines) else None
            where = f"urls entry {number}" + (f" (line {line})" if line else "")
            refused.append(f"{where}: {_masked_entry(entry)}")
    return refused, len(document["urls"])


def _unloadable_text(text: str) -> tuple[list[str], int]:
    refused, total = [], 0
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if "://" not in entry or entry[:1] in "#;" or entry.lower().startswith("include"):
            continue
        total += 1
        servers, _ = ConfigBase.config_parse_text(entry, asset=apprise.AppriseAsset())
        if not servers:
            refused.append(f"line {number}: {_masked_entry(entry)}")
    return refused, total


def _masked_entry(entry: object) -> str:
    """An entry's URL shown by its scheme and a real host only: nothing else of a URL that
    failed to parse can be told apart from its secrets."""
    url = ""
    if isinstance(entry, str):
        url = entry
    elif isinstance(entry, dict):
        url = next((k for k in entry if isinstance(k, str) and "://" in k), "")
    head = url.split("://", 1)[0]
    if "=" in head:  # a TEXT line's "tags=" prefix
        url = url[len(head.split("=", 1)[0]) + 1 :]
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        return "an entry without a URL"
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    shown = host if is_real_host(host) else REDACTED
    why = plugins.refusal(url.strip())  # our own plugins can say why, without secrets
    return f"{scheme.strip()}://{shown}/{REDACTED}" + (f" ({why})" if why else "")


def channels_from_services(services: Sequence[apprise.plugins.NotifyBase]) -> list[Channel]:
    channels: list[Channel] = []
    fulls = [_full_url(service) for service in services]
    displays = [
        mask_url(full, service.url(privacy=True))
        for full, service in zip(fulls, services, strict=True)
    ]
    keys = _keys(fulls, displays)
    for index, service in enumerate(services):
        full, display = fulls[index], displays[index]
        secrets = _secrets(full, service.url(privacy=True), display)
        single = apprise.Apprise()
        single.add(service)
        LOG_GUARD.add(secrets)
        channels.append(
            Channel(
                key=keys[index],
                index=index,
                display=display,
                service=str(getattr(service, "service_name", "") or service.secure_protocol),
                schema=_schema(full),
                tags=frozenset(str(t) for t in service.tags),
                apprise=single,
                secrets=secrets,
            )
        )
    return channels


def _keys(fulls: Sequence[str], displays: Sequence[str]) -> list[str]:
    """Each channel's key: a digest of its masked URL, never of the secret one. Channels
    whose masked URLs are the same (json://host/****, tokens differ) are numbered in the
    order of their full URLs' hashes, so reordering the file keeps every key."""
    digests = [hashlib.sha256(d.encode()).hexdigest()[:10] for d in displays]
    rank = sorted(range(len(fulls)), key=lambda i: hashlib.sha256(fulls[i].encode()).digest())
    seen: dict[str, int] = {}
    keys = [""] * len(fulls)
    for i in rank:
        seen[digests[i]] = seen.get(digests[i], 0) + 1
        keys[i] = digests[i] if seen[digests[i]] == 1 else f"{digests[i]}.{seen[digests[i]]}"
    return keys


def _full_url(service: apprise.plugins.NotifyBase) -> str:
    full = str(service.url(privacy=False))
    given = getattr(service, "_default_args", {}).get("url")
    if full.endswith("://") and _schema(full) not in plugins.OWN_SCHEMES and given:
        return str(given)  # a county's @notify plugin: Apprise keeps the URL it was given
    if full.endswith("://"):
        # custom plugins (console://, sentinelfile://) give back only their scheme
        host = getattr(service, "host", None) or ""
        path = getattr(service, "fullpath", None) or ""
        if host or path.strip("/"):
            full = f"{full}/{host}{path}" if host else f"{full}{path}"
    return full


def mask_url(full: str, private: str) -> str:
    """Apprise's privacy URL with nothing of a secret left in it.

    Only the scheme, the user name, a real host name and its port, and harmless query
    arguments stay readable. Every path segment is hidden: webhook and gateway tokens live
    in the path, and a short token ("hook/s3cr3t") looks no different from a word. Apprise's
    own `t...9` abbreviations (first and last character) are hidden too, and custom headers
    (`+X-Token=`) and payload args (`-key=`) of json/form go entirely.
    """
    if private.endswith("://") and _schema(full) in plugins.OWN_SCHEMES:
        # our own plugins print only their scheme; their targets (files) are not secret
        return full
    if private.endswith("://"):
        private = full  # a county's @notify plugin: masked like any URL
    parts = urlsplit(private)
    path = "/".join(REDACTED if s else s for s in parts.path.split("/")).rstrip("/")
    netloc = _ABBREVIATED.sub(REDACTED, parts.netloc)
    if parts.password and parts.password != REDACTED:
        netloc = netloc.replace(f":{parts.password}@", f":{REDACTED}@")
    host = parts.hostname or ""
    if host and not is_real_host(f"[{host}]" if ":" in host else host):
        # a token where the host goes (tgram://BOTTOKEN, kakao://KEY, discord://ID)
        netloc = netloc.replace(host, REDACTED, 1)
    # keep what tells two channels apart (e.g. ?to=010...), drop Apprise's own defaults
    # and anything that may carry a credential
    kept = [
        f"{name}={REDACTED}"
        if name[:1] in "+-:" or SECRET_NAME.search(name) or _ABBREVIATED.fullmatch(value)
        else f"{name}={value}"
        for name, value in parse_qsl(parts.query)
        if name not in _DEFAULT_ARGS
    ]
    query = f"?{'&'.join(kept)}" if kept else ""
    return f"{parts.scheme}://{netloc}{path}{query}"


def _secrets(full: str, private: str, display: str) -> tuple[str, ...]:
    """Parts of the full URL that the display form hides: what must never be printed."""
    parts = urlsplit(full)
    found: set[str] = set()
    if parts.password:
        found.add(parts.password)
    masked = dict(parse_qsl(urlsplit(private).query))
    for name, value in parse_qsl(parts.query):
        # json/form `+Header=` and `-arg=` values are sent verbatim and often carry tokens
        if len(value) >= 4 and (
            masked.get(name) != value or name[:1] in "+-" or SECRET_NAME.search(name)
        ):
            found.add(value)
    # the whole path as a request line prints it ("POST /hook/abcde HTTP/1.1")
    if len(parts.path.strip("/")) >= MIN_SECRET_LENGTH:
        found.update({parts.path, unquote(parts.path)})
    tokens = set(registrable_parts(full))
    for raw in _SPLIT.split(f"{parts.netloc}/{parts.path}"):
        # a token may show up decoded in an error text ("123%3Aabc" as "123:abc")
        tokens.update((raw, unquote(raw), *_SPLIT.split(unquote(raw))))
    # a plain short word ("send", "hook") alone would blank it out of every error text;
    # the whole path above covers it where it matters
    found.update(t for t in tokens if worth_masking(t) and t not in display)
    return tuple(sorted(found))


def _schema(url: str) -> str:
    return url.split("://", 1)[0].lower()


def count_channels(path: Path) -> int:
    """How many notification URLs the Apprise config file holds."""
    plugins.register()
    guard_logs()
    with _quiet("apprise"):  # status output: a bad URL is refused by check-config and run
        config = apprise.AppriseConfig()
        config.add(str(path))
        obj = apprise.Apprise()
        obj.add(config)
        return len(obj)
