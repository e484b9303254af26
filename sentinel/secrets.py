"""Keeping credentials out of logs, status output and error messages, and off readable files.

Two defences, because neither is enough alone:

* `mask()` recognises secrets by shape: the password in `scheme://user:PASS@host`, token-like
  path segments of Apprise URLs (`tgram://BOTTOKEN/CHAT`), and `?pass=`/`?token=`/`?apikey=`
  query values. The scheme and a real host name stay readable so an admin can still tell
  which channel failed.
* `SecretMaskingFilter` also replaces exact strings the daemon registers from its config
  (the MQTT password, every URL in the Apprise config, the rsync password file), wherever
  they appear: a password quoted in a library's exception has no URL around it.

`check_private()` refuses credential files that other users can read, with the exact
`chmod`/`chown` that fixes them.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote

MASK = "****"

# Shorter registered secrets are ignored: replacing every "ab" in every log line would
# destroy the logs and protect nothing.
MIN_SECRET_LENGTH = 3

_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{1,30})://([^\s'\"<>`]+)")
# Query and key=value names whose values are credentials (pass, password, token, apikey, ...).
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*(?:pass|pwd|token|secret|apikey|api_key|key|auth|sig)[A-Za-z0-9_.-]*"
)
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
    text = _URL.sub(lambda m: _mask_url(m.group(1), m.group(2)), text)
    return _TEXT_SECRET.sub(_mask_text_value, text)


def urls_in(text: str) -> list[str]:
    """Every URL in `text` (an Apprise YAML or TEXT config), in order of appearance."""
    return [m.group(0) for m in _URL.finditer(text)]


def secret_parts(url: str, *, whole_path: bool = False) -> list[str]:
    """The substrings of `url` that `mask()` hides (password, tokens, secret query values);
    with `whole_path`, also every path segment."""
    parts: list[str] = []
    match = _URL.search(url)
    if match:
        _mask_url(match.group(1), match.group(2), parts.append, whole_path=whole_path)
    return parts


def mask_secret_url(url: str) -> str:
    """A URL known to carry credentials (an Apprise channel): everything but the scheme,
    a user name and a real host is hidden, every path segment included. A webhook token
    in the path may be short and look like a word ("hook/s3cr3t")."""
    match = _URL.fullmatch(url)
    if match is None:
        return mask(url)
    return _mask_url(match.group(1), match.group(2), whole_path=True)


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
            userinfo = f"{hide(user) if _looks_secret(user) else user}:{hide(password)}"
        elif _looks_secret(user):
            # Pushover-style `pover://USERKEY@TOKEN`: the "user" is a key, not a name.
            userinfo = hide(user)
        authority = f"{userinfo}@{_mask_host(host, hide)}"
    else:
        authority = _mask_host(authority, hide)

    segments = [hide(seg) if whole_path or _looks_secret(seg) else seg for seg in path.split("/")]
    out = f"{scheme}://{authority}{slash}{'/'.join(segments)}{hsep}{fragment}"
    if sep:
        secret_query = _QUERY_SECRET_APPRISE if whole_path else _QUERY_SECRET
        out += "?" + secret_query.sub(lambda m: m.group(1) + hide(m.group(2)), "&" + query)[1:]
    return out


def _mask_host(host: str, hide: Callable[[str], str]) -> str:
    """A real host (has a dot or a port, or is localhost) stays; a token in its place goes."""
    if _HOST.match(host) and ("." in host or ":" in host or host == "localhost"):
        return host
    return hide(host) if _looks_secret(host) else host


def _looks_secret(value: str) -> bool:
    """Token-shaped: long, or letters mixed with digits, or a long number (ids, phones)."""
    if value == MASK or len(value) < 6:
        return False
    if len(value) >= 16:
        return True
    # All digits (ids, phone numbers) or letters mixed with digits; plain words stay.
    return any(c.isdigit() for c in value)


class SecretMaskingFilter(logging.Filter):
    """Masks secrets in every log record passing through the handlers it is installed on.

    Install it on handlers (not loggers) so records from every library logger pass through
    it. Register exact secrets from the config with `add()`; URL-shaped secrets are masked
    by shape even when nobody registered them. Masking rewrites the record's message, args,
    exception text and stack text; it never drops a record.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
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
                if _URL.fullmatch(secret):
                    shown = mask_secret_url(secret)
                    if shown == secret:
                        # Nothing looked secret, but the owner says it is: keep only the scheme.
                        shown = secret.split("://", 1)[0] + "://" + MASK
                    self._known[secret] = shown
                    for part in _registrable_parts(secret):
                        self._known.setdefault(part, MASK)
                        # as a request line or a library prints it: "123%3AAAH..."
                        self._known.setdefault(quote(part, safe=""), MASK)
                else:
                    self._known[secret] = MASK
            # Longest first, so a URL is replaced whole before its token is.
            ordered = sorted(self._known, key=len, reverse=True)
            self._pattern = (
                re.compile("|".join(_whole(secret) for secret in ordered)) if ordered else None
            )

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

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: still mask what is there
            message = f"{record.msg} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")
