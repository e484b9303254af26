"""sentinel.toml: one file, validated once into typed objects (see docs/configuration.md)."""

from sentinel.config.loader import ConfigError, config_path, load_config
from sentinel.config.root import Config
from sentinel.config.types import (
    ConfigPath,
    Duration,
    Model,
    format_duration,
    parse_duration,
)

__all__ = [
    "Config",
    "ConfigError",
    "ConfigPath",
    "Duration",
    "Model",
    "config_path",
    "format_duration",
    "load_config",
    "parse_duration",
]
