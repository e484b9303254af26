"""The one secret masker: what of a URL or a line of text is a credential, and `****` for it.

Two defences, because neither is enough alone:

* `mask()` recognises secrets by shape: the password in `scheme://user:PASS@host`, token-like
  path segments of Apprise URLs (`tgram://BOTTOKEN/CHAT`), and `?pass=`/`?token=`/`?apikey=`
  query values. The scheme and a real host name stay readable so an admin can still tell
  which channel failed.
* `Redactor` also replaces exact strings registered from the config (the MQTT password,
  every URL in the Apprise config, the rsync password file), wherever they appear: a
  password quoted in a library's exception has no URL around it. `scrub()` does the same
  for a one-off list (an alert channel's secrets).

Pure text in, text out: the log filter around it is sentinel/secrets.py's, the channels'
alerts/channels.py's.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import quote

MASK = "****"

# Shorter registered secrets are ignored: replacing every "ab" in every log line would
# destroy the logs and protect nothing.
MIN_SECRET_LENGTH = 3
# A secret this long is never a word: masked wherever it appears, even glued to other
# text (Telegram's API path is "/bot<TOKEN>/sendMessage").
ANYWHERE_LENGTH = 16
# ... and so is a shorter one of letters and digits mixed (a password like "s3cr3t9x").
RANDOM_ANYWHERE_LENGTH = 6

URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{1,30})://([^\s'\"<>`]+)")
# Query and key=value names whose values are credentials (pass, password, token, apikey, ...).
_SECRET_WORDS = r"pass|pwd|token|secret|apikey|api_key|key|auth|sig"
SECRET_NAME = re.compile(_SECRET_WORDS, re.IGNORECASE)
_SECRET_NAME = rf"[A-Za-z0-9_.-]*(?:{_SECRET_WORDS})[A-Za-z0-9_.-]*"
_QUERY_SECRET = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)([^&#\s'\"]+)")
# In a URL known to be secret, Apprise's `+Header=`, `-payload=` and `:field=` values too.
_QUERY_SECRET_APPRISE = re.compile(rf"(?i)([?&;](?:[+:-][^=&#\s]*|{_SECRET_NAME})=)([^&#\s'\"]+)")
# `password = "x"`, `token: x`, `api_key=x` outside URLs (config excerpts, library messages).
_TEXT_SECRET = re.compile(
    r"(?i)\b(\w*(?:password|passwd|passphrase|secret|token|apikey|api_key|access_key)\w*"
    r"\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&'\"]+)"
)
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(?::\d{1,5})?$")


def mask(text: str) -> str:
    """`text` with credentials in URLs and `name=value` pairs replaced by `****`."""
    text = URL.sub(lambda m: _mask_url(m.group(1), m.group(2)), text)
    return _TEXT_SECRET.sub(_mask_text_value, text)


def urls_in(text: str) -> list[str]:
    """Every URL in `text` (an Apprise YAML or TEXT config), in order of appearance."""
    return [m.group(0) for m in URL.finditer(text)]


def secret_parts(url: str, *, whole_path: bool = False) -> list[str]:
    """The substrings of `url` that `mask()` hides (password, tokens, secret query values);
    with `whole_path`, also every path segment."""
    parts: list[str] = []
    match = URL.search(url)
    if match:
        _mask_url(match.group(1), match.group(2), parts.append, whole_path=whole_path)
    return parts


def mask_secret_url(url: str) -> str:
    """A URL known to carry credentials (an Apprise channel): everything but the scheme,
    a user name and a real host is hidden, every path segment included. A webhook token
    in the path may be short and look like a word ("hook/s3cr3t")."""
    match = URL.fullmatch(url)
    if match is None:
        return mask(url)
    return _mask_url(match.group(1), match.group(2), whole_path=True)


def looks_secret(value: str) -> bool:
    """Token-shaped: long, or letters mixed with digits, or a long number (ids, phones)."""
    if value == MASK or len(value) < 6:
        return False
    if len(value) >= 16:
        return True
    # All digits (ids, phone numbers) or letters mixed with digits; plain words stay.
    return any(c.isdigit() for c in value)


def worth_masking(token: str) -> bool:
    """Whether a part of a secret URL is masked wherever it appears alone. A short plain word
    of its path ("hook", "send") is not: it would blank that word out of every log line."""
    if len(token) < MIN_SECRET_LENGTH:
        return False
    return len(token) >= 6 or any(c.isdigit() for c in token)


def registrable_parts(url: str) -> list[str]:
    """What of a secret URL to mask wherever it appears: its token-like parts, and the whole
    path, so a request line ("POST /hook/abcde") is masked even when its words are not."""
    parts = [part for part in secret_parts(url, whole_path=True) if worth_masking(part)]
    rest = url.split("://", 1)[1]
    path = "/" + rest.partition("/")[2].partition("?")[0].partition("#")[0]
    # a one-segment path already registered as a token would add only "/<token>" matches
    # inside other paths ("/etc/sentinel")
    if len(path.strip("/")) >= MIN_SECRET_LENGTH and path.strip("/") not in parts:
        parts.append(path)
    return parts


def _mask_text_value(match: re.Match[str]) -> str:
    value = match.group(2)
    if MASK in value:
        return match.group(0)
    quote = value[0] if value[:1] in "\"'" else ""
    return f"{match.group(1)}{quote}{MASK}{quote}"


def _mask_url(
    scheme: str,
    rest: str,
    found: Callable[[str], object] = lambda _: None,
    *,
    whole_path: bool = False,
) -> str:
    def hide(value: str) -> str:
        if not value or value == MASK:
            return value
        found(value)
        return MASK

    body, sep, query = rest.partition("?")
    body, hsep, fragment = body.partition("#")
    authority, slash, path = body.partition("/")

    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        if colon:
            userinfo = f"{hide(user) if looks_secret(user) else user}:{hide(password)}"
        elif looks_secret(user):
            # Pushover-style `pover://USERKEY@TOKEN`: the "user" is a key, not a name.
            userinfo = hide(user)
        authority = f"{userinfo}@{_mask_host(host, hide)}"
    else:
        authority = _mask_host(authority, hide)

    segments = [hide(seg) if whole_path or looks_secret(seg) else seg for seg in path.split("/")]
    out = f"{scheme}://{authority}{slash}{'/'.join(segments)}{hsep}{fragment}"
    if sep:
        secret_query = _QUERY_SECRET_APPRISE if whole_path else _QUERY_SECRET
        out += "?" + secret_query.sub(lambda m: m.group(1) + hide(m.group(2)), "&" + query)[1:]
    return out


def is_real_host(host: str) -> bool:
    """A name a resolver would look up (dotted, an IP address, localhost), with or without
    its port; a single word in the host's place is more likely a token (tgram://BOTTOKEN)."""
    return bool(_HOST.match(host)) and ("." in host or ":" in host or host == "localhost")


