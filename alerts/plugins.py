"""sentinel's own Apprise schemes, for the demo and for sites without a messenger yet.

- `console://` prints each message to stdout (the journal, under systemd).
- `sentinelfile:///path/to/file` appends one line per message (title and body joined, newlines
  escaped) to the file, creating it if needed.
- `smsagentmysql://`, `smsagentpg://` insert into an SMS agent's queue table
  (alerts/sms_agent.py).
- the Korean SMS gateways of alerts/gateways/ (aligo://, nhnsms://, solapi://).
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

from apprise.decorators import notify
from apprise.manager_plugins import NotificationManager

from alerts import gateways, sms_agent
from alerts.modem import plugin as modem

CONSOLE_SCHEME = "console"
FILE_SCHEME = "sentinelfile"
SMS_AGENT_SCHEMES = sms_agent.SCHEMES
# ours print no secret; a county's plugin URL (plugin_dir) is masked like any other.
# modem:// is shown as device and numbers: its PIN is in the query, which is never shown
OWN_SCHEMES = frozenset({CONSOLE_SCHEME, FILE_SCHEME, modem.SCHEME})


class PluginDirError(ValueError):
    """A county's plugin directory is missing or holds a file Apprise cannot import."""


def register() -> None:
    """Registers our schemes with Apprise once per process (the registry is global)."""
    manager = NotificationManager()
    if CONSOLE_SCHEME not in manager:
        notify(on=CONSOLE_SCHEME, name="sentinel console")(_to_console)
    if FILE_SCHEME not in manager:
        notify(on=FILE_SCHEME, name="sentinel file")(_to_file)
    for agent in (sms_agent.SmsAgentMySQL, sms_agent.SmsAgentPostgres):
        if agent.secure_protocol not in manager:
            manager.add(agent)
    gateways.register()
    modem.register()  # modem:// (alerts/modem/plugin.py): SMS through a cellular modem


def refusal(url: str) -> str | None:
    """Why one of our plugins refuses this URL (no secret in it), or None."""
    return sms_agent.refusal(url) or gateways.refusal(url)


def _line(body: str, title: str) -> str:
    text = f"{title}: {body}" if title else body
    return text.replace("\r", "").replace("\n", " | ")


def _to_console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    print(f"[{notify_type}] {_line(body, title)}", file=sys.stdout, flush=True)
    return True


def file_path(meta: dict[str, Any]) -> Path:
    """`sentinelfile:///var/log/x.log` parses as host "var" + path "/log/x.log"."""
    host = meta.get("host") or ""
    path = meta.get("fullpath") or ""
    return Path(f"/{host}{path}" if host else path)


def _to_file(
    body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kwargs: Any
) -> bool:
    path = file_path(meta)
    with path.open("a", encoding="utf-8") as out:
        out.write(_line(body, title) + "\n")
    return True


_UNIMPORTABLE = re.compile(r"^Module exception raised from (.*?) \(name=[^)]*\) ")


class _Collect(logging.Filter):
    """Keeps Apprise's own word on a plugin file it could not import (a DEBUG line)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Module exception raised from"):
            self.failures.append(message)
        return record.levelno >= logging.INFO


def load_plugin_dir(path: Path) -> None:
    """Imports a county's own Apprise plugins (`@notify` functions in *.py files) through
    Apprise's plugin-path loader, as `apprise --plugin-path` does. Apprise skips a file
    that fails to import with a DEBUG line; here that is an error naming the file."""
    if not path.is_dir():
        raise PluginDirError(f"{path}: plugin directory not found")
    logger = logging.getLogger("apprise")
    collect, level = _Collect(), logger.level
    logger.addFilter(collect)
    logger.setLevel(min(level or logging.WARNING, logging.DEBUG))
    try:
        # cache=False: a file fixed after a refusal is imported again on the next load
        # (check-config, SIGHUP), not skipped as already seen
        NotificationManager().module_detection([str(path)], cache=False)
    finally:
        logger.setLevel(level)
        logger.removeFilter(collect)
    if collect.failures:
        # Apprise says "Module exception raised from FILE (name=apprise.custom...) ERROR"
        said = [_UNIMPORTABLE.sub(r"cannot import \1: ", m) for m in collect.failures]
        raise PluginDirError(f"{path}: " + "; ".join(said))
