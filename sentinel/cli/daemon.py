"""`sentinel run`, `sentinel check-config`, `sentinel demo`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from sentinel.advice import advisories
from sentinel.advice.readability import UnknownUser
from sentinel.cli.common import ConfigExit, load_or_exit
from sentinel.config import ConfigError, config_path, load_config
from sentinel.credentials import install_log_masking
from sentinel.logs import setup_logging
from sentinel.preflight import environment_problems, preflight


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run the daemon (what the systemd unit starts)")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and summarise it")
    check.add_argument("file", nargs="?", help="config file (default: as for --config)")
    check.add_argument(
        "--user",
        default=None,
        help="check file access as this account (the service user) instead of the caller",
    )
    check.set_defaults(func=cmd_check_config)

    demo = sub.add_parser(
        "demo",
        help="run the whole daemon on embedded defaults in a temp dir, with simulated sensors",
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    demo.add_argument("--dir", type=Path, default=None, help="work here instead of a temp dir")
    demo.set_defaults(func=cmd_demo)


def cmd_check_config(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 2
    problems = preflight(config, path) + [f"{path}: {p}" for p in environment_problems(config)]
    for problem in problems:
        print(f"sentinel: {problem}", file=sys.stderr)
    if problems:
        return 2
    try:
        advice_lines = advisories(config, user=args.user)
    except UnknownUser as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 2
    for advice in advice_lines:
        print(f"sentinel: warning: {path}: {advice}", file=sys.stderr)
    print(f"OK {path}: {config.summary()}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_or_exit(args)
    except ConfigExit as exc:
        return int(exc.code or 2)
    setup_logging(config.daemon.log_level)
    install_log_masking(config)
    path = config_path(args.config)
    problems = preflight(config, path)
    if problems:
        for problem in problems:
            logging.getLogger("sentinel").critical("refusing to start: %s", problem)
        return 2
    for problem in environment_problems(config):
        logging.getLogger("sentinel").warning("%s: %s", path, problem)
    for advice in advisories(config, readability=False):
        logging.getLogger("sentinel").warning("%s: %s", path, advice)
    from sentinel.daemon import Daemon

    return asyncio.run(Daemon(config, path).run())


def cmd_demo(args: argparse.Namespace) -> int:
    from sentinel.demo import run_demo

    return run_demo(duration=args.duration, workdir=args.dir)
