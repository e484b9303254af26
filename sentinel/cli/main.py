"""Entry point: builds the argument parser from each command module and dispatches."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sentinel import __version__
from sentinel.cli import alarm, alerts, backup, daemon, keeper, simulate, status

# Each module adds its subcommands; a subcommand sets `func(args) -> int` (the exit code).
COMMAND_MODULES = (daemon, status, alarm, alerts, backup, keeper, simulate)

# Exit codes shared by every command (documented in the README).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # bad config or bad arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentinel",
        description="Server-room sentinel: leak/heat/smoke alarms and continuous replication.",
    )
    parser.add_argument("--version", action="version", version=f"sentinel {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        help="config file (default: $SENTINEL_CONFIG or /etc/sentinel/sentinel.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `sentinel status --json | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
