"""The ransomware guard: a mass change of existing files pauses shipping."""

from __future__ import annotations

from collections import OrderedDict
from enum import StrEnum

from backup.spec import GuardSettings


class Verdict(StrEnum):
    OK = "ok"
    HOLD = "hold"  # half way to a trip: hold shipping for a moment to see where it goes
    TRIP = "trip"


class Guard:
    """Counts distinct existing files modified, deleted or renamed away within a sliding
    window. Files created within the window do not count (a big copy-in is not an attack)."""

    def __init__(self, settings: GuardSettings) -> None:
        self.settings = settings
        self._hits: OrderedDict[str, float] = OrderedDict()
        self._created: OrderedDict[str, float] = OrderedDict()

    def observe(self, rel: str, kind: str, now: float) -> None:
        """`kind`: "create", "write", "delete", "move_from", "move_to", "attrib"."""
        if not self.settings.enabled:
            return
        if kind in ("create", "move_to"):
            self._created[rel] = now
            self._created.move_to_end(rel)
            return
        if kind not in ("write", "delete", "move_from"):
            return
        if kind == "write" and rel in self._created:
            return
        if kind != "write" and self._created.pop(rel, None) is not None:
            # made within the window and gone again: an archive command's or an editor's
            # temporary name, no existing file lost (a busy database's tmp+rename of each
            # WAL segment counted one hit per segment and could trip the guard)
            return
        self._hits[rel] = now
        self._hits.move_to_end(rel)

    def count(self, now: float) -> int:
        cutoff = now - self.settings.window
        for d in (self._hits, self._created):
            while d:
                _, ts = next(iter(d.items()))
                if ts >= cutoff:
                    break
                d.popitem(last=False)
        return len(self._hits)

    def verdict(self, now: float, existing_files: int) -> Verdict:
        if not self.settings.enabled:
            return Verdict.OK
        n = self.count(now)
        s = self.settings
        share_limit = s.max_share * max(existing_files, 1)
        if n > s.max_files or (n >= s.min_files and n > share_limit):
            return Verdict.TRIP
        if n * 2 > s.max_files or (n * 2 >= s.min_files and n * 2 > share_limit):
            return Verdict.HOLD
        return Verdict.OK

    def reset(self) -> None:
        self._hits.clear()
        self._created.clear()
