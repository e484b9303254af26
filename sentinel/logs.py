"""Logging to stderr: timestamps for people, `<N>` priority prefixes for journald."""

from __future__ import annotations

import logging
import os
import sys

# syslog priorities journald reads from a `<N>` line prefix
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """journald adds its own timestamps; it reads the level from the `<N>` prefix."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        level = _PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{level}>{line}" for line in text.splitlines())


def under_journald() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM"))


def setup_logging(level: str = "info", *, extra_filters: tuple[logging.Filter, ...] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if under_journald():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    for f in extra_filters:
        handler.addFilter(f)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # third-party chatter stays at warning unless debugging
    for noisy in ("apprise", "aiosqlite", "sh", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    # pymodbus logs a frame dump at ERROR for every unanswered poll; our Modbus source
    # already reports a silent device (rate-limited) and marks its sensors lost.
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)
