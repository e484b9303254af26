"""Everything that must hold before the daemon starts (or takes a reloaded config), beyond
what the TOML schema checks: credential files private, the Apprise file usable, message
templates valid, sensor sources buildable. One list of problems, each meant for a person."""

from __future__ import annotations

from pathlib import Path

from alerts.outbox import unrouted
from sentinel.config import Config, ConfigError
from sentinel.credentials import credential_problems
from sentinel.delivery import build_templates, delivery_problems, load_configured_channels
from sentinel.replication import runtime_problems
from sentinel.sources import build_sources


def preflight(config: Config, config_path: Path | None) -> list[str]:
    problems = credential_problems(config, config_path)
    where = f"{config_path}: " if config_path else ""
    problems += [f"{where}{problem}" for problem in runtime_problems(config)]
    try:
        channels = load_configured_channels(config.alerts)
    except ConfigError as exc:
        problems.append(f"{where}{exc}")
    else:
        if config.alerts.apprise_config is not None:
            for severity, tags in unrouted(channels, config.alerts.routes):
                problems.append(
                    f"{where}alerts.routes.{severity}: no channel in "
                    f"{config.alerts.apprise_config} carries the tag(s) {', '.join(tags) or '-'} "
                    f"(or 'always', or no tag): a {severity} alarm would reach nobody"
                )
            problems += [f"{where}{p}" for p in delivery_problems(config.alerts, channels)]
    try:
        build_templates(config)
    except ConfigError as exc:
        problems.append(f"{where}{exc}")
    build_sources(config)
    return problems


def environment_problems(config: Config) -> list[str]:
    """What check-config refuses but `run` only warns about: the daemon must still start
    (and page) when a replication source is not mounted at boot."""
    problems = []
    for i, rc in enumerate(config.replication):
        if not rc.source.is_dir():
            problems.append(
                f"replication[{i}].source: {rc.source} does not exist or is not a directory "
                f"(replication {rc.name!r} would have nothing to ship)"
            )
    return problems
