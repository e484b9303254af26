"""`sentinel keeper run | status | restore`: the health-center role (docs/keeper.md)."""

from __future__ import annotations

import argparse
import functools
import sys
from datetime import datetime
from pathlib import Path

from sentinel.cli import daemon, status
from sentinel.cli.common import ConfigExit, load_or_exit
from sentinel.config import Config, ConfigError, config_path, load_config


def _usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    parser.print_help()
    return 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keeper",
        help="the health-center role: snapshots, dead-man's switch, data safe as of",
        description="Run with a config that has a [keeper] section (docs/keeper.md).",
    )
    ksub = p.add_subparsers(dest="keeper_command", metavar="KEEPER_COMMAND")
    run = ksub.add_parser("run", help="run the keeper daemon (what sentinel-keeper.service starts)")
    run.set_defaults(func=cmd_run)

    st = ksub.add_parser(
        "status",
        help="per room: heartbeat age, data safe as of, snapshots, disk free",
        description="Exit codes (all forms): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    form = st.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="machine-readable (docs/status.md)")
    form.add_argument("--nagios", action="store_true", help="one Nagios plugin line")
    st.add_argument("--state-dir", type=Path, default=None, help=argparse.SUPPRESS)
    st.set_defaults(func=cmd_status)

    r = ksub.add_parser(
        "restore",
        help="copy a room's files out of an immutable snapshot (never deletes anything)",
    )
    r.add_argument("--room", required=True, help="the room's name in [[keeper.rooms]]")
    r.add_argument(
        "--as-of",
        default=None,
        help="point in time: ISO 8601 (2026-11-20T14:30) or epoch (default: newest)",
    )
    r.add_argument("--to", type=Path, default=None, help="directory to restore into")
    r.add_argument("--path", default=None, help="only this file or directory (relative)")
    r.add_argument(
        "--into-existing",
        action="store_true",
        help="allow a non-empty --to (files are added or overwritten, never deleted)",
    )
    r.add_argument("--list", action="store_true", help="list the room's snapshots instead")
    r.set_defaults(func=cmd_restore)
    p.set_defaults(func=functools.partial(_usage, p))


def _keeper_config(args: argparse.Namespace) -> Config | int:
    """The config when it has a [keeper] section, else the exit code already explained."""
    try:
        config = load_or_exit(args)
    except ConfigExit as exc:
        return int(exc.code or 2)
    if config.keeper is None:
        print("sentinel: this config has no [keeper] section (docs/keeper.md)", file=sys.stderr)
        return 2
    return config


def cmd_run(args: argparse.Namespace) -> int:
    config = _keeper_config(args)
    if isinstance(config, int):
        return config
    return daemon.cmd_run(args)


def cmd_status(args: argparse.Namespace) -> int:
    """The status report with the rooms section. A config that cannot be read still gets
    the report (the alarms matter more than the file); one that is not a keeper's is
    refused instead of showing the room's status under the keeper's name."""
    try:
        config = load_config(config_path(getattr(args, "config", None)))
    except ConfigError:
        return status.cmd_status(args)
    if config.keeper is None:
        print(
            "sentinel: this config has no [keeper] section; for a room use `sentinel "
            "status` (docs/keeper.md)",
            file=sys.stderr,
        )
        return 3
    return status.cmd_status(args)


def cmd_restore(args: argparse.Namespace) -> int:
    from backup.snapshot import SnapshotError, SnapshotStore, restore
    from sentinel.cli.backup import parse_time

    config = _keeper_config(args)
    if isinstance(config, int):
        return config
    assert config.keeper is not None
    rooms = {r.name: r for r in config.keeper.rooms}
    if args.room not in rooms:
        print(
            f"sentinel: no room {args.room!r} (known: {', '.join(sorted(rooms))})", file=sys.stderr
        )
        return 2
    if args.to is None and not args.list:
        print("sentinel: keeper restore needs --to DIR (or --list)", file=sys.stderr)
        return 2
    root = config.keeper.snapshot_dir / args.room
    try:
        if not root.is_dir():
            print(
                f"sentinel: room {args.room} has no snapshots ({root} does not exist)",
                file=sys.stderr,
            )
            return 1
        store = SnapshotStore(root)
        store.list()
    except OSError as exc:
        print(
            f"sentinel: cannot read the snapshots of room {args.room}: {exc} (run as root "
            "or as the keeper's account)",
            file=sys.stderr,
        )
        return 1
    if args.list:
        for listed in store.list():
            when = datetime.fromtimestamp(listed.ts).isoformat(timespec="seconds")
            print(f"{listed.name}  {when}")
        return 0
    try:
        as_of = parse_time(args.as_of) if args.as_of else None
    except ValueError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 2
    snap = store.newest() if as_of is None else store.at(as_of)
    if snap is None:
        print(
            f"sentinel: room {args.room} has no snapshot"
            + (f" at or before {args.as_of}" if as_of is not None else ""),
            file=sys.stderr,
        )
        return 1
    try:
        files = restore(snap, args.to, into_existing=args.into_existing, subpath=args.path)
    except (SnapshotError, OSError) as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 1
    taken = datetime.fromtimestamp(snap.ts).isoformat(timespec="seconds")
    print(
        f"restored {files} file(s) of room {args.room} from snapshot {snap.name} "
        f"(taken {taken}) into {args.to}"
    )
    return 0
