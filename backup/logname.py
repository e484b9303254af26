"""Names of a database's closed logs: which thread and sequence number a file in an
archive-log directory is (issue 16). PostgreSQL WAL segments, Oracle's `%t_%s_%r` archive
logs and Tibero's, or a configured regex with a named group `seq` (and `thread`).

A name that does not parse is not a log (a `.partial` or `.history` file, a temporary name
an archive command writes before its rename): it is never counted in the sequence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# PostgreSQL: 24 hex digits, timeline + log id + segment within the log id. With the
# default 16 MiB segments there are 0x100 segments per log id, so log 0x1, segment 0x05
# follows log 0x0, segment 0xFF. Timelines do not restart the count.
_PG = re.compile(r"^(?P<tli>[0-9A-F]{8})(?P<log>[0-9A-F]{8})(?P<seg>[0-9A-F]{8})$")
PG_SEGMENT_SIZE = 16 * 1024 * 1024
PRESETS: dict[str, str] = {
    "postgresql": _PG.pattern,
    # LOG_ARCHIVE_FORMAT = '%t_%s_%r.arc' (thread, sequence, resetlogs id)
    "oracle": r"^(?P<thread>\d+)_(?P<seq>\d+)_(?P<resetlogs>\d+)\.(?:arc|ARC|dbf|DBF|log)$",
    # Tibero's default LOG_ARCHIVE_FORMAT 'log-t%t-r%r-s%s.arc'
    "tibero": r"^log-t(?P<thread>\d+)-r(?P<resetlogs>\d+)-s(?P<seq>\d+)\.arc$",
}


@dataclass(frozen=True, slots=True, order=True)
class LogName:
    thread: int
    seq: int


class LogNaming:
    """Parses file names of one archive-log replication."""

    def __init__(
        self,
        preset: str | None,
        pattern: str | None = None,
        *,
        segment_size: int = PG_SEGMENT_SIZE,
    ) -> None:
        if pattern is None and preset not in PRESETS:
            raise ValueError(f"unknown log naming preset {preset!r}; known: {sorted(PRESETS)}")
        self.postgresql = pattern is None and preset == "postgresql"
        self._regex = re.compile(pattern if pattern is not None else PRESETS[str(preset)])
        self._per_log = 0x1_0000_0000 // segment_size

    def parse(self, name: str) -> LogName | None:
        # the whole name: `$` alone also matches before a final newline, and a pattern
        # without `$` would take "7.arc.tmp", an archive command's unfinished copy
        found = self._regex.fullmatch(name)
        if found is None:
            return None
        if self.postgresql:
            return LogName(1, int(found["log"], 16) * self._per_log + int(found["seg"], 16))
        groups = found.groupdict()
        thread = groups.get("thread")
        return LogName(int(thread) if thread else 1, int(found["seq"]))