def _mask_host(host: str, hide: Callable[[str], str]) -> str:
    """A real host stays; a token in its place goes."""
    if is_real_host(host):
        return host
    return hide(host) if looks_secret(host) else host


_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")
# Before a secret: not inside a token, unless a %XX escape ends right there ("123%3AAAH...").
_TOKEN_START = r"(?:(?<![A-Za-z0-9_-])|(?<=%[0-9A-Fa-f]{2}))"
# After it: no token character, and no "." that continues the token ("sentinel.toml"); a
# sentence's full stop still ends it.
_TOKEN_END = r"(?![A-Za-z0-9_-])(?!\.[A-Za-z0-9_-])"


def _random_looking(secret: str) -> bool:
    """Letters and digits mixed, six or more: a token, never a word of the text around it
    ("Bearer_s3cr3t9x" hides it), while a word-like secret ("sentinel") stays whole-token."""
    return (
        len(secret) >= RANDOM_ANYWHERE_LENGTH
        and any(c.isdigit() for c in secret)
        and any(c.isalpha() for c in secret)
    )


def _whole(secret: str) -> str:
    """A pattern for a short secret as a whole token: a topic "sentinel" masks the word
    itself, never the letters inside ".sentinel-target" or a path's "sentinels"."""
    if len(secret) >= ANYWHERE_LENGTH or _random_looking(secret):
        return re.escape(secret)
    start = _TOKEN_START if _TOKEN_CHAR.match(secret[0]) else ""
    end = _TOKEN_END if _TOKEN_CHAR.match(secret[-1]) else ""
    return f"{start}{re.escape(secret)}{end}"


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    # Longest first, so a URL is replaced whole before its token is.
    ordered = sorted(set(secrets), key=len, reverse=True)
    return re.compile("|".join(_whole(secret) for secret in ordered)) if ordered else None


