"""`sentinel test-alert [--tag TAG]`: a test message through every channel, right now."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time

from alerts import reasons
from alerts.channels import Channel
from alerts.event import AlarmEvent, EventType, Severity
from alerts.sender import deliver
from alerts.templates import Templates
from alerts.tokens import TokenKeeper
from sentinel.cli.common import load_or_exit
from sentinel.cli.preview import LANGUAGES, preview
from sentinel.config import ConfigError
from sentinel.delivery import build_templates, load_configured_channels
from sentinel.store import DB_NAME

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds this module's subcommands."""
    parser = sub.add_parser(
        "test-alert",
        help="send a test message through every alert channel and show each result",
        description=(
            "Sends a test message directly through each channel of the Apprise config (not "
            "through the daemon's outbox) and prints each channel's masked URL with ok or "
            "the reason it failed. Exit 0 if all succeeded, 1 if any failed, 2 on a config "
            "error."
        ),
    )
    parser.add_argument("--tag", help="only the channels carrying this Apprise tag")
    parser.add_argument(
        "--preview",
        action="store_true",
        help="send nothing: print every template (SMS with its byte count, and the long "
        "form) for a sample of each alarm kind and event, in Korean and English",
    )
    parser.add_argument("--language", choices=LANGUAGES, help="with --preview: only this language")
    parser.set_defaults(func=test_alert)


def test_alert(args: argparse.Namespace) -> int:
    if args.preview:
        return preview(args)
    config = load_or_exit(args)
    try:
        channels = load_configured_channels(config.alerts)
        # Kakao's saved refresh token, and a token rotated by this test kept for the daemon
        TokenKeeper(config.daemon.state_dir / DB_NAME).attach(channels)
        templates = build_templates(config)
    except ConfigError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not channels:
        print("sentinel: no alert channels: set [alerts] apprise_config", file=sys.stderr)
        return EXIT_CONFIG
    if args.tag:
        channels = [c for c in channels if args.tag in c.tags]
        if not channels:
            print(f"sentinel: no channel is tagged {args.tag!r}", file=sys.stderr)
            return EXIT_FAILED
    event = AlarmEvent(
        alarm_id=f"T{secrets.token_hex(2).upper()}",
        event=EventType.TEST,
        severity=Severity.INFO,
        sensor_id="sentinel",
        location=config.site.name,
        kind="test",
        value=None,
        unit="",
        reason="sentinel test-alert",
        ts=time.time(),
        cause=reasons.TEST,
    )
    results = asyncio.run(_send_all(channels, templates, event, config.alerts.send_timeout))
    failed = 0
    width = max(len(c.display) for c in channels)
    for channel, (ok, error) in zip(channels, results, strict=True):
        tags = ",".join(sorted(channel.tags)) or "-"
        verdict = "ok" if ok else f"FAILED: {error}"
        print(f"{channel.display:<{width}}  [{tags}] {channel.form:<4}  {verdict}")
        failed += not ok
    if failed:
        print(f"{failed} of {len(channels)} channel(s) failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


async def _send_all(
    channels: list[Channel], templates: Templates, event: AlarmEvent, limit: float
) -> list[tuple[bool, str]]:
    return list(await asyncio.gather(*(deliver(c, templates, [event], limit) for c in channels)))
