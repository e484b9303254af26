"""The command table the CLI dispatches by, and what a command costs to start."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from sentinel.cli.main import COMMAND_MODULES, COMMANDS, build_parser, chosen_command


def test_the_table_names_every_subcommand_and_its_module() -> None:
    registered: dict[str, str] = {}
    for name in COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"sentinel.cli.{name}").register(sub)
        registered.update(dict.fromkeys(sub.choices, name))
    assert registered == COMMANDS


def test_the_command_is_found_behind_the_config_option() -> None:
    assert chosen_command(["-c", "/etc/x.toml", "status", "--json"]) == "status"
    assert chosen_command(["--config", "status", "ack", "A1"]) == "ack"
    assert chosen_command(["--config=/x", "backup", "sync"]) == "backup"
    assert chosen_command(["--version"]) is None


def test_without_a_command_every_command_is_offered() -> None:
    parser = build_parser(None)
    text = parser.format_help()
    for command in COMMANDS:
        assert command in text


def test_status_does_not_load_apprise_or_the_alarm_engine() -> None:
    # `sentinel status` runs every minute under Nagios: it must not pay for the modules
    # only delivery and the daemon need.
    code = (
        "import sys; from sentinel.cli.main import build_parser, chosen_command; "
        "build_parser(chosen_command(['status', '--json'])); "
        "print(sorted(m for m in ('apprise', 'sentinel.alarm.engine', 'backup.replicator') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