# A channel scrubs every error text and log line with the same few secrets.
_cached_pattern = lru_cache(maxsize=128)(_pattern)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` replaced by `****` where it stands as a whole token (a
    long one anywhere)."""
    pattern = _cached_pattern(frozenset(s for s in secrets if s))
    return text if pattern is None else pattern.sub(MASK, text)


class Redactor:
    """Exact secrets registered from the config, masked wherever they appear, and
    URL-shaped secrets masked by shape even when nobody registered them."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Register exact secrets. A URL also registers its password and token parts."""
        with self._lock:
            for secret in secrets:
                secret = secret.strip()
                if len(secret) < MIN_SECRET_LENGTH:
                    continue
                if URL.fullmatch(secret):
                    shown = mask_secret_url(secret)
                    if shown == secret:
                        # Nothing looked secret, but the owner says it is: keep only the scheme.
                        shown = secret.split("://", 1)[0] + "://" + MASK
                    self._known[secret] = shown
                    for part in registrable_parts(secret):
                        self._known.setdefault(part, MASK)
                        # as a request line or a library prints it: "123%3AAAH..."
                        self._known.setdefault(quote(part, safe=""), MASK)
                else:
                    self._known[secret] = MASK
            self._pattern = _pattern(self._known)

    def add_urls_from(self, text: str) -> None:
        """Register every URL in a config text, e.g. the Apprise YAML's contents."""
        self.add(*urls_in(text))

    def redact(self, text: str) -> str:
        """`text` with registered secrets and URL credentials masked (status, errors)."""
        pattern = self._pattern
        if pattern is not None:
            known = self._known
            text = pattern.sub(lambda m: known[m.group(0)], text)
        return mask(text)


# Oracle and Tibero clients and rman's connect keywords: the word after them is a login
_LOGIN_BEFORE = frozenset(
    [
        "sqlplus",
        "rman",
        "tbsql",
        "tbrmgr",
        "dgmgrl",
        "sqlldr",
        "exp",
        "imp",
        "expdp",
        "impdp",
        "tbexport",
        "tbimport",
        "tbloader",
        "target",
        "auxiliary",
        "catalog",
        "connect",
        "conn",
    ]
)


def _logs_in(before: list[str], after: list[str]) -> bool:
    """Whether the word between `before` and `after` is a login: it follows a client (its
    options skipped) or a connect keyword, or `as sysdba` follows it."""
    if after and after[0].lower() == "as":
        return True
    for word in reversed(before):
        if not word.startswith("-"):
            return word.rsplit("/", 1)[-1].lower() in _LOGIN_BEFORE
    return False


def command_secrets(command: str) -> list[str]:
    """The parts of a shell command that are credentials: what `mask()` hides in it (a URL's
    password, `PGPASSWORD=x`, `password=x`), a `-p<password>` / `--password=x` argument,
    and the password of an Oracle-style `user/password@service` connect string."""
    found: list[str] = []
    # words of the command, and the words inside a quoted argument too (`"sys/pw@db as
    # sysdba"`); no shlex: common/ imports nothing beyond pure text handling
    words: list[str] = []
    for token in re.findall(r"'[^']*'|\"[^\"]*\"|\S+", command):
        unquoted = token[1:-1] if token[:1] in "'\"" and token[-1:] == token[:1] else token
        words += [unquoted, *unquoted.split()]
    for i, word in enumerate(words):
        for url in re.findall(r"[A-Za-z][A-Za-z0-9+.-]{1,30}://\S+", word):
            found += secret_parts(url)
        pair = re.match(r"(?i)^-{0,2}[\w.-]*(?:password|passwd|pwd|pass|secret)[\w.-]*=(.+)$", word)
        if pair:
            found.append(pair.group(1))
        short = re.match(r"^-p(\S{3,})$", word)  # mysql -pSECRET
        if short:
            found.append(short.group(1))
        connect = re.match(r"^[\w$#]+/([^@/\s]+)@\S+$", word)  # sqlplus sys/SECRET@db
        if connect:
            found.append(connect.group(1))
        # a local login has no @service (`rman target sys/SECRET`, `tbsql sys/SECRET`,
        # "sys/SECRET as sysdba"); only there, or a path (logs/x.arc) would be hidden
        local = re.match(r"^[A-Za-z_][\w$#]*/([^@/\s]+)$", word)
        if local and _logs_in(words[:i], words[i + 1 : i + 2]):
            found.append(local.group(1))
    return [s for s in found if s]
