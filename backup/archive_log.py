"""Archive-log replication (issue 16): which closed logs of a database reached the replica,
the sequence they make per redo thread, the gaps in it and the data RPO it gives.

A log counts once it is on the replica whole. The *contiguous head* of a thread is the
newest arrived log with every log since the first one ever seen arrived too; the data RPO
is how long ago that log was closed (its mtime at the source): a restore from the replica
gets the database back to that moment, whatever else has arrived after a hole. A number
missing below the newest arrived log that is not waiting in the source either (deleted,
lost by the archive command) is a *gap*: no restore can cross it. Numbers at or below an
acknowledged floor are no gap: a new base backup starts recovery after them (PostgreSQL's
`<segment>.<offset>.backup` label in the archive sets the floor by itself;
`ArchiveLog.acknowledge` is the operator's).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from backup.journal import WriteTx
from backup.logname import PG_SEGMENT_SIZE, LogName, LogNaming
from backup.quarantine import shown

# Gaps named in status and pages: enough to act on, never a flood.
GAP_SHOWN = 10
# PostgreSQL's backup history file: pg_basebackup (or pg_backup_stop) archives
# <segment>.<offset>.backup once a base backup is complete; recovery from it starts there.
_PG_BACKUP_LABEL = re.compile(r"^(?P<segment>[0-9A-F]{24})\.[0-9A-F]{8}\.backup$")
_PG_PER_LOG = 0x1_0000_0000 // PG_SEGMENT_SIZE


PARTIAL = "partial log:"


def partial_reason(reason: str | None) -> bool:
    """A quarantine reason given by `ArchiveLog.partial`."""
    return reason is not None and reason.startswith(PARTIAL)


@dataclass(frozen=True, slots=True)
class LogSequence:
    """What the arrived logs give (the worst thread's head when there are several)."""

    head: int | None = None  # sequence number of the contiguous head
    head_name: str | None = None  # its file name, `shown()`
    head_closed: float | None = None  # its close time (mtime at the source)
    gap: tuple[str, ...] = ()  # missing numbers as ranges: "41-43", "t2:7" on thread 2
    floor: dict[int, int] = field(default_factory=dict)  # per thread: acknowledged up to

    def data_rpo(self, now: float) -> float | None:
        return None if self.head_closed is None else round(max(0.0, now - self.head_closed), 3)


class ArchiveLog:
    """The arrived logs of one archive-log replication (a copy in memory; the table is the
    truth) and the logs waiting in its source."""

    def __init__(
        self,
        source: str,
        root: Path,
        naming: LogNaming,
        db: aiosqlite.Connection,
        write: WriteTx,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.root = root
        self.naming = naming
        self._db = db
        self._write = write
        self._clock = clock
        # thread -> seq -> (name, closed)
        self._arrived: dict[int, dict[int, tuple[str, float]]] = {}
        self._waiting: dict[LogName, str] = {}  # whole logs in the source not arrived yet
        self._floor: dict[int, int] = {}
        self.sequence = LogSequence()
        self._saved = False

    # -- what a name is --------------------------------------------------------------------

    def parse(self, rel: str) -> LogName | None:
        name = os.path.basename(rel)
        # a regex's `$` also matches before a final newline: "1_7_9.arc\n" is no log
        return self.naming.parse(name) if name.isprintable() else None

    def partial(self, rel: str, size: int) -> str | None:
        """Why the log at `rel` must not ship yet (None: it may). A PostgreSQL segment is
        always the segment size: a shorter one is a copy still being written or cut short
        (a full disk), and shipping it would put a log on the replica that recovery stops
        at. Other databases' logs have no fixed size; an empty one is never whole."""
        if self.parse(rel) is None:
            return None
        if self.naming.postgresql and size != PG_SEGMENT_SIZE:
            return f"{PARTIAL} {size} of {PG_SEGMENT_SIZE} bytes, held until it is whole"
        if size == 0:
            return f"{PARTIAL} empty, held until it is written"
        return None

    def partial_at(self, rel: str) -> str | None:
        """`partial` for the file in the source now (None for a non-log or a gone path)."""
        if self.parse(rel) is None:
            return None
        try:
            st = os.lstat(os.path.join(self.root, rel))
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        return self.partial(rel, st.st_size)

    # -- source ----------------------------------------------------------------------------

    def note(self, rels: Iterable[str]) -> bool:
        """The watcher saw these paths change: a whole log there waits to arrive, one gone
        no longer does. A base backup label moves the floor. True when the sequence may
        have changed. Stats on the caller's thread: a batch of events, not a tree."""
        changed = False
        for rel in rels:
            changed |= self._note_one(rel)
        return changed

    def _note_one(self, rel: str) -> bool:
        label = _PG_BACKUP_LABEL.match(os.path.basename(rel)) if self.naming.postgresql else None
        if label is not None and os.path.lexists(os.path.join(self.root, rel)):
            found = self.naming.parse(label["segment"])
            if found is not None and found.seq - 1 > self._floor.get(found.thread, -1):
                self._floor[found.thread] = found.seq - 1
                return True
            return False
        name = self.parse(rel)
        if name is None:
            return False
        arrived = name.seq in self._arrived.get(name.thread, {})
        if not arrived and self.partial_at(rel) is None and os.path.lexists(self.root / rel):
            self._waiting[name] = rel
        else:
            self._waiting.pop(name, None)
        return True

    def scan(self, dirs: Iterable[str] = ("",)) -> tuple[list[str], list[tuple[str, str]]]:
        """Every whole log directly in `dirs` (the source's top level by default: archive
        commands write flat) and the partial ones with their reason. Run in a thread."""
        whole: list[str] = []
        partial: list[tuple[str, str]] = []
        for top in dirs:
            top = "" if top.strip("/") == "." else top.strip("/")
            try:
                entries = list(os.scandir(self.root / top))
            except OSError:
                continue
            for entry in entries:
                if self.parse(entry.name) is None and not _PG_BACKUP_LABEL.match(entry.name):
                    continue
                rel = f"{top}/{entry.name}" if top else entry.name
                why = self.partial_at(rel)
                if why is not None:
                    partial.append((rel, why))
                else:
                    whole.append(rel)
        return whole, partial

    # -- persistence -----------------------------------------------------------------------

    async def load(self) -> None:
        self._arrived.clear()
        async with self._db.execute(
            "SELECT thread, seq, name, closed FROM backup_log WHERE source = ?", (self.source,)
        ) as cur:
            async for thread, seq, name, closed in cur:
                self._arrived.setdefault(int(thread), {})[int(seq)] = (
                    os.fsdecode(bytes(name)),
                    float(closed),
                )
        async with self._db.execute(
            "SELECT floor FROM backup_log_state WHERE source = ?", (self.source,)
        ) as cur:
            row = await cur.fetchone()
        self._floor = {int(k): int(v) for k, v in json.loads(row[0]).items()} if row else {}
        whole, _ = await asyncio.to_thread(self.scan)
        self.note(whole)
        await self.save()

    async def arrived(self, rels: Iterable[str]) -> int:
        """These paths are on the replica now (a batch or a full pass worked): each whole
        log among them is recorded with its close time. Returns how many were new."""
        now = self._clock()
        rows: list[tuple[str, int, int, bytes, float, float]] = []
        for rel in rels:
            name = self.parse(rel)
            if name is None or name.seq in self._arrived.get(name.thread, {}):
                self._note_one(rel)  # a base backup label, or a log shipped again
                continue
            try:
                st = os.lstat(os.path.join(self.root, rel))
            except OSError:
                continue  # gone: what shipped was its deletion
            if not stat.S_ISREG(st.st_mode) or self.partial(rel, st.st_size) is not None:
                continue
            rows.append((self.source, name.thread, name.seq, os.fsencode(rel), st.st_mtime, now))
        if not rows:
            await self.save()
            return 0
        async with self._write() as db:
            await db.executemany(
                "INSERT OR IGNORE INTO backup_log(source, thread, seq, name, closed, arrived) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        for _, thread, seq, raw, closed, _ in rows:
            self._arrived.setdefault(thread, {})[seq] = (os.fsdecode(raw), closed)
            self._waiting.pop(LogName(thread, seq), None)
        await self.save()
        return len(rows)

    async def acknowledge(self) -> dict[int, int]:
        """An operator's word that the current gaps do not matter (a new base backup was
        taken after them): every number up to the newest arrived one is no gap any more."""
        for thread, logs in self._arrived.items():
            if logs:
                self._floor[thread] = max(self._floor.get(thread, -1), max(logs))
        await self.save()
        return dict(self._floor)

    async def save(self) -> LogSequence:
        """Works the sequence out again and writes it for `sentinel status`."""
        seq = self.compute()
        if seq == self.sequence and self._saved:
            return seq
        self.sequence = seq
        async with self._write() as db:
            await db.execute(
                "INSERT INTO backup_log_state(source, head_seq, head_name, head_closed, gap, "
                "floor, ts) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source) DO UPDATE SET "
                "head_seq = excluded.head_seq, head_name = excluded.head_name, "
                "head_closed = excluded.head_closed, gap = excluded.gap, "
                "floor = excluded.floor, ts = excluded.ts",
                (
                    self.source,
                    seq.head,
                    seq.head_name,
                    seq.head_closed,
                    json.dumps(list(seq.gap)),
                    json.dumps({str(k): v for k, v in seq.floor.items()}),
                    self._clock(),
                ),
            )
        self._saved = True
        return seq

    # -- the sequence ----------------------------------------------------------------------

    def compute(self) -> LogSequence:
        worst: tuple[float, int, str] | None = None
        gaps: list[str] = []
        for thread in sorted(self._arrived):
            logs = self._arrived[thread]
            if not logs:
                continue
            floor = self._floor.get(thread, -1)
            numbers = sorted(logs)
            head = numbers[0]
            broken = False
            missing: list[tuple[int, int]] = []  # runs (first, last) of missing numbers
            for prev, cur in itertools.pairwise(numbers):
                # a hole is handled by its ends: one stray name with a huge number (a
                # 16 MiB file named 00000001FFFFFFFF000000FF) must not make a list of 10^12
                lo, hi = max(prev + 1, floor + 1), cur
                if lo < hi:
                    broken = True
                    waiting = sorted(
                        n.seq for n in self._waiting if n.thread == thread and lo <= n.seq < hi
                    )
                    missing += _runs(lo, hi, waiting)
                if not broken:
                    head = cur
            name, closed = logs[head]
            if worst is None or closed < worst[0]:
                worst = (closed, head, name)
            gaps += self._ranges(thread, missing, logs)
        if worst is None:
            return LogSequence(floor=dict(self._floor))
        closed, head, name = worst
        if len(gaps) > GAP_SHOWN:
            gaps = [*gaps[:GAP_SHOWN], f"(+{len(gaps) - GAP_SHOWN} more)"]
        return LogSequence(head, shown(name, 200), closed, tuple(gaps), dict(self._floor))

    def _ranges(
        self, thread: int, missing: list[tuple[int, int]], logs: dict[int, tuple[str, float]]
    ) -> list[str]:
        out: list[str] = []
        where = "" if thread == 1 else f"t{thread}:"
        for start, end in missing:
            first, last = self.label(start, logs), self.label(end, logs)
            out.append(where + (first if start == end else f"{first}-{last}"))
        return out

    def label(self, seq: int, logs: dict[int, tuple[str, float]]) -> str:
        """How a person finds a (missing) log: PostgreSQL's segment file name, with the
        timeline of the nearest arrived log before it; else the number."""
        if self.naming.postgresql:
            below = [n for n in logs if n < seq]
            tli = os.path.basename(logs[max(below)][0])[:8] if below else "00000001"
            return f"{tli}{seq // _PG_PER_LOG:08X}{seq % _PG_PER_LOG:08X}"
        return str(seq)


def read_sequence(conn: sqlite3.Connection, source: str, now: float) -> dict[str, Any] | None:
    """For `sentinel status`: the data RPO, head and gap the replicator last worked out;
    None for a replication that is not archive-log."""
    try:
        row = conn.execute(
            "SELECT head_seq, head_name, head_closed, gap FROM backup_log_state WHERE source = ?",
            (source,),
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    if row is None:
        return None
    head_seq, head_name, head_closed, gap = row
    return {
        "data_rpo_seconds": None
        if head_closed is None
        else round(max(0.0, now - float(head_closed)), 3),
        "log_head": head_seq,
        "log_head_name": head_name,
        "log_closed": head_closed,
        "log_gap": json.loads(gap),
    }


def _runs(lo: int, hi: int, waiting: list[int]) -> list[tuple[int, int]]:
    """The runs (first, last) of [lo, hi) not in `waiting` (sorted, each inside)."""
    runs: list[tuple[int, int]] = []
    start = lo
    for seq in waiting:
        if seq > start:
            runs.append((start, seq - 1))
        start = max(start, seq + 1)
    if start < hi:
        runs.append((start, hi - 1))
    return runs
