"""`sentinel receive DIR`: the stream road's receiver on the backup host (docs/transport.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "receive",
        help="the backup host's end of the stream road (an ssh key's forced command)",
        description=(
            "Writes the plain files a replicator streams over one ssh session into DIR, "
            "keeping replaced and deleted files as versions. sshd starts it as the forced "
            'command of the stream key: command="sentinel receive DIR",restrict '
            "(docs/transport.md)."
        ),
    )
    p.add_argument("root", type=Path, metavar="DIR", help="the replica root (as rrsync's DIR)")
    p.set_defaults(func=cmd_receive)


def cmd_receive(args: argparse.Namespace) -> int:
    from backup.receiver import main

    return main(args.root)
