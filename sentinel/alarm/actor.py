"""Who asked for a safety action (ack, silence, unsilence): the name given and the real uid,
or, from the web dashboard, the logged-in user and the address the request came from.

`--by` (or `SUDO_USER`) is only what a person declares. The CLI process also records its real
uid and, under sudo, `SUDO_UID`/`SUDO_USER`, so the trail and the announcement show who
actually ran the command. The identity travels in the command row's arguments; anyone who can
write the state database directly could forge it, which is why only root (sudo) may write it.
"""

from __future__ import annotations

import getpass
import os
import pwd
from dataclasses import dataclass
from typing import Any

# `user` of an action from the dashboard: "web:kim" (a uid names a local account instead)
WEB_PREFIX = "web:"
# a signed ack link's (sentinel/web/ack_links.py); no dashboard user may be called "link"
LINK_USER = "web:link"


@dataclass(frozen=True, slots=True)
class Actor:
    """The declared name plus the identity of the process that recorded the command."""

    declared: str
    uid: int | None = None
    user: str | None = None
    sudo_uid: int | None = None
    sudo_user: str | None = None
    # the client address of a web request (sentinel/web/actions.py); None from the CLI
    address: str | None = None

    @classmethod
    def web(cls, name: str, address: str) -> Actor:
        """A logged-in dashboard user (or "link" for a signed ack link): no uid, since the
        daemon's own uid says nothing about the person; `user` marks the channel."""
        return cls(name, None, f"{WEB_PREFIX}{name}", address=address)

    @property
    def via(self) -> str | None:
        """ "web" for an action from the dashboard, "ack link" for a signed link's, None
        for the CLI."""
        if self.user == LINK_USER:
            return "ack link"
        if self.user is not None and self.user.startswith(WEB_PREFIX):
            return "web"
        return None

    @classmethod
    def current(cls, declared: str | None) -> Actor:
        """This process: `declared` (default SUDO_USER or the login name) and its real uid."""
        uid = os.getuid()
        sudo_uid = sudo_user = None
        if uid == 0:  # sudo sets these for the root process; anyone else can fake them
            sudo_uid = _int(os.environ.get("SUDO_UID"))
            sudo_user = os.environ.get("SUDO_USER") or None
        name = declared or sudo_user or _login_name(uid)
        return cls(name, uid, _user_name(uid), sudo_uid, sudo_user)

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> Actor:
        """From a command row's arguments; rows without identity (in-process calls) give
        only the declared name."""
        return cls(
            str(args.get("by") or "someone"),
            _int(args.get("uid")),
            _str(args.get("user")),
            _int(args.get("sudo_uid")),
            _str(args.get("sudo_user")),
            _str(args.get("address")),
        )

    def as_args(self) -> dict[str, Any]:
        return {
            "by": self.declared,
            "uid": self.uid,
            "user": self.user,
            "sudo_uid": self.sudo_uid,
            "sudo_user": self.sudo_user,
            "address": self.address,
        }

    def describe(self) -> str:
        """ "kim (uid 0 root, sudo from uid 1000 alice)", "kim (web from 10.0.0.5)": what
        messages and history show."""
        if self.via is not None:
            return f"{self.declared} ({self.via} from {self.address or '?'})"
        parts = []
        if self.uid is not None:
            parts.append(f"uid {self.uid} {self.user or '?'}")
        if self.sudo_uid is not None or self.sudo_user:
            sudo_uid = "?" if self.sudo_uid is None else self.sudo_uid
            parts.append(f"sudo from uid {sudo_uid} {self.sudo_user or '?'}")
        if not parts:
            return self.declared
        return f"{self.declared} ({', '.join(parts)})"

    def short(self) -> str:
        """ "mallory(alice)": the declared name, and the person behind it when different
        (sudo's user, else the real uid's), for an SMS; "kim(web)" from the dashboard."""
        if self.via is not None:
            return f"{self.declared}({self.via})"
        person = self.sudo_user or self.user
        if person is None or person == self.declared:
            return self.declared
        return f"{self.declared}({person})"


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers, removed users)
        return None


def _login_name(uid: int) -> str:
    name = _user_name(uid)
    if name:
        return name
    try:
        return getpass.getuser()
    except OSError:
        return f"uid {uid}"


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