# Before a secret: not inside a token, unless a %XX escape ends right there ("123%3AAAH...").
_TOKEN_START = r"(?:(?<![A-Za-z0-9_-])|(?<=%[0-9A-Fa-f]{2}))"
# After it: no token character, and no "." that continues the token ("sentinel.toml"); a
# sentence's full stop still ends it.
_TOKEN_END = r"(?![A-Za-z0-9_-])(?!\.[A-Za-z0-9_-])"


# A secret this long is never a word: masked wherever it appears, even glued to other
# text (Telegram's API path is "/bot<TOKEN>/sendMessage").
ANYWHERE_LENGTH = 16


def _whole(secret: str) -> str:
    """A pattern for a short secret as a whole token: a topic "sentinel" masks the word
    itself, never the letters inside ".sentinel-target" or a path's "sentinels"."""
    if len(secret) >= ANYWHERE_LENGTH:
        return re.escape(secret)
    start = _TOKEN_START if _TOKEN_CHAR.match(secret[0]) else ""
    end = _TOKEN_END if _TOKEN_CHAR.match(secret[-1]) else ""
    return f"{start}{re.escape(secret)}{end}"


def _registrable_parts(url: str) -> list[str]:
    """What of a secret URL to mask wherever it appears alone. A short plain word of its
    path ("hook") is not: it would blank that word out of every log line. The whole path
    is, so a request line ("POST /hook/abcde") is still masked."""
    parts = [
        part
        for part in secret_parts(url, whole_path=True)
        if len(part) >= 6
        or (len(part) >= MIN_SECRET_LENGTH and _looks_secret(part))
        or (len(part) >= MIN_SECRET_LENGTH and any(c.isdigit() for c in part))
    ]
    rest = url.split("://", 1)[1]
    path = "/" + rest.partition("/")[2].partition("?")[0].partition("#")[0]
    # a one-segment path already registered as a token would add only "/<token>" matches
    # inside other paths ("/etc/sentinel")
    if len(path.strip("/")) >= MIN_SECRET_LENGTH and path.strip("/") not in parts:
        parts.append(path)
    return parts


def install_masking(
    secrets: Iterable[str] = (), logger: logging.Logger | None = None
) -> SecretMaskingFilter:
    """Put one `SecretMaskingFilter` on every handler of `logger` (default: the root logger).

    Call after the handlers exist; returns the filter so more secrets can be added later
    (e.g. on SIGHUP after re-reading the config).
    """
    target = logger or logging.getLogger()
    masking = SecretMaskingFilter(secrets)
    for handler in target.handlers:
        handler.addFilter(masking)
    return masking


class CredentialFileError(Exception):
    """A file holding credentials that other users could read or change.

    The message names the file, what it is for, what is wrong, and the commands to fix it.
    """

    def __init__(self, path: Path, what: str, problem: str, fix: str) -> None:
        self.path = path
        self.what = what
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path} ({what}): {problem}; fix: {fix}")


def check_private(
    path: Path, *, what: str, group: str = "sentinel", uid: int | None = None
) -> None:
    """Raise `CredentialFileError` unless only its owner and group can read `path`.

    Refused: any access for others (mode & 0o007) and write access for the group. `group`
    is the daemon's group, named in the suggested `chown`; `uid` is the daemon's user
    (default: this process's), whose own files are told `chmod 600` instead.
    """
    quoted = _shell_quote(str(path))
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CredentialFileError(
            path, what, "file not found", "create it, or fix the path in the config"
        ) from None
    except OSError as exc:
        raise CredentialFileError(
            path,
            what,
            f"cannot be checked: {exc.strerror}",
            f"sudo chown root:{group} {quoted} && sudo chmod 640 {quoted}",
        ) from None
    mode = stat.S_IMODE(st.st_mode)
    problems: list[str] = []
    if mode & 0o007:
        problems.append("other users can " + _access(mode & 0o007))
    if mode & 0o020:
        problems.append("its group can write it")
    if not problems:
        return
    daemon_uid = os.geteuid() if uid is None else uid
    if st.st_uid == daemon_uid and st.st_uid != 0:
        # Owned by the daemon's own user: owner-only access is enough.
        fix = f"chmod 600 {quoted}"
    else:
        fix = f"sudo chown root:{group} {quoted} && sudo chmod 640 {quoted}"
    raise CredentialFileError(path, what, f"mode {mode:04o}: {' and '.join(problems)}", fix)


def check_credential_files(
    paths: Iterable[tuple[Path, str]], *, group: str = "sentinel"
) -> list[str]:
    """Check each `(path, what)` with `check_private`; the list of problems (empty = fine)."""
    problems: list[str] = []
    for path, what in paths:
        try:
            check_private(path, what=what, group=group)
        except CredentialFileError as exc:
            problems.append(str(exc))
    return problems


def _access(bits: int) -> str:
    names = [name for bit, name in ((4, "read"), (2, "write"), (1, "execute")) if bits & bit]
    return " and ".join(names) + " it"


def _shell_quote(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@%+=-]+", text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"
