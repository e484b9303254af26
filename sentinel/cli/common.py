"""Helpers every command module shares: loading the config with a clean error."""

from __future__ import annotations

import argparse
import sys

from sentinel.config import Config, ConfigError, config_path, load_config


class ConfigExit(SystemExit):
    """Raised after the config error was printed; exits 2 without a traceback."""


def load_or_exit(args: argparse.Namespace) -> Config:
    """Loads the config named by --config/$SENTINEL_CONFIG, or prints why not and exits 2."""
    try:
        return load_config(config_path(getattr(args, "config", None)))
    except ConfigError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        raise ConfigExit(2) from None
