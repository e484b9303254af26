"""`sentinel web adduser|passwd|deluser|users|ack-link`: the dashboard's users, and links.

The users file ([web] users_file, default <state_dir>/web-users) holds `name:argon2-hash`
lines; it is replaced atomically (mode 0600) and the running daemon reads it again when it
changes, so nothing needs a restart. A password never goes on the command line (it would
show in `ps` and the shell history): it is asked twice, or read from stdin.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path

from sentinel.cli.common import load_or_exit
from sentinel.config import Config

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    web = sub.add_parser("web", help="dashboard users and acknowledge links")
    commands = web.add_subparsers(dest="web_command", metavar="COMMAND", required=True)
    for name, what, func in (
        ("adduser", "add a user who may log in and act", _adduser),
        ("passwd", "change a user's password (ends their sessions)", _passwd),
    ):
        p = commands.add_parser(name, help=what)
        p.add_argument("name", metavar="NAME")
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin instead of asking",
        )
        p.set_defaults(func=func)
    deluser = commands.add_parser("deluser", help="remove a user (ends their sessions)")
    deluser.add_argument("name", metavar="NAME")
    deluser.set_defaults(func=_deluser)
    users = commands.add_parser("users", help="list the users")
    users.set_defaults(func=_users)
    link = commands.add_parser(
        "ack-link", help="print a signed acknowledge link for an alarm ([web] ack_links)"
    )
    link.add_argument("alarm", metavar="ALARM", help="the alarm id, e.g. A7F3")
    link.set_defaults(func=_ack_link)


def users_path(config: Config) -> Path:
    from sentinel.web.users import USERS_NAME

    if config.web is not None and config.web.users_file is not None:
        return config.web.users_file
    return config.daemon.state_dir / USERS_NAME


def _password(args: argparse.Namespace) -> str | None:
    """The new password, asked twice or read from stdin; None (after saying why) if not."""
    from sentinel.web.users import check_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("sentinel: the two passwords differ; nothing was changed", file=sys.stderr)
            return None
    try:
        return check_password(password)
    except ValueError as exc:
        print(f"sentinel: {exc}; nothing was changed", file=sys.stderr)
        return None


def _change(args: argparse.Namespace, *, exists: bool, remove: bool = False) -> int:
    """adduser (exists=False), passwd (exists=True), deluser (remove=True)."""
    from sentinel.web import users as users_file

    config = load_or_exit(args)
    path = users_path(config)
    try:
        name = users_file.check_name(args.name)
    except users_file.BadUserName as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        users = users_file.read(path)
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"sentinel: cannot read the users file {path}: {why}", file=sys.stderr)
        return EXIT_FAILURE
    if exists and name not in users:
        print(f"sentinel: no user {name!r} in {path}", file=sys.stderr)
        return EXIT_FAILURE
    if not exists and name in users:
        print(
            f"sentinel: {name!r} is already a user (`sentinel web passwd {name}` changes "
            "the password)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if remove:
        del users[name]
        done = f"removed {name!r}"
    else:
        password = _password(args)
        if password is None:
            return EXIT_USAGE
        users[name] = users_file.HASHER.hash(password)
        done = f"{'changed the password of' if exists else 'added'} {name!r}"
    try:
        users_file.write(path, users)
    except OSError as exc:
        advice = (
            "its directory does not exist (start the daemon once, or create it)"
            if not path.parent.is_dir()
            else "run the command with sudo"
        )
        print(
            f"sentinel: cannot write the users file {path}: {exc.strerror or exc}; {advice}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    note = "" if config.web is not None else " (no [web] section yet: the dashboard is off)"
    print(f"{done} in {path}; the running daemon picks it up without a restart{note}")
    return EXIT_OK


def _adduser(args: argparse.Namespace) -> int:
    return _change(args, exists=False)


def _passwd(args: argparse.Namespace) -> int:
    return _change(args, exists=True)


def _deluser(args: argparse.Namespace) -> int:
    return _change(args, exists=True, remove=True)


def _users(args: argparse.Namespace) -> int:
    from sentinel.web import users as users_file

    config = load_or_exit(args)
    path = users_path(config)
    try:
        names = sorted(users_file.read(path))
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        print(f"sentinel: cannot read the users file {path}: {why}", file=sys.stderr)
        return EXIT_FAILURE
    if not names:
        print(f"no users in {path} (add one with `sentinel web adduser NAME`)")
    for name in names:
        print(name)
    return EXIT_OK


def _ack_link(args: argparse.Namespace) -> int:
    from sentinel.web.ack_links import AckLinks, KeyFileError

    config = load_or_exit(args)
    web = config.web
    if web is None or not web.ack_links:
        print("sentinel: ack links are off (set ack_links = true in [web])", file=sys.stderr)
        return EXIT_USAGE
    links = AckLinks(config.daemon.state_dir, web.ack_link_ttl, web.base_url)
    try:
        link = links.link(args.alarm, time.time())
    except (KeyFileError, OSError) as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(link)
    return EXIT_OK
