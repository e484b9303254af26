"""`sentinel test-alert --preview`: every message template, rendered for a sample of each
alarm kind and event, in Korean and English, printed and never sent.

It needs no channel and no running daemon. With a config (--config, $SENTINEL_CONFIG or
/etc/sentinel/sentinel.toml) it uses the site's name and, for the configured language, the
deployment's own template overrides; without one, the demo's defaults.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from alerts.samples import every_event, groups
from alerts.templates import SMS_LIMIT_BYTES, Message, TemplateError, Templates, sms_bytes
from sentinel.cli.common import load_or_exit
from sentinel.config import config_path
from sentinel.config.loader import ENV_VAR

LANGUAGES = ("ko", "en")
EXIT_OK = 0
EXIT_CONFIG = 2


def preview(args: argparse.Namespace) -> int:
    site, language, overrides, template_dir = _settings(args)
    languages = (args.language,) if args.language else LANGUAGES
    for lang in languages:
        own = lang == language  # a deployment's overrides are written in its own language
        try:
            templates = Templates(
                language=lang,
                site=site,
                overrides=overrides if own else None,
                template_dir=template_dir if own else None,
            )
        except TemplateError as exc:
            print(f"sentinel: alerts.templates: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"##### {lang} #####")
        for label, event in every_event(lang):
            _show(label, templates.render(event, "sms"), templates.render(event, "long"))
        for label, events in groups(lang):
            _show(
                label, templates.render_group(events, "sms"), templates.render_group(events, "long")
            )
    return EXIT_OK


def _show(label: str, sms: Message, long: Message) -> None:
    size = sms_bytes(sms.body)
    verdict = "" if size <= SMS_LIMIT_BYTES else "  TOO LONG"
    print(f"=== {label}")
    print(f"SMS ({size}/{SMS_LIMIT_BYTES} bytes){verdict}: {sms.body}")
    print(f"LMS title: {long.title}")
    print(long.body)
    print()


def _settings(
    args: argparse.Namespace,
) -> tuple[str, str, Mapping[str, str] | None, Path | None]:
    """(site, language, overrides, template dir) from the config, or the demo's defaults
    when no config was named (--config, $SENTINEL_CONFIG) and the default one does not
    exist; a named config that cannot be loaded is an error, as for every command."""
    named = getattr(args, "config", None) or os.environ.get(ENV_VAR)
    path = config_path(getattr(args, "config", None))
    if not named and not path.exists():
        from sentinel.demo import SITE  # the demo's site name, not its machinery

        print(
            f"sentinel: no config at {path}: previewing with the demo's defaults", file=sys.stderr
        )
        return SITE, "ko", None, None
    config = load_or_exit(args)
    alerts = config.alerts
    return config.site.name, alerts.language, alerts.templates, alerts.template_dir
