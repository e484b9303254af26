"""Paths that rsync or the kernel refuses on their own (a name too long, a file larger than
the target can hold...): set aside so they never hold up other paths, shown in status with
the reason, and tried again when they change or after a full pass."""

from __future__ import annotations

import os
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

import aiosqlite

from backup.journal import WriteTx
from backup.readability import unreadable_reason

# Shown in status and pages: enough to act on, not a flood.
SHOW_MAX = 20


# Characters that move the cursor, end a line or steer a terminal (newline, ESC, DEL, the
# C1 controls, line separators, bidirectional overrides): a file name holding them could
# forge lines of a page, the log or `sentinel status`, or clear the operator's screen.
_UNSHOWN = {"Cc", "Cf", "Zl", "Zp"}
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """`text` with every control character written as an escape (\\n, \\x1b, \\u202e): one
    line, nothing a terminal or a pager acts on."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if unicodedata.category(ch) not in _UNSHOWN:
            out.append(ch)
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


def shown(path: str, limit: int | None = None) -> str:
    """A path for people and JSON: bytes that are not UTF-8 appear as \\xNN, control
    characters as escapes (printable()); a path longer than `limit` characters is cut in the
    middle."""
    text = printable(os.fsencode(path).decode("utf-8", "backslashreplace"))
    if limit is not None and len(text) > limit:
        half = max(1, (limit - 5) // 2)
        text = f"{text[:half]}/.../{text[-half:]}"
    return text


class Quarantine:
    """The quarantined paths of one source (a copy in memory; the table is the truth)."""

    def __init__(
        self,
        source: str,
        db: aiosqlite.Connection,
        write: WriteTx,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self._db = db
        self._write = write
        self._clock = clock
        self.reasons: dict[str, str] = {}
        # the paths among them this account may not read: their own alarm, and the daemon
        # looks whether they became readable (backup/readability.py)
        self.unreadable: set[str] = set()

    async def load(self) -> None:
        async with self._db.execute(
            "SELECT path, reason FROM backup_quarantine WHERE source = ?", (self.source,)
        ) as cur:
            self.reasons = {os.fsdecode(r[0]): str(r[1]) async for r in cur}
        self.unreadable = {p for p, why in self.reasons.items() if unreadable_reason(why)}

    def __len__(self) -> int:
        return len(self.reasons)

    def __contains__(self, path: object) -> bool:
        return path in self.reasons

    async def add(self, items: Iterable[tuple[str, str]]) -> None:
        rows = [(self.source, os.fsencode(path), reason, self._clock()) for path, reason in items]
        if not rows:
            return
        async with self._write() as db:
            await db.executemany(
                "INSERT INTO backup_quarantine(source, path, reason, ts) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(source, path) DO UPDATE SET reason = excluded.reason",
                rows,
            )
        for _, raw, reason, _ts in rows:
            path = os.fsdecode(raw)
            self.reasons[path] = reason
            if unreadable_reason(reason):
                self.unreadable.add(path)
            else:
                self.unreadable.discard(path)

    async def release(self, paths: Iterable[str]) -> list[str]:
        """Takes the given paths out (they are to be tried again); returns those that were in."""
        out = [p for p in paths if p in self.reasons]
        if not out:
            return out
        async with self._write() as db:
            await db.executemany(
                "DELETE FROM backup_quarantine WHERE source = ? AND path = ?",
                [(self.source, os.fsencode(p)) for p in out],
            )
        for p in out:
            self.reasons.pop(p, None)
            self.unreadable.discard(p)
        return out


def read_quarantine(conn: sqlite3.Connection, source: str) -> dict[str, Any]:
    """For status: how many paths (and how many of them unreadable, the first of those),
    and the first SHOW_MAX with their reasons."""
    try:
        count = int(
            conn.execute(
                "SELECT COUNT(*) FROM backup_quarantine WHERE source = ?", (source,)
            ).fetchone()[0]
        )
        rows = conn.execute(
            "SELECT path, reason, ts FROM backup_quarantine WHERE source = ? ORDER BY ts, path "
            "LIMIT ?",
            (source, SHOW_MAX),
        ).fetchall()
        reasons = conn.execute(
            "SELECT path, reason FROM backup_quarantine WHERE source = ?", (source,)
        ).fetchall()
    except sqlite3.OperationalError:  # an older schema: nothing quarantined
        return {"count": 0, "unreadable": 0, "paths": []}
    unreadable = sorted(os.fsdecode(r[0]) for r in reasons if unreadable_reason(str(r[1])))
    return {
        "count": count,
        "unreadable": len(unreadable),
        # the first in name order, as the daemon's alarm names it
        "unreadable_first": shown(unreadable[0], 200) if unreadable else None,
        "paths": [
            {
                "path": shown(os.fsdecode(r[0])),
                "reason": printable(str(r[1])),
                "since": r[2],
                "unreadable": unreadable_reason(str(r[1])),
            }
            for r in rows
        ],
    }
