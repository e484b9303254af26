"""The dashboard's users: a file of `name:argon2-hash` lines, one per user.

`sentinel web adduser` writes it (sentinel/cli/web.py); the daemon reads it and reads it
again whenever it changes, so adding a user needs no restart. A missing or unreadable file
means nobody can log in; viewing still works, and the reason is logged once and shown in
the web component's health. The hashes are secrets too: no line of the file is ever logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger("sentinel.web")

# argon2's own defaults (RFC 9106's second recommendation, ~50 ms and 64 MiB per check): slow
# on purpose, so a stolen file is slow to guess; the limiter keeps online guessing slower still
HASHER = PasswordHasher()
MIN_PASSWORD = 8
# each check takes 64 MiB and up to 4 threads (parallelism 4) for ~50 ms: one at a time,
# whoever asks, so guessing cannot take the cores the alarm loop needs
_CONCURRENT_CHECKS = 1


# the file's name in the state directory unless [web] users_file says otherwise
USERS_NAME = "web-users"
# what a signed ack link acknowledges as (sentinel/web/ack_links.py): no user may be called so
LINK_NAME = "link"


class BadUserName(ValueError):
    """A name the file cannot hold (":" separates the hash, a line holds one user)."""


def check_name(name: str) -> str:
    if not name:
        raise BadUserName("a user name cannot be empty")
    if name == LINK_NAME:
        raise BadUserName(f"{LINK_NAME!r} is what acknowledgements by signed link are called")
    if ":" in name or any(c.isspace() for c in name) or not name.isprintable():
        raise BadUserName(
            f"user name {name!r}: no ':', spaces or control characters (it is the first "
            "field of a line in the users file)"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the file was when last read: a change in any of these means read it again."""

    mtime_ns: int
    size: int
    inode: int


def parse(text: str) -> tuple[dict[str, str], list[int]]:
    """The users in the file's text, and the numbers of the lines that are not `name:hash`
    (blank lines and `#` comments are allowed)."""
    users: dict[str, str] = {}
    bad: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        try:
            check_name(name)
        except BadUserName:
            bad.append(number)
            continue
        if not sep or not hashed.startswith("$argon2"):
            bad.append(number)
            continue
        users[name] = hashed
    return users, bad


def render(users: dict[str, str]) -> str:
    return "".join(f"{name}:{hashed}\n" for name, hashed in sorted(users.items()))


class UserFile:
    """The users file as the daemon sees it: re-read when it changes, checked off the loop."""

    def __init__(self, path: Path, hasher: PasswordHasher = HASHER) -> None:
        self.path = path
        self._hasher = hasher
        self._users: dict[str, str] = {}
        self._seen: _Seen | None = None
        self._problem: str | None = None
        self._logged: str | None = None
        self._lock = threading.Lock()  # reloads happen in worker threads
        self._dummy: str | None = None
        self._checks = asyncio.Semaphore(_CONCURRENT_CHECKS)
        self.refresh()

    @property
    def problem(self) -> str | None:
        """Why nobody can log in (None: the file was read), as of now (a stat)."""
        self.refresh()
        return self._problem

    def names(self) -> list[str]:
        self.refresh()
        return sorted(self._users)

    def has(self, name: str) -> bool:
        self.refresh()
        return name in self._users

    def stamp(self, name: str) -> str | None:
        """A fingerprint of `name`'s password hash (None: no such user). A session keeps the
        one from its login and ends when it changes: a deleted user or a changed password
        logs that user out. Never shown or logged."""
        self.refresh()
        hashed = self._users.get(name)
        if hashed is None:
            return None
        return hashlib.sha256(hashed.encode()).hexdigest()

    def refresh(self) -> None:
        """Reads the file again when its mtime, size or inode changed (a stat per call)."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._set(
                    {},
                    None,
                    f"the users file {self.path} does not exist (create it "
                    "with `sentinel web adduser NAME`)",
                )
                return
            except OSError as exc:
                self._set(
                    {}, None, f"the users file {self.path} cannot be read: {exc.strerror or exc}"
                )
                return
            seen = _Seen(st.st_mtime_ns, st.st_size, st.st_ino)
            if seen == self._seen:
                return
            try:
                text = self.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                self._set({}, seen, f"the users file {self.path} cannot be read: {why or exc}")
                return
            users, bad = parse(text)
            if bad:
                # the line numbers only: a line holds a password hash
                log.warning(
                    "users file %s: line(s) %s are not name:argon2-hash and were skipped",
                    self.path,
                    ", ".join(map(str, bad)),
                )
            if stat.S_IMODE(st.st_mode) & 0o077:
                log.warning(
                    "users file %s is readable by others (mode %o): chmod 600 it",
                    self.path,
                    stat.S_IMODE(st.st_mode),
                )
            problem = None if users else f"the users file {self.path} holds no users"
            self._set(users, seen, problem)
            if users:
                log.info("users file %s: %d user(s)", self.path, len(users))

    def _set(self, users: dict[str, str], seen: _Seen | None, problem: str | None) -> None:
        self._users = users
        self._seen = seen
        self._problem = problem
        if problem is not None and problem != self._logged:
            log.warning("web login: nobody can log in: %s", problem)
        self._logged = problem

    async def verify(self, name: str, password: str) -> bool:
        """True when `password` is `name`'s. Runs in a worker thread (argon2 takes ~50 ms on
        purpose and must not stall the loop that delivers alerts); an unknown name costs the
        same, checked against a dummy hash, so timing does not tell which names exist."""
        async with self._checks:
            return await asyncio.to_thread(self._verify, name, password)

    def _verify(self, name: str, password: str) -> bool:
        self.refresh()
        hashed = self._users.get(name)
        if hashed is None:
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
            hashed, known = self._dummy, False
        else:
            known = True
        try:
            ok = self._hasher.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and known


def write(path: Path, users: dict[str, str]) -> None:
    """Replaces the file atomically, mode 0600: a reader (the daemon) sees the old file or
    the new one, never half of one. The new file keeps the old one's owner, or takes the
    directory's (root running `sentinel web adduser` in the daemon's state directory must
    leave a file the daemon's user can read)."""
    directory = path.parent
    try:
        owner = os.stat(path)
    except FileNotFoundError:
        owner = os.stat(directory)
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render(users))
            f.flush()
            if os.geteuid() == 0:
                os.fchown(f.fileno(), owner.st_uid, owner.st_gid)
            os.fchmod(f.fileno(), 0o600)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read(path: Path) -> dict[str, str]:
    """For the CLI: the users in the file ({} when it does not exist yet); raises OSError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    users, bad = parse(text)
    if bad:
        raise ValueError(
            f"{path}: line(s) {', '.join(map(str, bad))} are not name:argon2-hash; fix or "
            "remove them first (nothing was changed)"
        )
    return users
