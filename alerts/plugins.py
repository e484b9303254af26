"""sentinel's own Apprise schemes, for the demo and for sites without a messenger yet.

- `console://` prints each message to stdout (the journal, under systemd).
- `sentinelfile:///path/to/file` appends one line per message (title and body joined, newlines
  escaped) to the file, creating it if needed.
- `smsagentmysql://`, `smsagentpg://` insert into an SMS agent's queue table
  (alerts/sms_agent.py).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from apprise.decorators import notify
from apprise.manager_plugins import NotificationManager

from alerts import sms_agent

CONSOLE_SCHEME = "console"
FILE_SCHEME = "sentinelfile"
SMS_AGENT_SCHEMES = sms_agent.SCHEMES


def register() -> None:
    """Registers both schemes with Apprise once per process (the registry is global)."""
    manager = NotificationManager()
    if CONSOLE_SCHEME not in manager:
        notify(on=CONSOLE_SCHEME, name="sentinel console")(_to_console)
    if FILE_SCHEME not in manager:
        notify(on=FILE_SCHEME, name="sentinel file")(_to_file)
    for agent in (sms_agent.SmsAgentMySQL, sms_agent.SmsAgentPostgres):
        if agent.secure_protocol not in manager:
            manager.add(agent)


def refusal(url: str) -> str | None:
    """Why one of our plugins refuses this URL (no secret in it), or None."""
    return sms_agent.refusal(url)


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
