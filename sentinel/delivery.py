"""Wiring for alert delivery: turns the [alerts] config into the alerts package's objects."""

from __future__ import annotations

import time
from collections.abc import Callable

from alerts.channels import Channel, ChannelConfigError, load_channels
from alerts.outbox import Outbox
from alerts.plugins import PluginDirError, load_plugin_dir
from alerts.sender import Sender
from alerts.templates import TemplateError, Templates
from alerts.tokens import TokenKeeper
from sentinel.config import Config, ConfigError
from sentinel.config.alerts import AlertsConfig
from sentinel.store import Store


def load_configured_channels(alerts: AlertsConfig) -> list[Channel]:
    """The channels of the referenced Apprise config; none when no file is configured.
    A county's plugin directory is loaded first: its schemes are in that config."""
    if alerts.plugin_dir is not None:
        try:
            load_plugin_dir(alerts.plugin_dir)
        except PluginDirError as exc:
            raise ConfigError(f"alerts.plugin_dir: {exc}") from None
    if alerts.apprise_config is None:
        return []
    try:
        return load_channels(alerts.apprise_config)
    except ChannelConfigError as exc:
        raise ConfigError(f"alerts.apprise_config: {exc}") from None


def delivery_problems(alerts: AlertsConfig, channels: list[Channel]) -> list[str]:
    """What would make delivery fail silently: a fallback tag no channel carries, and a
    modem channel whose send may outlast `send_timeout` (the sender would retry while the
    first send still runs, and the SMS could go out twice)."""
    if alerts.apprise_config is None:
        return []
    problems = []
    carried = {tag for c in channels for tag in c.tags}
    missing = [tag for tag in alerts.fallback_tags if tag not in carried]
    if missing:
        problems.append(
            f"alerts.fallback_tags: no channel in {alerts.apprise_config} carries the tag(s) "
            f"{', '.join(missing)}: nothing would be sent when every other channel fails"
        )
    for c in channels:
        limit = next((getattr(s, "answer_timeout", None) for s in c.apprise), None)
        if c.schema == "modem" and limit is not None and limit >= alerts.send_timeout:
            problems.append(
                f"{c.display}: timeout={limit:g} must be below [alerts] send_timeout "
                f"({alerts.send_timeout:g}s): raise send_timeout or lower the modem's timeout"
            )
    return problems


def build_templates(config: Config) -> Templates:
    try:
        return Templates(
            language=config.alerts.language,
            site=config.site.name,
            overrides=config.alerts.templates,
            template_dir=config.alerts.template_dir,
        )
    except TemplateError as exc:
        raise ConfigError(f"alerts.templates: {exc}") from None


def build_delivery(
    config: Config, store: Store, *, clock: Callable[[], float] = time.time
) -> tuple[Outbox, Sender]:
    """The outbox the alarm engine enqueues into, and the sender component that drains it.

    The alerts tables must exist before the engine enqueues: `sentinel.migrations.migrate`
    creates them. Raises ConfigError for an unusable Apprise config or template.
    """
    alerts = config.alerts
    channels = load_configured_channels(alerts)
    # Kakao's rotated refresh token must outlive the process (alerts/tokens.py)
    TokenKeeper(store.path).attach(channels)
    outbox = Outbox(channels, alerts.routes, clock=clock)
    sender = Sender(
        outbox,
        store.write,
        build_templates(config),
        send_timeout=alerts.send_timeout,
        group_window=alerts.group_window,
        retry_max=alerts.retry_max,
        all_failed_after=alerts.all_failed_after,
        clock=clock,
        fallback_tags=alerts.fallback_tags,
        fallback_after=alerts.fallback_after,
    )
    return outbox, sender
