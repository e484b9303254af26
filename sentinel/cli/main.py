"""Entry point: builds the argument parser from each command module and dispatches."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from sentinel import __version__

# Each module adds its subcommands; a subcommand sets `func(args) -> int` (the exit code).
COMMAND_MODULES = (
    "daemon",
    "status",
    "alarm",
    "alerts",
    "backup",
    "keeper",
    "simulate",
    "web",
    "report",
    "receive",
)
# The module that adds each subcommand: a command imports only its own module, so
# `sentinel status` (Nagios runs it every minute; the tests poll it) does not spend half a
# second importing apprise, the alarm engine and the replicator. tests/core/test_cli_main.py
# keeps this table equal to what the modules register.
COMMANDS = {
    "run": "daemon",
    "check-config": "daemon",
    "demo": "daemon",
    "status": "status",
    "ack": "alarm",
    "silence": "alarm",
    "unsilence": "alarm",
    "alarms": "alarm",
    "test-alert": "alerts",
    "backup": "backup",
    "keeper": "keeper",
    "simulate": "simulate",
    "web": "web",
    "report": "report",
    "receive": "receive",
}

# Exit codes shared by every command (documented in the README).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # bad config or bad arguments


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` names (None: none, or only --help/--version)."""
    args = iter(argv)
    for arg in args:
        if arg in ("-c", "--config"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with a known `command`, only that command's module is imported (the
    others' subcommands are absent, which only `--help` of the whole program would show)."""
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
    modules = (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES
    for name in modules:
        importlib.import_module(f"sentinel.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(chosen_command(argv))
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
