"""One replicated source: watcher -> journal -> shipper, plus the scheduled full reconcile,
verify and version pruning. A `Component` for the daemon's supervisor (run/health)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import sqlite3
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import aiosqlite

from backup.adoption import replica_holds_files, source_adoptable
from backup.append_versions import drop_append_versions
from backup.archive_log import ArchiveLog, partial_reason
from backup.coalesce import Coalescer, limits_for
from backup.control import DISCARDED
from backup.guard import Guard, Verdict
from backup.health import ReplicationHealth
from backup.journal import Entry, Journal, WriteFn, WriteTx
from backup.local_copy import COPY_MAX, LocalShip
from backup.markers import (
    SOURCE_MARKER,
    TARGET_MARKER,
    TargetCheck,
    check_target,
    source_problem,
    write_source_marker,
    write_target_marker,
)
from backup.preview import Preview, already_matches, damaged, preview_full_sync
from backup.quarantine import Quarantine, printable, shown
from backup.readability import DIR_DENIED, FILE_DENIED, readable_now, sender_denied
from backup.rsync import Outcome, RsyncResult, target_condition
from backup.spec import ReplicationSpec
from backup.state import ReplicatorState, load_state, put_state, save_state
from backup.stream import close_session, ship_plain, streams, usable
from backup.stream import state_of as stream_state
from backup.transfer import (
    full_sync,
    lock_target,
    remove_partials,
    ship_batch,
    verify_replica,
)
from backup.versions import prune_versions
from backup.watcher import CREATED_OPEN, SourceGone, Watcher, too_long_reason, unwatchable
from common.retry import Backoff

log = logging.getLogger("backup.replicator")

# Events are gathered this long before one journal transaction (a burst becomes one batch).
COLLECT_DELAY = 0.005
# A first pass and the first walk run side by side: entries changed since this long before
# the pass began are shipped after it (ctime has a clock tick's granularity; a second also
# covers a small step of the clock)
CTIME_SLACK = 1.0
# changes held for a coalesced run are journaled this long before it starts
JOIN_LEAD = 0.004
# The success figures of direct runs (last success, files shipped) go to the database this
# long after the first one not written yet; status reads the ones in memory.
FIGURES_EVERY = 1.0
# Half way to a guard trip, shipping waits up to this long for the count to settle.
HOLD_MAX = 3.0
HOLD_STEP = 0.25
GUARD_POLL = 1.0
PRUNE_EVERY = 86400.0
VERIFY_SAMPLE = 20
RETRY_INITIAL = 1.0
# While the source or target is missing, how often it is looked at again.
BLOCKED_POLL = 2.0
# How often a running replicator checks that its source is still there (and mounted).
SOURCE_POLL = 2.0
# A remote replica's marker costs one rsync run (a dry-run push): checked this often while
# shipping, and again after every failed transfer (a local one is a stat, every batch).
TARGET_CHECK_EVERY = 30.0
# How often the database is read for guard trips and decisions made by `sentinel backup`.
STATE_POLL = 5.0
# guard_reason of a trip by the full pass's dry run; `resume` keeps it, `discard` replaces it.
FULL_PASS_TRIP = "full pass would"

MISSING_SOURCE = "source missing or not mounted"
MISSING_TARGET = "target missing or not mounted"
FOREIGN_TARGET = "target belongs to another replication"
# Why an upgraded install (backup/adoption.py) still has a missing marker.
NOT_ADOPTED = (
    "not adopted after the upgrade: sentinel adopts a marker by itself only where "
    "the directory holds files"
)
# rsync exits that name a file rather than the link (23 partial transfer; 11 file I/O, e.g.
# a file larger than the target's free space): worth splitting the batch to find the file.
PER_PATH_CODES = frozenset({11, 23})
# A failing batch is split in halves until the bad paths are alone; at most this many rsync
# runs per batch (about two per halving for each bad path, ~13 halvings for 5000 files).
SPLIT_MAX_RUNS = 32
# Paths set aside because the replica had no room are tried again this often by themselves
# (and sooner on a local replica whose free space grew).
SPACE_RETRY = 600.0
# Paths set aside because this account may not read them are looked at this often. A chmod
# or setfacl on the path or on a directory above it in the source retries it at once (an
# inotify event); this is the backstop for access that changes without one.
UNREADABLE_RETRY = 30.0


class TargetRecreated(Exception):
    """rsync had to create the replica root: the replica was gone (see `_target_recreated`)."""


class Replicator:
    """Streams every change of `spec.source` to `spec.target`.

    `db` is the daemon's connection (reads), `write` its serialised write transaction;
    the backup tables must already be migrated (`backup.schema.MIGRATIONS`).
    """

    def __init__(
        self,
        spec: ReplicationSpec,
        db: aiosqlite.Connection,
        write: WriteTx,
        *,
        journal_write: WriteTx | None = None,
        journal_run: WriteFn | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`journal_write` (default: `write`) carries the per-batch bookkeeping: the change
        journal and the last-success figures. It may skip the fsync (see sentinel's
        `Store.fast_write`): after a power loss the full reconcile at start finds every
        change again. Guard trips and failures always go through `write`. `journal_run`
        (sentinel's `Store.fast_run`) is the same transaction in one hop to the database
        thread, for the journal's record/complete."""
        self.spec = spec
        self.name = f"replication:{spec.name}"
        self._db = db
        self._write = write
        self._journal_write = journal_write or write
        self._clock = clock
        self.journal = Journal(spec.name, db, self._journal_write, run=journal_run, clock=clock)
        self.quarantine = Quarantine(spec.name, db, write, clock=clock)
        # kind = "archive-log": which closed logs arrived, their sequence, the data RPO
        self.archive = (
            None
            if spec.log_naming is None
            else ArchiveLog(spec.name, spec.source, spec.log_naming, db, write, clock=clock)
        )
        self._refused: dict[str, str] = {}  # from the watcher, not yet in the quarantine
        self.guard = Guard(spec.guard)
        # The live guard counts one event per path; a directory deleted or moved away is one
        # event for all the replica files below it. A batch holding such a path is measured
        # first (its own command with --dry-run), like a full pass: these are those paths.
        self._dirs_gone: set[str] = set()
        # after `sentinel backup discard` the replica differs from the source in what was
        # dropped: every batch is measured until a full pass ran
        self._measure_all = False
        self._approved_upto = 0  # journal seq up to which `resume` approved the pending rows
        self.watcher: Watcher | None = None
        self._changes: set[str] = set()
        # monotonic times the coalescing window counts from: when the oldest change not yet
        # journaled was seen, and the oldest journaled since the last run began
        self._changes_since: float | None = None
        self._journaled_since: float | None = None
        self._changed = asyncio.Event()
        self._ship_wakeup = asyncio.Event()
        self._reconcile_wakeup = asyncio.Event()
        self._reconcile_reason: str | None = None
        self._verify_requested = False
        self._transfer = asyncio.Lock()
        # when the next batch ships: a stream of sparse writes shares runs (issue 18)
        self.coalesce = Coalescer(
            limits_for(spec.target.remote, spec.latency_budget, stream=streams(spec))
        )
        # a local replica's plain changes ship from the journal loop (`_direct_possible`)
        self._direct_run = usable(spec) and spec.reconcile_at_start
        self._direct_wait = 0.0  # the window the journal loop waited for a direct run
        # a batch taken by the journal loop and not yet recorded or shipped: wall time of
        # its oldest change, and the journal's sequence before it
        self._in_hand_since: float | None = None
        self._in_hand_seq: int | None = None
        # monotonic time by which the success figures of direct runs not in the database
        # yet are written there (None: none waiting)
        self._figures_due: float | None = None
        self._marker_seen: tuple[int, ...] | None = None  # identity of the marker last read
        self._state = ReplicatorState()
        self._verify: dict[str, Any] | None = None
        self._running = False
        self._phase = "starting"
        self._hold_since: float | None = None
        self.transfers = 0
        self._started = clock()
        self._source_missing: str | None = None
        self._target_missing: str | None = None
        self._target_checked: float | None = None  # monotonic time of the last good check
        self._target_failure: RsyncResult | None = None  # why the last check could not tell
        self._target_lock = asyncio.Lock()
        self._watched_before = False
        # paths released from the quarantine for another try after a lack of space
        self._retrying: set[str] = set()
        self._space_retried: float | None = None  # when they were last tried
        self._unreadable_checked: float | None = None  # when unreadable ones were looked at
        # paths set aside as unreadable, taken out for another try and not shipped yet: their
        # alarm stays until they really ship (readable by open() is no proof rsync agrees)
        self._unreadable_pending: set[str] = set()
        self._free_at_aside: int | None = None  # a local replica's free bytes back then
        self._room_again = False  # a transfer worked after the replica ran out of room
        self._recreated: str | None = None  # the root rsync re-created, when it did
        # bumped each time the shipper has handled a wake-up (tests wait on it)
        self.ship_rounds = 0
        self.last_skip = ""  # why the last reconcile() did not run

    # -- Component -----------------------------------------------------------------------

    async def run(self) -> None:
        self.spec.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.load()
        self._verify = await self._load_last_verify()
        self._started = self._clock()
        # A missing or unmounted source is a state to report and wait out, not a crash:
        # nothing runs rsync until the source (with its marker) is back.
        while True:
            problem = await asyncio.to_thread(self._source_problem)
            if problem is not None:
                await self._source_lost(problem)
                await asyncio.sleep(BLOCKED_POLL)
                continue
            await self._source_back()
            try:
                await self._run_watched()
            except* SourceGone as group:
                await self._source_lost(str(group.exceptions[0]))

    async def _run_watched(self) -> None:
        watcher = Watcher(
            self.spec.source,
            self.spec.filters,
            self._on_change,
            self._on_overflow,
            self._on_refused,
            self._dirs_gone.add,
        )
        self.watcher = watcher
        if self._watched_before:
            first: str | None = "source back"  # changes while it was gone were missed
        elif self.spec.reconcile_at_start or self._adopting:
            # adopted markers are confirmed by a guarded full pass, whatever the config
            first = "start"
        else:
            first = None
        try:
            async with asyncio.TaskGroup() as tg:
                passed: asyncio.Task[None] | None = None
                since = None
                if first is not None:
                    # the first pass does not wait for the walk (at 10,000 directories the
                    # walk was a sixth of a first sync); what changed meanwhile in a
                    # directory not yet watched is found by its ctime and shipped after it
                    since = time.time() - CTIME_SLACK
                    passed = tg.create_task(self._first_pass(first), name=f"{self.name}:first")
                # the first walk of a big tree takes a while: keep the loop (and heartbeat) alive
                await asyncio.to_thread(watcher.open, since)
                await self._set_aside_refused()
                await self._note_vanished()
                self._changed_meanwhile(watcher.changed)
                watcher.changed = []  # not kept for the daemon's life (a clock step lists all)
                self._watched_before = True
                # the first pass ran beside the walk: a target it found missing stays so
                self._phase = "running" if self._target_missing is None else "target missing"
                if self.journal.pending:
                    self._ship_wakeup.set()
                tg.create_task(watcher.run(), name=f"{self.name}:watch")
                tg.create_task(self._journal_loop(), name=f"{self.name}:journal")
                tg.create_task(self._ship_loop(), name=f"{self.name}:ship")
                tg.create_task(self._schedule_loop(passed), name=f"{self.name}:schedule")
                tg.create_task(self._source_loop(), name=f"{self.name}:source")
        finally:
            watcher.close()
            close_session(self.spec)  # the receiver sees its input end, and exits
            self._phase = "stopped"

    async def _first_pass(self, reason: str) -> None:
        """The full pass that starts with the watches; a failed one is retried by the
        schedule loop, like any requested pass."""
        if not await self._scheduled_reconcile(reason):
            self.request_reconcile(reason)

    def _changed_meanwhile(self, paths: list[tuple[str, bool]]) -> None:
        """Paths the first walk found changed since the first pass began: the pass may have
        read their directory before its watch existed, so they go through the journal (a
        directory as itself: an entry added or removed there, shipped with -d --delete).
        The live guard is not told: a ctime says something changed, not whether a file was
        new or overwritten, and files put in place just before a start are not damage (60
        new archive logs tripped it). Their batches are measured instead (a dry run, like
        a directory deleted): what the pass had copied and was then overwritten or deleted
        is damage the pass's own dry run could not see."""
        if not paths:
            return
        log.info(
            "replication %s: %d paths changed while the first pass started; shipped after it",
            self.spec.name,
            len(paths),
        )
        changed = {rel for rel, _is_dir in paths if rel != SOURCE_MARKER}
        if self.spec.guard.enabled:
            self._dirs_gone |= changed
        self._changes |= changed
        if changed and self._changes_since is None:
            self._changes_since = time.monotonic()
        self._changed.set()

    async def load(self) -> None:
        """Reads the persisted journal/state (run() does it; admin commands call it)."""
        await self.journal.load()
        await self.quarantine.load()
        self._state = await load_state(self._db, self.spec.name)
        if self.archive is not None:
            await self.archive.load()
        self._measure_all = self._state.guard_reason == DISCARDED

    async def _save(self, write: WriteTx, **values: Any) -> None:
        """Writes `values` to backup_state, then to the copy in memory."""
        await save_state(write, self.spec.name, **values)
        self._state = replace(self._state, **values)

    async def _note_vanished(self) -> None:
        """`_dirs_gone` lives in memory: a pending path that no longer exists in the source
        may be a directory deleted before a restart, so its batch is measured too (a file's
        costs only a dry run)."""
        if not self.spec.guard.enabled or not self.journal.pending:
            return
        root = self.spec.source
        pending = await self.journal.paths()
        gone = await asyncio.to_thread(
            lambda: {p for p in pending if p != "." and not os.path.lexists(root / p)}
        )
        self._dirs_gone |= gone

    def health(self) -> dict[str, Any]:
        """The `Component` view: `replication_health()` as JSON for the heartbeat row."""
        return self.replication_health().as_dict()

    def replication_health(self) -> ReplicationHealth:
        now = self._clock()
        w = self.watcher
        st = self._state
        unreadable = self.quarantine.unreadable | self._unreadable_pending
        return ReplicationHealth(
            source=str(self.spec.source),
            target=self.spec.target.describe(),
            phase=self._phase,
            pending=self.journal.pending,
            rpo=round(self.journal.rpo(now), 3),
            last_success=st.last_success,
            consecutive_failures=st.consecutive_failures,
            last_error=st.last_error,
            shipped_files=st.shipped_files,
            transfers=self.transfers,
            transfer_running=self._transfer.locked(),
            guard_tripped=st.guard_tripped,
            guard_count=st.guard_count,
            guard_reason=st.guard_reason,
            source_missing=self._source_missing is not None,
            target_missing=self._target_missing is not None,
            blocked=self._source_missing or self._target_missing,
            last_full=st.last_full,
            verify_mismatch=bool(self._verify and not self._verify["ok"]),
            last_verify=self._verify,
            watch_limit=bool(w and w.watch_limit),
            watch_limit_error=w.watch_limit_error if w else None,
            watches=w.watches if w else 0,
            files=w.file_count if w else 0,
            overflows=w.overflows if w else 0,
            quarantined=len(self.quarantine),
            quarantined_other=len(self.quarantine) - len(self.quarantine.unreadable),
            unreadable=len(unreadable),
            unreadable_first=shown(min(unreadable), 200) if unreadable else None,
            stream=self._stream_health(),
            **self._log_health(now),
        )

    def _stream_health(self) -> dict[str, Any] | None:
        state = stream_state(self.spec)
        if state is None:
            return None
        return {
            "up": state.up,
            "error": state.error,
            "down_since": state.down_since,
            "files": state.files,
        }

    def _log_health(self, now: float) -> dict[str, Any]:
        if self.archive is None:
            return {}
        seq = self.archive.sequence
        return {
            "archive_log": True,
            "data_rpo": seq.data_rpo(now),
            "log_head": seq.head,
            "log_gap": seq.gap,
        }

    # -- requests (from the scheduler, overflow, or by hand) -------------------------------

    def request_reconcile(self, reason: str) -> None:
        self._reconcile_reason = self._reconcile_reason or reason
        self._reconcile_wakeup.set()

    def request_verify(self) -> None:
        self._verify_requested = True
        self._reconcile_wakeup.set()

    @property
    def caught_up(self) -> bool:
        return (
            self.journal.pending == 0
            and not self._changes
            and not self._transfer.locked()
            and self._reconcile_reason is None
        )

    # -- watcher callbacks (sync, on the loop) ---------------------------------------------

    def _on_change(self, rel: str, kind: str) -> None:
        if rel == SOURCE_MARKER:  # not a document (never shipped); its loss is checked
            return
        self.guard.observe(rel, "create" if kind == CREATED_OPEN else kind, self._clock())
        if kind != CREATED_OPEN:
            if self._changes_since is None:
                self._changes_since = time.monotonic()
            self._changes.add(rel)
            if kind == "attrib" and self.quarantine.unreadable and self._is_dir(rel):
                # access granted on a directory (setfacl, chmod) sends no event for what is
                # below it: the paths set aside there as unreadable get another try now.
                # Only for a directory: `setfacl -R` sends one event per file, and scanning
                # every set-aside path for each made it quadratic on the event loop.
                prefix = rel + "/"
                self._changes.update(p for p in self.quarantine.unreadable if p.startswith(prefix))
            self._changed.set()
        elif self._refused:
            self._changed.set()  # a new directory was refused: record that

    def _mode(self, rel: str) -> int | None:
        """The source path's lstat mode; None when it is gone."""
        try:
            return os.lstat(os.path.join(self.spec.source, rel)).st_mode
        except OSError:
            return None

    def _is_dir(self, rel: str) -> bool:
        mode = self._mode(rel)
        return mode is not None and stat.S_ISDIR(mode)

    def _on_overflow(self) -> None:
        self.request_reconcile("overflow")

    def _on_refused(self, rel: str, reason: str) -> None:
        # may run in the thread of the first walk: only note it; the journal loop records it
        self._refused[rel] = reason

    async def _set_aside_refused(self) -> None:
        if self._refused:
            refused, self._refused = self._refused, {}
            await self._set_aside(list(refused.items()))

    # -- journal ---------------------------------------------------------------------------

    async def _journal_loop(self) -> None:
        while True:
            await self._idle_until_changed()
            direct = self._direct_possible()
            await self._join_next_run(direct)
            self._changed.clear()
            await self._set_aside_refused()
            batch, self._changes = self._changes, set()
            since, self._changes_since = self._changes_since, None
            # until they are in a journal row (first seen then) or on the replica, these
            # changes are in this task only: "synced through" stays before them, and the
            # heartbeat's shipped sequence stays where it was
            self._in_hand_since, self._in_hand_seq = self._wall(since), self.journal.seq
            try:
                if direct and batch:
                    batch = await self._ship_direct(batch)
                if batch:
                    # changed again: a quarantined path gets another try
                    await self._release(batch)
                    await self.journal.record(sorted(batch), ts=self._in_hand_since)
                    if self.archive is not None and self.archive.note(batch):
                        await self.archive.save()  # a log gone before it shipped: a gap?
            except BaseException:
                self._changes |= batch  # not recorded: keep them for the next try
                self._changes_since = _earliest(since, self._changes_since)
                raise
            finally:
                self._in_hand_since = self._in_hand_seq = None
            if batch:
                self._journaled_since = _earliest(since, self._journaled_since)
                self._ship_wakeup.set()

    async def _idle_until_changed(self) -> None:
        """Waits for a change. Direct runs' success figures not yet in the database are
        written when due (FIGURES_EVERY after the first of them), whether changes keep
        coming or not."""
        while self._figures_due is not None:
            left = self._figures_due - time.monotonic()
            if left <= 0:
                await self._write_figures()
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._changed.wait()
                    return
        await self._changed.wait()

    @property
    def _waiting_since(self) -> float | None:
        """When the oldest change the next run will carry was seen (None: not known)."""
        return _earliest(self._changes_since, self._journaled_since)

    async def _join_next_run(self, direct: bool) -> None:
        """While writes stream in (the next run will wait out a coalescing window), the
        changes are journaled once, just before that run, instead of once per write: at 20
        and 200 writes/s a journal transaction per file was most of the replicator's own
        CPU. They ship in the same run either way, so no latency is added. Only with
        reconcile_at_start: a change not yet journaled when sentinel is killed (at most one
        window, 80 ms on a local target) is found again by the full pass at the next start.
        A full batch is not held. `direct`: the run itself follows here (`_ship_direct`),
        so the whole window is waited here. One timer either way: the short collecting
        delay only when there is no window to wait."""
        wait = 0.0
        if self.spec.reconcile_at_start:
            most = self.spec.batch_max_files
            now, oldest = time.monotonic(), self._waiting_since
            wait = self.coalesce.delay(now, len(self._changes), most, oldest)
            self._direct_wait = wait  # counted by the run, when there is one
            if not direct:
                wait -= JOIN_LEAD
        await asyncio.sleep(max(COLLECT_DELAY, wait))

    # -- the direct run: a local replica's sparse writes without the journal ---------------

    def _direct_possible(self) -> bool:
        """Can the next changes ship straight from the journal loop (`_ship_direct`)?

        A run through the journal costs four hops between threads (record, take, copy,
        complete) and the wake-ups of two loops: at 20 sparse writes a second on a local
        replica that was more CPU than lsyncd's one rsync a second (issue 18). The direct
        run is one hop: the in-process copy. Only in the plain case, and only with
        reconcile_at_start: changes that are in memory only when sentinel is killed are
        found again by the full pass at the next start (as for `_join_next_run`). Anything
        else (rows waiting in the journal, a failure, a guard near its limit, a path set
        aside, archive logs, an rsync target) goes through the journal as before."""
        return (
            self._direct_run
            and self.archive is None
            and self.journal.pending == 0
            and not self._transfer.locked()
            and self._phase == "running"
            and self._target_missing is None
            and self._source_missing is None
            and not self._state.consecutive_failures
            and not self._state.guard_tripped
            and not self._measure_all
            and not self._adopting
        )

    async def _ship_direct(self, batch: set[str]) -> set[str]:
        """Ships `batch` by the in-process copy, straight from the journal loop; returns
        the paths it did not ship, for the journal. Rows never written and never deleted,
        the success figures written at most once a FIGURES_EVERY: what is left of a run is
        one hop to the copy's thread."""
        paths = sorted(batch)
        if (
            not self._direct_possible()  # changed while the window was waited out
            or len(paths) > self.spec.batch_max_files
            or self._bytes_over(paths)
            or not self._dirs_gone.isdisjoint(paths)
            or any(p in self.quarantine or p in self._retrying for p in paths)
            or self._unreadable_pending.intersection(paths)
            or self.guard.verdict(self._clock(), self.watcher.file_count if self.watcher else 0)
            is not Verdict.OK
            or self._source_problem() is not None
        ):
            return batch
        if not await self._marker_still_ours():
            return batch  # the journal's run asks again, and says what is wrong
        async with self._transfer:
            began, started = time.monotonic(), self._clock()
            local = await ship_plain(self.spec, paths, started, skip=self.quarantine.reasons)
            if local.kept_versions:
                await drop_append_versions(self.spec, started)
            if local.done:
                # a run only when it shipped: what it handed back is not held a window more
                # by the ship loop (a lone symlink after a quiet period ships at once)
                self.coalesce.count(self._direct_wait > 0)
                self.coalesce.started(began)
                self.transfers += 1
                self.journal.number_shipped(len(local.done))
                self._direct_succeeded(len(local.done))
                self.coalesce.finished(time.monotonic() - began)
        return set(local.rest)

    async def _marker_still_ours(self) -> bool:
        """The local replica's marker names this replication: read when its identity
        (device, inode, size, times) changed since it last did, else one stat. A replica
        unmounted or replaced (another disk, a copy) is read again; reading it at every run
        was a tenth of a direct run's cost."""
        if self.spec.target.local_root is None:
            return True  # the stream's receiver checks it at every batch, and refuses
        marker = os.path.join(str(self.spec.target.local_root), TARGET_MARKER)
        try:
            st = os.stat(marker)
        except OSError:
            return False
        seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if seen == self._marker_seen:
            return True
        check = await check_target(self.spec)  # local: read in place, no hop
        ours = bool(check.present and not check.unnamed and check.owner is None)
        self._marker_seen = seen if ours else None
        return ours

    def _bytes_over(self, paths: list[str]) -> bool:
        """More than batch_max_bytes in `paths` (one lstat each, as `_cap_bytes`): the
        journal's road splits them into runs. No lstat when they cannot be: the copy takes
        no file over COPY_MAX (rsync does, through the journal)."""
        if len(paths) * COPY_MAX <= self.spec.batch_max_bytes:
            return False
        total, root = 0, self.spec.source
        for rel in paths:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, rel)).st_size
        return total > self.spec.batch_max_bytes

    def _direct_succeeded(self, files: int) -> None:
        """The success figures of a direct run, in memory (status reads them there); the
        journal loop writes them to the database FIGURES_EVERY after the first one not
        written yet (`_idle_until_changed`, `_write_figures`), or the scheduler's round."""
        self._state = replace(self._state, **self._success_values(files))
        if self._figures_due is None:
            self._figures_due = time.monotonic() + FIGURES_EVERY

    async def _write_figures(self) -> None:
        """Writes the figures in memory to the database, and only there: a direct run that
        succeeds while this write waits for the store's lock is ahead of what it writes,
        and memory must keep it (the next write carries it)."""
        if self._figures_due is None:
            return
        self._figures_due = None
        st = self._state
        await save_state(
            self._journal_write,
            self.spec.name,
            last_success=st.last_success,
            shipped_files=st.shipped_files,
        )

    def _wall(self, mono: float | None) -> float | None:
        """A monotonic time as the wall-clock time it was."""
        return None if mono is None else self._clock() - (time.monotonic() - mono)

    @property
    def unshipped_since(self) -> float | None:
        """Wall-clock time of the oldest change seen and not yet on the replica: in the
        journal, in memory waiting for its run, or in a direct run (None: caught up). The
        room's heartbeat says "synced through" this."""
        return _earliest(
            _earliest(self.journal.oldest, self._wall(self._changes_since)), self._in_hand_since
        )

    @property
    def in_hand_seq(self) -> int | None:
        """The journal's sequence before the batch the journal loop holds (being recorded
        or in a direct run), None when it holds none: the room's heartbeat reports no
        later sequence as shipped until that batch is in rows or on the replica."""
        return self._in_hand_seq

    # -- shipping --------------------------------------------------------------------------

    async def _ship_loop(self) -> None:
        while True:
            await self._ship_wakeup.wait()
            self._ship_wakeup.clear()
            while self.journal.pending > 0:
                if self._state.guard_tripped:
                    break
                await self._coalesce_wait()
                if not await self._guard_allows():
                    break
                self._check_source()
                if not await self._target_ready():
                    if self._target_failure is None:
                        break  # missing: the scheduler polls for its return
                    await self._backoff(self._target_failure)
                    continue
                began = time.monotonic()
                # the rows journaled so far go with this run (rows it leaves, past a full
                # batch, are due a window after its start: sooner than their own window)
                self._journaled_since = None
                shipped = await self._ship_one()
                if shipped is not None:  # a run that found nothing to ship is no run
                    self.coalesce.started(began)
                if shipped:
                    self.coalesce.finished(time.monotonic() - began)
                if shipped is None:
                    break
            self.ship_rounds += 1

    async def _coalesce_wait(self) -> None:
        """While writes keep coming, waits until the oldest change this run will carry has
        waited one window (rows journaled meanwhile join it); a full batch cuts the wait
        short."""
        most = self.spec.batch_max_files
        wait = self.coalesce.decide(
            time.monotonic(), self.journal.pending, most, self._waiting_since
        )
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0 and self.journal.pending < most:
            # asyncio.timeout, not wait_for: wait_for makes a task of each wait (3.11)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._ship_wakeup.wait()
            self._ship_wakeup.clear()

    async def _guard_allows(self) -> bool:
        """False when the guard tripped; may wait a moment when it is close to tripping."""
        files = self.watcher.file_count if self.watcher else 0
        while True:
            now = self._clock()
            verdict = self.guard.verdict(now, files)
            if verdict is Verdict.TRIP:
                await self._trip(self.guard.count(now), files)
                return False
            if verdict is Verdict.OK:
                self._hold_since = None
                return True
            mono = time.monotonic()
            if self._hold_since is None:
                self._hold_since = mono
            if mono - self._hold_since >= HOLD_MAX:
                return True
            await asyncio.sleep(HOLD_STEP)

    async def _trip(self, count: int, files: int) -> None:
        await self._trip_with(
            count,
            f"{count} existing files modified, deleted or renamed "
            f"within {self.spec.guard.window:.0f}s (source has "
            f"{files} files)",
        )

    async def _measured_allows(self, entries: list[Entry]) -> bool:
        """False when the batch, measured by its own rsync command with --dry-run, would
        delete or overwrite more replica files than the guard allows (the trip is recorded).
        Only a batch that deletes a directory (or any batch after a discard) is measured."""
        if not self.spec.guard.enabled or all(e.seq <= self._approved_upto for e in entries):
            return True
        if not self._measure_all and not any(e.path in self._dirs_gone for e in entries):
            return True
        began = time.monotonic()
        dry = await ship_batch(
            self.spec,
            [e.path for e in entries],
            self._clock(),
            skip=self.quarantine.reasons,
            dry_run=True,
        )
        if not dry.ok and dry.exit_code not in PER_PATH_CODES:
            return True  # the transfer itself fails the same way and reports it
        # exit 23/11: some path failed, the rest was still measured
        now = self._clock()
        hits = damaged(dry.output)
        for rel in hits:
            self.guard.observe(rel, "delete", now)
        files = self.watcher.file_count if self.watcher else 0
        log.info(
            "replication %s: measured a batch of %d paths (a directory deleted or "
            "moved away, or after a discard): it would delete or overwrite %d replica "
            "files (dry run %.2fs)",
            self.spec.name,
            len(entries),
            len(hits),
            time.monotonic() - began,
        )
        if self.guard.verdict(now, files) is not Verdict.TRIP:
            return True
        count = self.guard.count(now)
        why = (
            "a directory deleted or moved away, or changed before the first walk watched it"
            if any(e.path in self._dirs_gone for e in entries)
            else "measured since a discard"
        )
        await self._trip_with(
            count,
            f"{count} existing files modified, deleted or renamed "
            f"within {self.spec.guard.window:.0f}s, {len(hits)} of "
            f"them replica files one batch would delete or overwrite "
            f"({why}; source has {files} files)",
        )
        return False

    async def _trip_with(self, count: int, reason: str) -> None:
        log.critical(
            "replication %s: ransomware guard tripped: %s; shipping paused, "
            "run `sentinel backup resume` or `discard`",
            self.spec.name,
            reason,
        )
        values = {
            "guard_tripped": True,
            "guard_count": count,
            "guard_ts": self._clock(),
            "guard_reason": reason,
        }
        await self._save(self._write, **values)
        self._reconcile_wakeup.set()  # the scheduler now polls for the operator's decision

    async def _ship_one(self) -> bool | None:
        """Ships one batch; True on success, False on failure (after backoff), None when
        there was nothing to ship."""
        async with self._transfer:
            if self._state.guard_tripped:
                return None  # a full pass tripped the guard while we waited for it
            entries = await self.journal.take(self.spec.batch_max_files)
            if not entries:
                await self.journal.refresh()
                return None
            if any(e.path in self.quarantine for e in entries):
                # `sentinel backup sync --full` (another process) may have released it and
                # journaled it again: the table says. Other changes to the table are read on
                # the scheduler's poll (`_pick_up_journal`), not at every batch.
                await self._reload_quarantine()
            entries = await self._hold_back(self._cap_bytes(entries))
            if not entries:
                return True
            if not await self._measured_allows(entries):
                return None
            started = self._clock()
            prior_ok = not self._state.consecutive_failures
            try:
                result = await self._ship(entries, started, settle=True)
                if result.ok:
                    return True  # the journal rows and the success figures: one commit
                shipped, aside = 0, 0
                if result.exit_code in PER_PATH_CODES:
                    shipped, aside = await self._split(entries, started, result, prior_ok)
            except TargetRecreated:
                return None  # nothing counted as shipped; the scheduler polls for the target
            if shipped:
                await self._succeeded(shipped)
                return True
            if aside:  # set aside, nothing shipped: no news about the link either way
                return True
            self._target_checked = None  # a lost target also fails transfers: look again
            await self._failed(result)
        await self._backoff(result)
        return False

    async def _hold_back(self, entries: list[Entry]) -> list[Entry]:
        """Paths set aside instead of shipped, each until its next change:
        * archive-log: a log that is not whole yet (a PostgreSQL segment shorter than the
          segment size; the archive command writing it again is the next change). Never
          ship a log recovery would stop at.
        * a directory the kernel cannot watch (its absolute path is too long), should
          anything release it (`sentinel backup sync --full` from another process): rsync
          ships the directory itself without an error, and counting that as shipped hid the
          subtree nobody watches (status said nothing).
        A log still set aside as partial that is whole by now (it was completed while
        `_hold_partial_logs_in` looked at it) is released: the run ships it, instead of
        leaving it out and counting it as arrived."""
        root, archive = self.spec.source, self.archive
        base = len(os.fsencode(root)) + 1
        why = {
            e.path: unwatchable(root, e.path, base)
            or (archive.partial_at(e.path) if archive is not None else None)
            for e in entries
        }
        held = [e for e in entries if why[e.path] is not None]
        if held:
            await self._set_aside_tried([(e.path, str(why[e.path])) for e in held])
            await self.journal.complete(held, self._clock())
        whole = [
            e.path
            for e in entries
            if why[e.path] is None and partial_reason(self.quarantine.reasons.get(e.path))
        ]
        if whole:
            await self._release(whole)
        return [e for e in entries if why[e.path] is None]

    async def _hold_partial_logs_in(self, dirs: list[str]) -> None:
        """Archive-log: a directory in a batch ships with `-d --delete`, so rsync sends every
        file in it, also a log renamed in after the batch was taken and not checked by
        `_hold_back`. The partial logs in `dirs` are set aside just before the run (the run
        skips them); what is left is the sender's own moment, as for any listed file. A log
        that becomes whole meanwhile is released by the run that carries its event."""
        archive = self.archive
        assert archive is not None
        if not dirs:
            return  # no thread hop for a batch of files
        _, partial = await asyncio.to_thread(archive.scan, dirs)
        await self._set_aside_tried([item for item in partial if item[0] not in self.quarantine])

    async def _archive_before_pass(self) -> list[str]:
        """Archive-log, before a full pass: partial logs are set aside so the pass skips
        them. Returns the whole logs there now: once the pass worked, those are on the
        replica. Only those: a log that appeared while rsync ran may not be."""
        assert self.archive is not None
        whole, partial = await asyncio.to_thread(self.archive.scan)
        await self._set_aside([item for item in partial if item[0] not in self.quarantine])
        return whole

    # -- source and target identity (backup/markers.py) --------------------------------

    @property
    def _first_sync(self) -> bool:
        """Nothing was ever synced from this state: the markers are written, not required."""
        return self._state.last_success is None and self._state.last_full is None

    @property
    def _adopting(self) -> bool:
        """An install that synced before markers existed, not yet adopted (backup/adoption.py)."""
        return bool(self._state.markers_adopt)

    def _source_problem(self, *, init: bool = False) -> str | None:
        if self._adopting and not init:
            self._adopt_source()
        problem = source_problem(
            self.spec.source,
            require_mountpoint=self.spec.require_mountpoint,
            create=init or self._first_sync,
        )
        if problem is not None and self._adopting and not init:
            problem += f"; {NOT_ADOPTED}"
        return problem

    def _adopt_source(self) -> None:
        root = str(self.spec.source)
        if os.path.lexists(os.path.join(root, SOURCE_MARKER)) or not source_adoptable(
            root, require_mountpoint=self.spec.require_mountpoint
        ):
            return  # an empty or unmounted source is not adopted: it stays an alarm
        try:
            write_source_marker(self.spec.source)
        except OSError:
            return  # source_problem() says why
        log.info(
            "replication %s: adopted %s as the source (synced before markers existed, "
            "holds files): wrote %s",
            self.spec.name,
            root,
            SOURCE_MARKER,
        )

    def _check_source(self) -> None:
        problem = self._source_problem()
        if problem is not None:
            raise SourceGone(problem)

    async def _source_loop(self) -> None:
        """An unmount is not an inotify event on the source root we can rely on: look."""
        while True:
            await asyncio.sleep(SOURCE_POLL)
            problem = await asyncio.to_thread(self._source_problem)
            if problem is not None:
                raise SourceGone(problem)

    async def _source_lost(self, problem: str) -> None:
        self._phase = "source missing"
        if self._source_missing == problem:
            return
        self._source_missing = problem
        log.critical(
            "replication %s: %s: %s; nothing is shipped until it is back",
            self.spec.name,
            MISSING_SOURCE,
            problem,
        )
        values = {"last_error": f"{MISSING_SOURCE}: {problem}", "last_error_ts": self._clock()}
        await self._save(self._write, **values)

    async def _source_back(self) -> None:
        if self._source_missing is None:
            return
        log.warning(
            "replication %s: source %s is back; a full reconcile follows",
            self.spec.name,
            self.spec.source,
        )
        self._source_missing = None
        await self._save(self._write, last_error=None)

    async def _target_ready(self, *, init: bool = False) -> bool:
        """True when the replica root holds its marker (written at the first sync, or with
        `init`). False when nothing may be shipped: the target is missing, or it could not
        be asked or its marker not written (then `_target_failure` holds the failed run,
        already counted as a failure: retry after a backoff)."""
        # the shipper and the full pass both ask: one check (and marker written) at a time
        async with self._target_lock:
            return await self._target_ready_now(init=init)

    async def _target_ready_now(self, *, init: bool) -> bool:
        self._target_failure = None
        if (
            not init
            and self._target_missing is None
            and self.spec.target.remote
            and self._target_checked is not None
            and time.monotonic() - self._target_checked < TARGET_CHECK_EVERY
        ):
            return True
        check = await check_target(self.spec)
        if check.present is None and check.result is not None:
            # unreachable or refused: ship nothing without proof that it is the replica
            self._target_failure = check.result
            await self._failed(check.result)
            return False
        if check.present and check.owner is not None and not init:
            await self._target_lost(check.owner)
            return False
        if check.present and not check.unnamed and check.owner is None:
            self._target_checked = time.monotonic()
            await self._target_back()
            return True
        adopt = False
        if check.present:
            pass  # an unnamed marker gets the name; another's is claimed with `init` only
        elif not (init or self._first_sync):
            held = await replica_holds_files(self.spec) if self._adopting else TargetCheck(False)
            if held.present is None and held.result is not None:
                self._target_failure = held.result
                await self._failed(held.result)
                return False
            if not held.present or self._recreated:  # a missing, empty or re-created
                # replica is not adopted
                await self._target_lost()
                return False
            adopt = True
        written = await write_target_marker(self.spec)
        if written.ok:
            if check.present:
                log.warning(
                    "replication %s: %s in %s now names this replication (%s)",
                    self.spec.name,
                    TARGET_MARKER,
                    self.spec.target.describe(),
                    "it named none"
                    if check.unnamed
                    else f"it named {check.owner or 'another one'}; claimed by an operator",
                )
            elif adopt:
                log.info(
                    "replication %s: adopted %s as the replica (synced before markers "
                    "existed, holds files): wrote %s",
                    self.spec.name,
                    self.spec.target.describe(),
                    TARGET_MARKER,
                )
            else:
                log.info(
                    "replication %s: wrote %s in %s",
                    self.spec.name,
                    TARGET_MARKER,
                    self.spec.target.describe(),
                )
            self._target_checked = time.monotonic()
            await self._target_back()
            return True
        self._target_failure = written
        await self._failed(written)
        return False

    async def _target_recreated(self, where: str) -> None:
        """rsync printed "created directory": the replica root was gone and rsync made a new
        one (on a backup host, possibly where an unmounted disk belongs). Whatever the run
        wrote there is not the replica: stop at once, whatever the marker check cache says."""
        self._recreated = where
        await self._target_lost(
            problem=f"{self.spec.target.describe()} was gone: rsync re-created it "
            f"({where!r} on the receiving side) and wrote into it; that directory is not the "
            "replica, check it (and the mount) before `sentinel backup sync --full --init-target`"
        )
        raise TargetRecreated(where)

    async def _target_lost(self, owner: str | None = None, problem: str | None = None) -> None:
        """`owner`: the marker is there but names another replication ("" remote: unread).
        `problem`: what was seen instead of the marker (default: it is missing)."""
        self._target_checked = None
        self._reconcile_wakeup.set()  # the scheduler polls for its return
        if owner is not None:
            other = f"replication {owner!r}" if owner else "another replication"
            problem = (
                f"{self.spec.target.describe()} belongs to {other}: its "
                f"{TARGET_MARKER} names it (two replications on one target delete "
                "each other's files; if this replication was renamed, `sentinel backup "
                "sync --full --init-target` claims the target)"
            )
        elif problem is None:
            problem = (
                f"{self.spec.target.describe()} has no {TARGET_MARKER} marker (if the "
                "replica is really there, or a new empty one is meant, "
                "`sentinel backup sync --full --init-target` writes it)"
            )
            if self._adopting:
                problem += f"; {NOT_ADOPTED}"
        if self._target_missing == problem:
            return
        self._target_missing = problem
        self._phase = "target missing"
        what = MISSING_TARGET if owner is None else FOREIGN_TARGET
        log.critical("replication %s: %s: %s; shipping stopped", self.spec.name, what, problem)
        values = {"last_error": f"{what}: {problem}", "last_error_ts": self._clock()}
        await self._save(self._write, **values)

    async def _target_back(self) -> None:
        if self._target_missing is None:
            return
        log.warning(
            "replication %s: target %s is back; shipping resumes",
            self.spec.name,
            self.spec.target.describe(),
        )
        self._target_missing = None
        self._recreated = None
        self._phase = "running"
        await self._save(self._write, last_error=None)
        self.request_reconcile("target back")
        self._ship_wakeup.set()

    async def _ship(
        self, entries: list[Entry], started: float, *, settle: bool = False
    ) -> RsyncResult:
        """One rsync run; its rows leave the journal when it worked. `settle`: the success
        figures (`_succeeded`) are written in the same transaction."""
        paths = [e.path for e in entries]
        # archive-log: what this run leaves out (set aside when its excludes were made) did
        # not arrive, even if its own change releases it while rsync runs
        # (the batch's own paths: a copy of the whole quarantine cost its size at every run)
        left_out = {p for p in paths if p in self.quarantine} if self.archive is not None else set()
        local: LocalShip | None = None
        if usable(self.spec) and not self._measure_all and self._dirs_gone.isdisjoint(paths):
            # a local replica: plain files in-process, the rest (and any error) by rsync
            local = await ship_plain(self.spec, paths, started, skip=self.quarantine.reasons)
            paths = local.rest
        modes = {p: self._mode(p) for p in paths}  # one lstat each, on the loop like _cap_bytes
        if self.archive is not None:
            dirs = [p for p, mode in modes.items() if mode is not None and stat.S_ISDIR(mode)]
            await self._hold_partial_logs_in(dirs)
            left_out.update(e.path for e in entries if e.path in self.quarantine)
        gone = [p for p, mode in modes.items() if mode is None]
        if gone:  # before the deletion, which would move a partial dir into the versions
            await self._remove_partials(gone)
        result = (
            await ship_batch(self.spec, paths, started, skip=self.quarantine.reasons)
            if paths or local is None
            else None
        )
        if local is not None:
            result = local.merged(result)
        assert result is not None
        self.transfers += 1
        if result.created_root is not None:
            await self._target_recreated(result.created_root)  # raises
        if result.ok:
            # an append's version is the new file's prefix: it costs bytes, saves nothing
            # (before the rows leave: a caught-up replicator has no such version left)
            await drop_append_versions(self.spec, started)
            values = self._success_values(len(entries)) if settle else None
            also = None if values is None else self._state_writer(values)
            await self.journal.complete(entries, started, also=also)
            if values is not None:
                self._state = replace(self._state, **values)
            if self.archive is not None:
                await self.archive.arrived(e.path for e in entries if e.path not in left_out)
            self._dirs_gone.difference_update(e.path for e in entries)
            self._retrying.difference_update(e.path for e in entries)
            self._unreadable_pending.difference_update(e.path for e in entries)
        return result

    async def _split(
        self, entries: list[Entry], started: float, first: RsyncResult, prior_ok: bool
    ) -> tuple[int, int]:
        """A batch failed for a reason that names files: ships it again in halves (and the
        failing halves in halves...), so one bad file cannot hold the others. A path that
        fails alone while others shipped (or, alone in its batch, right after a transfer
        that worked) goes to the quarantine. Returns how many paths shipped and how many
        were set aside; none of either means the target itself looks broken (back off)."""
        runs = 0
        # a file that did not fit leaves its partial copy, which would fail the rest too
        await self._remove_partials([e.path for e in entries])
        # Files this account may not read are named by rsync itself and confirmed by opening
        # them: set aside all at once, not found by halving (a folder of 3000 private files
        # never came down to single paths within SPLIT_MAX_RUNS, and failed for ever).
        entries, unreadable = await self._set_aside_unreadable(entries, first, started)
        if unreadable:
            if not entries:
                return 0, unreadable
            first = await self._ship(entries, started)
            runs += 1
            if first.ok:
                return len(entries), unreadable
            if first.exit_code not in PER_PATH_CODES:
                return 0, unreadable  # no news about the link: the next round says
            await self._remove_partials([e.path for e in entries])
        shipped, aside = await self._bisect(entries, started, first, prior_ok, runs)
        return shipped, aside + unreadable

    async def _set_aside_unreadable(
        self, entries: list[Entry], result: RsyncResult, started: float
    ) -> tuple[list[Entry], int]:
        """When rsync's sender says it may not read paths: each batch path and each path
        rsync names that this account cannot open now is set aside as unreadable (the
        service account is who we are: the open is the truth, rsync's text only the hint).
        Returns the other entries and how many paths were set aside."""
        named = sender_denied(result.errors)
        if not named:
            return entries, 0
        root = str(self.spec.source).rstrip("/") + "/"
        candidates = {e.path for e in entries}
        candidates.update(p[len(root) :] for p in named if p.startswith(root) and p != root)
        candidates = {p for p in candidates if p and p not in self.quarantine}

        def look() -> list[tuple[str, str]]:
            out = []
            for rel in sorted(candidates):
                full = os.path.join(root, rel)
                if not readable_now(full):
                    isdir = os.path.isdir(full) and not os.path.islink(full)
                    out.append((rel, DIR_DENIED if isdir else FILE_DENIED))
            return out

        bad = await asyncio.to_thread(look)
        if not bad:
            return entries, 0
        paths = {p for p, _ in bad}
        again = [item for item in bad if item[0] in self._retrying]
        self._retrying.difference_update(paths)
        if again:  # tried again and still unreadable: already named, no new warning
            await self.quarantine.add(again)
            self._unreadable_pending.difference_update(p for p, _ in again)
        await self._set_aside([item for item in bad if item not in again])
        await self.journal.complete([e for e in entries if e.path in paths], started)
        return [e for e in entries if e.path not in paths], len(bad)

    async def _bisect(
        self, entries: list[Entry], started: float, first: RsyncResult, prior_ok: bool, runs: int
    ) -> tuple[int, int]:
        """Ships a failing batch again in halves (and the failing halves in halves...) until
        single paths fail alone; see _split."""
        shipped = 0
        alone: list[tuple[Entry, RsyncResult]] = []
        failing: deque[tuple[list[Entry], RsyncResult]] = deque([(entries, first)])
        while failing and runs < SPLIT_MAX_RUNS:
            group, result = failing.popleft()
            if len(group) == 1:
                alone.append((group[0], result))
                continue
            mid = len(group) // 2
            for part in (group[:mid], group[mid:]):
                if runs >= SPLIT_MAX_RUNS:
                    break
                runs += 1
                part_result = await self._ship(part, started)
                if part_result.ok:
                    shipped += len(part)
                elif part_result.exit_code in PER_PATH_CODES:
                    failing.append((part, part_result))
                    await self._remove_partials([e.path for e in part])
                else:
                    return shipped, 0  # the link failed, not a file: back off
        alone += [(g[0], r) for g, r in failing if len(g) == 1]
        if not alone:
            return shipped, 0
        if not shipped and not all(e.path in self._retrying for e, _ in alone):
            # Nothing of this round shipped. A full, read-only or failing replica fails every
            # path: that is the target's condition, not the path's (a failure, never set
            # aside). A path that fails on its own (too long...) right after a transfer that
            # worked is the path's. (Paths already set aside for space and tried again go
            # back aside: the failure is for new paths to show.)
            if any(target_condition(r.error) for _, r in alone):
                return 0, 0
            # A path this account may not read is the path's own trouble, never the link's:
            # set aside and named at once (retrying it as a failing replica would page
            # "replication failing" for ever and hold every later change behind it).
            if not (prior_ok and len(entries) == 1) and not all(
                not readable_now(os.path.join(self.spec.source, e.path)) for e, _ in alone
            ):
                return 0, 0
        # a directory is shipped with its entries: it fails because of a bad file in it, so
        # it gets one more try once the files that failed alone are set aside
        dirs = [
            (e, r)
            for e, r in alone
            if os.path.isdir(os.path.join(self.spec.source, e.path))
            and not os.path.islink(os.path.join(self.spec.source, e.path))
        ]
        bad = [(e, r) for e, r in alone if (e, r) not in dirs]
        if bad:
            await self._quarantine_entries(bad, started)
        aside = len(bad)
        for e, r in dirs:
            again = await self._ship([e], started) if bad else r
            if again.ok:
                shipped += 1
            else:
                await self._quarantine_entries([(e, again)], started)
                aside += 1
        return shipped, aside

    async def _quarantine_entries(
        self, bad: list[tuple[Entry, RsyncResult]], started: float
    ) -> None:
        await self._set_aside_tried([(e.path, self._aside_reason(e.path, r)) for e, r in bad])
        await self.journal.complete([e for e, _ in bad], started)
        await self._remove_partials([e.path for e, _ in bad])
        if any(target_condition(r.error) for _, r in bad):  # the room left without them
            self._free_at_aside = self._local_free()

    async def _set_aside_tried(self, items: list[tuple[str, str]]) -> None:
        """`_set_aside`, except for paths released for another try or still listed (a
        directory too long to watch is never released): those were paged and listed
        already, and go back without a new warning."""
        again = [(p, why) for p, why in items if p in self._retrying or p in self.quarantine]
        self._retrying.difference_update(p for p, _ in items)
        if again:
            await self.quarantine.add(again)
            self._unreadable_pending.difference_update(p for p, _ in again)
            log.info(
                "replication %s: %d path(s) tried again still cannot be replicated (first: %s)",
                self.spec.name,
                len(again),
                shown(again[0][0], 200),
            )
        await self._set_aside([item for item in items if item not in again])

    def _aside_reason(self, rel: str, result: RsyncResult) -> str:
        """rsync's words, or "cannot read" when this account may not open the path: only
        then is it named as unreadable (a readable directory that failed because of its
        files, or a file named like an rsync line, keeps rsync's words)."""
        full = os.path.join(self.spec.source, rel)
        if sender_denied(result.errors) and not readable_now(full):
            return DIR_DENIED if os.path.isdir(full) else FILE_DENIED
        return f"rsync exit {result.exit_code}: {result.error}"

    async def _set_aside(self, items: list[tuple[str, str]]) -> None:
        if not items:
            return
        await self.quarantine.add(items)
        self._unreadable_pending.difference_update(p for p, _ in items)
        for path, reason in items[:5]:
            log.warning(
                "replication %s: %s cannot be replicated, set aside: %s",
                self.spec.name,
                shown(path, 200),
                printable(reason),
            )
        if len(items) > 5:
            log.warning("replication %s: %d more paths set aside", self.spec.name, len(items) - 5)

    async def _remove_partials(self, paths: list[str]) -> None:
        result = await remove_partials(self.spec, paths)
        if result.created_root is not None:
            await self._target_recreated(result.created_root)  # raises
        if not result.ok:  # only space is at stake: the next deletion tries again
            log.info(
                "replication %s: removing partial files failed: %s", self.spec.name, result.error
            )

    def _cap_bytes(self, entries: list[Entry]) -> list[Entry]:
        total = 0
        for i, e in enumerate(entries):
            try:
                total += os.lstat(os.path.join(self.spec.source, e.path)).st_size
            except OSError:
                continue
            if total > self.spec.batch_max_bytes and i > 0:
                return entries[:i]
        return entries

    async def _succeeded(self, files: int) -> None:
        await self._save(self._journal_write, **self._success_values(files))

    def _state_writer(self, values: dict[str, Any]) -> Callable[[sqlite3.Connection], None]:
        def write(conn: sqlite3.Connection) -> None:
            put_state(conn, self.spec.name, **values)

        return write

    def _success_values(self, files: int) -> dict[str, Any]:
        values: dict[str, Any] = {
            "last_success": self._clock(),
            "consecutive_failures": 0,
            "shipped_files": self._state.shipped_files + files,
        }
        if self._state.consecutive_failures:
            log.info("replication %s: target reachable again", self.spec.name)
            values["last_error"] = None
            # a full replica (of any kind) has room again: the files set aside for space too
            self._room_again = bool(target_condition(str(self._state.last_error)))
        return values

    async def _failed(self, result: RsyncResult) -> None:
        failures = self._state.consecutive_failures + 1
        condition = target_condition(result.error)
        values = {
            "consecutive_failures": failures,
            "last_error_ts": self._clock(),
            "last_error": f"{condition + ': ' if condition else ''}"
            f"rsync exit {result.exit_code} ({result.outcome}): "
            f"{result.error}",
        }
        if failures == 1 or failures % 10 == 0:  # rate-limited: an outage is one story
            log.warning(
                "replication %s: %s (failure %d)", self.spec.name, values["last_error"], failures
            )
        await self._save(self._write, **values)

    async def _backoff(self, result: RsyncResult) -> None:
        failures = self._state.consecutive_failures or 1
        if result.outcome is Outcome.FATAL:
            delay = self.spec.fatal_retry
        else:
            delay = Backoff(RETRY_INITIAL, self.spec.retry_max).base(failures)
        await asyncio.sleep(random.uniform(delay / 2, delay))

    # -- reconcile, verify, prune -------------------------------------------------------

    async def reconcile(
        self,
        reason: str,
        *,
        on_output: Callable[[str], None] | None = None,
        init_source: bool = False,
        init_target: bool = False,
    ) -> RsyncResult | None:
        """A full pass of the whole source; clears the journal rows it covered.

        None when it did not run (`last_skip` says why): the guard is tripped, the target
        is missing, or the dry run measured a mass change and tripped the guard. Raises
        `SourceGone` when the source is missing or not mounted. `init_source`/`init_target`
        write a missing marker (an operator's deliberate decision).
        """
        if self._state.guard_tripped:
            self._skip(
                reason,
                "the ransomware guard is tripped (`sentinel backup resume` or `discard` first)",
            )
            return None
        async with self._transfer:
            problem = self._source_problem(init=init_source)
            if problem is not None:
                raise SourceGone(problem)
            if not await self._target_ready(init=init_target):
                if self._target_failure is not None:
                    return self._target_failure  # not ok: retried after a backoff
                self._skip(reason, f"{MISSING_TARGET}: {self._target_missing}")
                return None
            if self._adopting:  # both markers are in place now: adoption is over for good
                await self._save(self._write, markers_adopt=None)
            logs = await self._archive_before_pass() if self.archive is not None else []
            upto = self.journal.seq
            skipped = set(self.quarantine.reasons)
            started = self._clock()
            approved = False
            fresh = await self._pass_into_empty(reason, started, on_output)
            matched: RsyncResult | None = None
            if fresh is None and self.spec.guard.enabled:
                matched = await already_matches(self.spec, started, skip=self.quarantine.reasons)
                if matched is None:
                    preview, dry = await preview_full_sync(
                        self.spec, started, skip=self.quarantine.reasons
                    )
                    if not dry.ok and dry.exit_code not in PER_PATH_CODES:
                        await self._failed(dry)
                        return dry
                    # exit 23/11 (a path it could not read): the counts still hold; the pass
                    # below fails the same way and falls back to shipping through the journal
                    if preview.trips(self.spec.guard):
                        approved = self._approved(preview)
                        if not approved:
                            await self._trip_with(preview.damage, preview.describe())
                            self._skip(reason, f"ransomware guard tripped: {preview.describe()}")
                            return None
                    if preview.changes == 0:
                        matched = dry
            if matched is not None:
                # the pass would change nothing: the dry run was the whole pass (an
                # unchanged tree, the nightly case, costs one walk instead of two)
                log.info(
                    "replication %s: full reconcile (%s): replica already matches",
                    self.spec.name,
                    reason,
                )
                result = matched
            else:
                if fresh is None:
                    log.info("replication %s: full reconcile (%s)", self.spec.name, reason)
                    fresh = await full_sync(
                        self.spec, started, on_output=on_output, skip=self.quarantine.reasons
                    )
                result = fresh
                self.transfers += 1
                if result.created_root is not None:
                    with contextlib.suppress(TargetRecreated):
                        await self._target_recreated(result.created_root)
                    self._skip(reason, f"{MISSING_TARGET}: {self._target_missing}")
                    return None
            if result.ok:
                await self.journal.clear_upto(upto)
                if self.archive is not None:
                    await self.archive.arrived(p for p in logs if p not in self.quarantine)
                # every full pass gives the quarantined paths another try
                await self.journal.record(
                    sorted(await self._release(list(self.quarantine.reasons)))
                )
                self._ship_wakeup.set()
                values: dict[str, Any] = {"last_full": self._clock(), "last_full_ok": True}
                if approved or self._measure_all:
                    # the operator's approval is used up; after a discard, the guarded pass
                    # made the replica match the source again: batches go unmeasured again
                    values.update(guard_reason=None, guard_count=None)
                    self._measure_all = False
                await self._save(self._write, **values)
                await self._succeeded(result.changed)
            else:
                await self._failed(result)
        # a path set aside while it ran (a directory the first walk beside it may not read)
        # may be why it failed: the retried pass skips it, instead of the whole tree going
        # path by path through the journal
        aside_meanwhile = not skipped.issuperset(self.quarantine.reasons)
        if not result.ok and result.exit_code in PER_PATH_CODES and not aside_meanwhile:
            # one file failed the pass (and exit 11 stops it there): every path goes
            # through the journal instead, where shipping splits the bad one out
            count = await self._journal_tree()
            log.warning(
                "replication %s: full pass failed on a file; its %d paths are "
                "shipped in batches instead",
                self.spec.name,
                count,
            )
        return result

    async def _pass_into_empty(
        self, reason: str, started: float, on_output: Callable[[str], None] | None
    ) -> RsyncResult | None:
        """The full pass into a replica without files (a first sync): no guard dry run and no
        --delete/--backup, as there is nothing to delete or replace (on a fresh tree the dry
        run was another whole walk). The replica is looked at under the target's lock, held
        until the pass ends, so no other process fills it in between. None when it holds
        files or could not be asked: the guarded pass runs."""
        async with lock_target(self.spec) as held:
            if (await replica_holds_files(self.spec)).present is not False:
                return None
            local = self.spec.target.local_root
            log.info(
                "replication %s: full reconcile (%s) into an empty replica: nothing to "
                "measure or keep versions of",
                self.spec.name,
                reason,
            )
            return await full_sync(
                self.spec,
                started,
                on_output=on_output,
                skip=self.quarantine.reasons,
                into_empty=held,
                # the root is there (a missing one must be seen re-created: itemized)
                itemize=not (local is not None and os.path.isdir(local)),
            )

    def _skip(self, reason: str, why: str) -> None:
        log.warning("replication %s: full reconcile (%s) skipped: %s", self.spec.name, reason, why)
        self.last_skip = why
        return None

    def _approved(self, preview: Preview) -> bool:
        """`sentinel backup resume` after a full-pass trip approves that change: a pass that
        would do no more than what was measured then goes ahead (once)."""
        st = self._state
        return (
            not st.guard_tripped
            and str(st.guard_reason or "").startswith(FULL_PASS_TRIP)
            and preview.damage <= int(st.guard_count or 0)
        )

    async def _journal_tree(self) -> int:
        paths, denied = await asyncio.to_thread(self._walk_source)
        # a directory rsync's recursion cannot enter (listable but not searchable: `setfacl
        # -m u:sentinel:r` without X) ships as "dir/" in a batch with its unreadable files set
        # aside, so batches never isolate it, and every full pass would fail on it again
        await self._set_aside([(rel, DIR_DENIED) for rel in denied])
        await self.journal.record(paths)
        self._ship_wakeup.set()
        return len(paths)

    def _walk_source(self) -> tuple[list[str], list[str]]:
        """Every path of the source the way the watcher names them, "." for the root (a
        listed directory is shipped as "dir/", which also removes what it no longer has),
        and the directories this account may not list or enter (not walked)."""
        root = str(self.spec.source)
        out = ["."]
        denied: list[str] = []
        for dirpath, dirs, files in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            prefix = "" if rel_dir == "." else rel_dir + "/"
            kept = []
            for name in dirs:
                rel = prefix + name
                if rel in self.quarantine or self.spec.filters.excluded(rel, is_dir=True):
                    continue
                if not readable_now(os.path.join(root, rel)):
                    denied.append(rel)
                    continue
                kept.append(name)
                out.append(rel)
            dirs[:] = kept
            out += [
                prefix + name
                for name in files
                if prefix + name not in self.quarantine
                and not self.spec.filters.excluded(prefix + name)
            ]
        return out, denied

    async def verify(self) -> dict[str, Any]:
        """Checksum compare of source and replica; differences still pending in the journal
        are known lag, not a mismatch."""
        async with self._transfer:
            result = await verify_replica(self.spec, skip=self.quarantine.reasons)
        pending = await self.journal.paths()
        diffs = [
            d
            for d in result.differences
            if d.rstrip("/") not in pending and not (self._changes & {d.rstrip("/")})
        ]
        ok = result.ok and not diffs
        record = {
            "ts": self._clock(),
            "ok": ok,
            "differences": len(diffs),
            "sample": diffs[:VERIFY_SAMPLE],
            "error": None if result.ok else result.error,
        }
        async with self._write() as db:
            await db.execute(
                "INSERT INTO backup_verify(source, ts, ok, differences, sample, error) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.spec.name,
                    record["ts"],
                    int(ok),
                    len(diffs),
                    json.dumps(record["sample"]),
                    record["error"],
                ),
            )
        self._verify = record
        if not ok:
            log.error(
                "replication %s: verify found %d differences: %s",
                self.spec.name,
                len(diffs),
                ", ".join(diffs[:5]) or result.error,
            )
        return record

    async def _load_last_verify(self) -> dict[str, Any] | None:
        async with self._db.execute(
            "SELECT ts, ok, differences, sample, error FROM backup_verify WHERE source = ? "
            "ORDER BY ts DESC LIMIT 1",
            (self.spec.name,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return {
            "ts": row[0],
            "ok": bool(row[1]),
            "differences": row[2],
            "sample": json.loads(row[3]),
            "error": row[4],
        }

    async def _schedule_loop(self, first: asyncio.Task[None] | None = None) -> None:
        if first is not None:
            # nothing else is due before the first pass ended (with no full pass yet, the
            # out-of-watches fallback would ask for a second one at once)
            await asyncio.wait([first])  # its failure is the task group's to raise
        while True:
            now = self._clock()
            due = self._due(now)
            if due:
                self.request_reconcile(due)
            if self._reconcile_reason is not None:
                reason = self._reconcile_reason
                self._reconcile_reason = None
                self._reconcile_wakeup.clear()
                if not await self._scheduled_reconcile(reason):
                    self.request_reconcile(reason)
                    continue
            if self._verify_requested or self._verify_due(now):
                self._verify_requested = False
                await self.verify()
            await self._maybe_prune(now)
            await self._write_figures()
            await self._check_guard_cleared()
            await self._pick_up_journal()
            await self._retry_set_aside(now)
            await self._retry_unreadable(now)
            if self._target_missing is not None:
                await self._target_ready()
            with contextlib.suppress(TimeoutError):
                tick = (
                    GUARD_POLL
                    if self._state.guard_tripped
                    else BLOCKED_POLL
                    if self._target_missing is not None
                    else STATE_POLL
                )
                async with asyncio.timeout(tick):
                    await self._reconcile_wakeup.wait()
            self._reconcile_wakeup.clear()

    async def _scheduled_reconcile(self, reason: str) -> bool:
        """False when the pass failed (after the backoff). Its result is not kept past this
        call: held by the loop until the next pass, it stayed resident all day."""
        result = await self.reconcile(reason)
        if result is not None and not result.ok:
            await self._backoff(result)
            return False
        return True

    def _due(self, now: float) -> str | None:
        last = self._state.last_full
        fallback = self.spec.fallback_reconcile
        if (
            self.watcher is not None
            and self.watcher.watch_limit
            and (last is None or now - last >= fallback)
        ):
            return "out of inotify watches"
        every = self.spec.reconcile_every
        if every is not None and last is not None and now - last >= every:
            return "schedule"
        return None

    def _verify_due(self, now: float) -> bool:
        every = self.spec.verify_every
        if every is None or self._state.last_full is None:
            return False  # verify a replica only after one full pass made it whole
        # the first verify waits a full period after start, like every later one
        last = self._verify["ts"] if self._verify else self._started
        return now - last >= every

    async def _maybe_prune(self, now: float) -> None:
        retention = self.spec.retention
        last = self._state.last_prune
        if retention is None or (last is not None and now - last < PRUNE_EVERY):
            return
        try:
            pruned = await prune_versions(
                self.spec.target,
                self.spec.runtime_dir,
                older_than=now - retention,
                lock_dir=self.spec.lock_dir,
            )
        except RuntimeError as exc:
            # once a day, not at every scheduler tick; a write-only key lands here for ever
            log.warning(
                "replication %s: versions not pruned: %s (with a write-only key "
                "the backup host prunes them)",
                self.spec.name,
                exc,
            )
            await self._save(self._write, last_prune=now)
            return
        if pruned:
            log.info("replication %s: pruned %d version dirs", self.spec.name, len(pruned))
        await self._save(self._write, last_prune=now)

    async def _release(self, paths: Iterable[str]) -> list[str]:
        """Takes paths out of the quarantine for another try. Until they ship, each keeps
        its past: failing alone again for space, it goes back aside instead of counting as
        the replica failing."""
        # a directory still too long to watch is not retried: shipping it would hide it
        root = self.spec.source
        paths = [
            p
            for p in paths
            if not (too_long_reason(self.quarantine.reasons.get(p)) and unwatchable(root, p))
        ]
        was_unreadable = set(self.quarantine.unreadable)
        released = await self.quarantine.release(paths)
        self._retrying.update(released)
        self._unreadable_pending.update(was_unreadable.intersection(released))
        return released

    async def _reload_quarantine(self) -> None:
        """The table is the truth: another process (`sentinel backup sync --full`) may have
        released paths; they are being tried again, as with `_release`."""
        before = set(self.quarantine.reasons)
        was_unreadable = set(self.quarantine.unreadable)
        await self.quarantine.load()
        self._retrying.update(before.difference(self.quarantine.reasons))
        self._unreadable_pending.update(was_unreadable.difference(self.quarantine.reasons))

    async def _pick_up_journal(self) -> None:
        """Rows another process recorded (`sentinel backup sync --full` releases quarantined
        paths into the journal) wake no watcher: ship them on the next poll."""
        if self._transfer.locked() or self._state.guard_tripped or self._target_missing is not None:
            return
        await self._reload_quarantine()
        await self.journal.sync()
        if self.journal.pending:
            self._ship_wakeup.set()

    def _local_free(self) -> int | None:
        root = self.spec.target.local_root
        if root is None:
            return None
        try:
            st = os.statvfs(root)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def _space_grew(self, paths: list[str]) -> bool:
        """A local replica has more room than when a path was set aside, enough for one."""
        free = self._local_free()
        if free is None or self._free_at_aside is None or free <= self._free_at_aside:
            return False
        for rel in paths:
            try:
                if os.lstat(os.path.join(self.spec.source, rel)).st_size < free:
                    return True
            except OSError:
                return True  # gone: the retry ships the deletion
        return False

    async def _retry_set_aside(self, now: float) -> None:
        """Paths set aside for lack of room on the replica do not wait for their next change:
        they are tried again every SPACE_RETRY, and as soon as a local replica has room."""
        space = [p for p, why in self.quarantine.reasons.items() if target_condition(why)]
        if not space:
            self._space_retried = None
            self._room_again = False
            return
        if self._space_retried is None:
            self._space_retried = now
        if (
            now - self._space_retried < SPACE_RETRY
            and not self._room_again
            and not self._space_grew(space)
        ):
            return
        self._space_retried = now
        self._room_again = False
        self._free_at_aside = self._local_free()
        released = await self._release(space)
        await self.journal.record(sorted(released))
        log.info(
            "replication %s: %d path(s) set aside for lack of room on the replica are tried again",
            self.spec.name,
            len(released),
        )
        self._ship_wakeup.set()

    async def _retry_unreadable(self, now: float) -> None:
        """Paths set aside as unreadable go back to the journal once this account can read
        them (access granted on a parent directory sends no event for the file)."""
        if not self.quarantine.unreadable:
            self._unreadable_checked = None
            return
        if (
            self._unreadable_checked is not None
            and now - self._unreadable_checked < UNREADABLE_RETRY
        ):
            return
        self._unreadable_checked = now
        root = str(self.spec.source)
        paths = sorted(self.quarantine.unreadable)
        ready = await asyncio.to_thread(
            lambda: [p for p in paths if readable_now(os.path.join(root, p))]
        )
        if not ready:
            return
        released = await self._release(ready)
        if not released:
            return
        if self.watcher is not None:
            for rel in released:  # a directory the kernel refused to watch: watch it now
                self.watcher.watch_again(rel)
        await self.journal.record(sorted(released))
        log.info(
            "replication %s: %d path(s) set aside as unreadable can be read now and are "
            "shipped (first: %s)",
            self.spec.name,
            len(released),
            shown(released[0], 200),
        )
        self._ship_wakeup.set()

    async def _check_guard_cleared(self) -> None:
        """`sentinel backup resume|discard` clears the trip in the database; a full pass run
        by `sentinel backup sync --full` may have tripped it there."""
        fresh = await load_state(self._db, self.spec.name)
        if not self._state.guard_tripped:
            if fresh.guard_tripped:
                log.critical(
                    "replication %s: ransomware guard tripped by `sentinel backup`: "
                    "%s; shipping paused",
                    self.spec.name,
                    fresh.guard_reason,
                )
                self._state = replace(
                    self._state,
                    guard_tripped=fresh.guard_tripped,
                    guard_count=fresh.guard_count,
                    guard_ts=fresh.guard_ts,
                    guard_reason=fresh.guard_reason,
                )
            return
        if fresh.guard_tripped:
            return
        log.warning(
            "replication %s: guard cleared by an operator; shipping resumes", self.spec.name
        )
        self._state = fresh
        self.guard.reset()
        if fresh.guard_reason == DISCARDED:
            self._measure_all = True
        else:  # resume: the pending changes, measured or not, are approved
            self._approved_upto = self.journal.seq
        await self.journal.refresh()
        self._ship_wakeup.set()
        if str(fresh.guard_reason or "").startswith(FULL_PASS_TRIP):
            self.request_reconcile("resumed by an operator")  # resume, not discard


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)
