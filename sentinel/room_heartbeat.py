"""The room's side of the keeper (issue 11): heartbeats out, receipts back, and the "data safe
to" a critical page carries.

For each `[[replication]]` with a `[replication.keeper]` table, a `RoomHeartbeat` component
(supervised, "keeper:<replication>"):

- every `heartbeat` seconds writes a `Heartbeat` (backup/keeper_record.py) into the runtime
  dir and pushes it with rsync, over the replication's own transport, to the target root as
  `.sentinel-heartbeat.json`. Without --backup (a version per heartbeat would flood the
  versions dir); the replicator's --delete, compare, verify and restore leave it alone
  (`backup.transfer.PROTECT`);
- after each heartbeat reads the keeper's receipt back and keeps the newest: `sentinel status`
  shows it from the component's health (the daemon's heartbeat row), without the daemon.

`KeeperConfirm` (sentinel/keeper_confirm.py) is the sender's confirm hook over these.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite

from alerts import reasons
from backup.keeper_record import (
    HEARTBEAT_FILE,
    MAX_ALARMS,
    AlarmNote,
    Heartbeat,
    Receipt,
    RecordError,
    fetch_receipt,
    write_atomic,
)
from backup.replicator import Replicator
from backup.rsync import COMMON_ARGS, Outcome, RsyncResult, run_rsync
from backup.spec import ReplicationSpec
from backup.target import Target, TargetError
from backup.transport import target_for
from sensors.reading import Reading
from sentinel.config.replication import KeeperLinkConfig

log = logging.getLogger("sentinel.keeper")

# While a page waits, the receipt is read this often.
CONFIRM_POLL = 0.2
# An urgent request stays in every heartbeat until a receipt answers it, or this long (the
# keeper may read a heartbeat only every second or so: the next regular one must not
# replace the urgent one before it was seen).
URGENT_KEEP = 300.0


def receipt_target(address: str, replica: Target) -> Target:
    """Where the receipt is read from, reached with the replica's transport options (its
    password file, ssh key, known hosts, port)."""
    return target_for(address, replica.options)


def history_target(keeper: KeeperLinkConfig, replica: Target) -> Target:
    """Where `backup drill` reads the keeper's snapshots (`keeper.history`): the replica's
    ssh options (port, known hosts, host key checking), but the drill key, never the
    replica's write key."""
    if keeper.history is None:
        raise TargetError("no [replication.keeper] history is configured")
    return target_for(
        keeper.history,
        replace(replica.options, password_file=None, identity_file=keeper.history_identity_file),
    )


class RoomHeartbeat:
    """Component "keeper:<replication>": ships heartbeats, reads receipts (see module doc)."""

    def __init__(
        self,
        spec: ReplicationSpec,
        keeper: KeeperLinkConfig,
        room: str,
        replicator: Replicator,
        db: aiosqlite.Connection,
        *,
        site: str = "",
        active_alarms: Callable[[], list[dict[str, Any]]] = list,
        submit: Callable[[Reading], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self._submit = submit
        self.keeper = keeper
        self.room = room
        self.name = f"keeper:{spec.name}"
        self._replicator = replicator
        self._db = db
        self._site = site
        self._active_alarms = active_alarms
        self._clock = clock
        self._receipt_from = receipt_target(keeper.receipt, spec.target)
        self._dir = spec.runtime_dir / f"keeper-{spec.name}"
        self._lock = asyncio.Lock()  # one heartbeat push at a time
        self._wake = asyncio.Event()
        self._began = clock()
        self._caught_up_before: float | None = None  # last success before this run
        self._start_done = not spec.reconcile_at_start
        self._urgent: float | None = None
        self.beats = 0
        self.last_heartbeat: Heartbeat | None = None
        self.last_shipped: float | None = None
        self.ship_error: str | None = None
        self.ship_failing_since: float | None = None
        self.receipt: Receipt | None = None
        self.receipt_read: float | None = None
        self.receipt_error: str | None = None
        self.receipt_failing_since: float | None = None
        self.last_confirm: dict[str, Any] | None = None

    # -- Component -----------------------------------------------------------------------

    async def run(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._caught_up_before = await self._last_success()
        while True:
            await self.beat()
            await self.read_receipt()
            if self._submit is not None:
                # a keeper that stops answering is a keeper that stopped keeping: paged on
                # the room's own road (replication:<name>, kind replication_keeper)
                problem, cause, params = self.keeper_problem(self._clock())
                await self._submit(
                    Reading(
                        f"replication:{self.spec.name}",
                        "replication_keeper",
                        problem is not None,
                        source="keeper",
                        detail=problem,
                        cause=cause,
                        params=params,
                    )
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.keeper.heartbeat):
                    await self._wake.wait()
            self._wake.clear()

    def keeper_problem(self, now: float) -> tuple[str | None, str | None, dict[str, Any]]:
        """Why the keeper does not vouch for this room now, or None. Judged once heartbeats
        have been shipped for `stale_after` (the keeper rewrites the receipt at every
        heartbeat it accepts; its `written` is the keeper's clock, so the hosts need NTP).
        With it, the same as a code of alerts/reasons.py and its parameters."""
        if self.last_shipped is None or now - self._began < self.keeper.stale_after:
            return None, None, {}
        error = self.receipt_error
        if self.receipt is None:
            why = f": {error}" if error else ""
            return (
                f"keeper {self.room} not answering: no receipt{why}",
                reasons.KEEPER_NO_RECEIPT,
                {"room": self.room, "error": error},
            )
        age = now - self.receipt.written
        if age <= self.keeper.stale_after:
            return None, None, {}
        why = f"; reading it fails: {error}" if error else ""
        written = clock_text(self.receipt.written)
        return (
            f"keeper {self.room} not answering: newest receipt {age:.0f}s old "
            f"(written {written}){why}",
            reasons.KEEPER_STALE,
            {"room": self.room, "age": round(age), "written": written, "error": error},
        )

    def health(self) -> dict[str, Any]:
        r = self.receipt
        hb = self.last_heartbeat
        return {
            "room": self.room,
            "replication": self.spec.name,
            "state": (
                "heartbeat failing"
                if self.ship_error
                else "receipt unreadable"
                if self.receipt_error
                else "ok"
                if self.last_shipped
                else "waiting for the first sync"
                if self._never_synced()
                else "starting"
            ),
            "heartbeat_every": self.keeper.heartbeat,
            "stale_after": self.keeper.stale_after,
            "confirm_wait": self.keeper.confirm_wait,
            "beats": self.beats,
            "last_shipped": self.last_shipped,
            "seq": hb.seq if hb else None,
            "synced_through": hb.synced_through if hb else None,
            "ship_error": self.ship_error,
            "ship_failing_since": self.ship_failing_since,
            "receipt": None
            if r is None
            else {
                "safe_as_of": r.safe_as_of,
                "written": r.written,
                "snapshot": r.snapshot,
                "snapshot_ts": r.snapshot_ts,
                "answered": r.answered,
            },
            "receipt_read": self.receipt_read,
            "receipt_error": self.receipt_error,
            "receipt_failing_since": self.receipt_failing_since,
            "last_confirm": self.last_confirm,
        }

    # -- heartbeat -----------------------------------------------------------------------

    async def _last_success(self) -> float | None:
        try:
            async with self._db.execute(
                "SELECT last_success FROM backup_state WHERE source = ?", (self.spec.name,)
            ) as cur:
                row = await cur.fetchone()
        except aiosqlite.Error:
            return None
        return float(row[0]) if row and row[0] is not None else None

    async def _shipped_seq(self) -> int:
        """The journal sequence up to which every change has left the journal (shipped)."""
        journal = self._replicator.journal
        # read before the query, which takes turns of the loop: numbers handed out while it
        # runs may be in rows it did not see. Rows not committed yet, and a batch the
        # journal loop holds (being recorded, or in a direct run), are in no row at all.
        seq = journal.seq
        bounds = [
            b for b in (journal.committed_below, self._replicator.in_hand_seq) if b is not None
        ]
        try:
            async with self._db.execute(
                "SELECT MIN(seq) FROM backup_journal WHERE source = ?", (self.spec.name,)
            ) as cur:
                row = await cur.fetchone()
        except aiosqlite.Error:
            row = None
        if row is not None and row[0] is not None:
            bounds.append(max(0, int(row[0]) - 1))
        return min([seq, *bounds])

    def _synced_through(self, now: float) -> float:
        """Every change the room saw before this moment has been shipped. Until the full
        pass at start has run, changes made while the daemon was down may not have been:
        then no later than the last success of the previous run."""
        unshipped = self._replicator.unshipped_since
        synced = now if unshipped is None else min(now, unshipped)
        if not self._start_done:
            rep = self._replicator
            health = rep.replication_health()
            last_full = health.last_full
            # the replicator asks for its start pass before it calls itself running, so
            # running and caught up means that pass is over
            if (health.phase == "running" and rep.caught_up) or (
                last_full is not None and last_full >= self._began
            ):
                self._start_done = True
            else:
                synced = min(synced, self._caught_up_before or 0.0)
        return synced

    def _alarms(self) -> tuple[AlarmNote, ...]:
        notes = []
        for a in self._active_alarms()[:MAX_ALARMS]:
            kind = str(a.get("kind") or "")
            if kind == "combined":  # a combined rule is known by its name ("fire")
                kind = str(a.get("sensor") or kind)
            since = a.get("since")
            notes.append(
                AlarmNote(
                    id=str(a.get("id") or ""),
                    kind=kind[:200],
                    severity=str(a.get("severity") or ""),
                    location=str(a.get("location") or "")[:200],
                    since=float(since) if isinstance(since, int | float) else None,
                )
            )
        return tuple(notes)

    async def heartbeat(self) -> Heartbeat:
        now = self._clock()
        urgent = self._urgent
        if urgent is not None and (now - urgent > URGENT_KEEP or self._answered(urgent)):
            urgent = self._urgent = None
        journal = self._replicator.journal
        return Heartbeat(
            room=self.room,
            replication=self.spec.name,
            ts=now,
            seq=await self._shipped_seq(),
            pending=journal.pending,
            rpo=round(journal.rpo(now), 3),
            synced_through=self._data_through(self._synced_through(now)),
            alarms=self._alarms(),
            urgent=urgent,
            site=self._site[:200],
        )

    def _data_through(self, synced: float) -> float:
        """An archive-log room's data is safe only as of the close time of the newest log
        a restore reaches (every earlier one shipped): what the database wrote after it
        is in no shipped file yet, however caught up the files are."""
        archive = self._replicator.archive
        if archive is None:
            return synced
        closed = archive.sequence.head_closed
        return min(synced, closed if closed is not None else 0.0)

    def _answered(self, urgent: float) -> bool:
        r = self.receipt
        return r is not None and r.answered is not None and r.answered >= urgent

    def _never_synced(self) -> bool:
        return self._replicator.replication_health().never_synced

    async def beat(self) -> bool:
        """Writes and pushes one heartbeat; True when it reached the target. Before the
        replication's first sync made the replica root, nothing is pushed (there is no
        landing area yet, and a heartbeat must never be the thing that creates it)."""
        if self._never_synced():
            return False
        async with self._lock:
            hb = await self.heartbeat()
            path = self._dir / HEARTBEAT_FILE
            await asyncio.to_thread(self._write, path, hb.to_json())
            target = self.spec.target
            try:
                transport = target.transport_args(self.spec.runtime_dir)
            except TargetError as exc:  # a password file rsync would refuse (the
                result = RsyncResult(1, Outcome.FATAL, error=str(exc))  # replication says so)
            else:
                # The destination names the file: rsync then never creates a missing replica
                # root (an unmounted disk stays visibly missing). -I: sent even when size
                # and mtime look the same. No --backup, no --delete.
                # Not under the target's lock (backup/target_lock.py), unlike every other
                # write: this one file is excluded from every pass (transfer.PROTECT), and
                # waiting behind an hours-long full pass would let the keeper page the room
                # as silent and hold up the confirmation of a critical page.
                result = await run_rsync(
                    [
                        "-t",
                        "-I",
                        *COMMON_ARGS,
                        f"--timeout={max(1, int(self.spec.timeout))}",
                        *transport,
                        str(path),
                        target.path(HEARTBEAT_FILE),
                    ],
                    time_limit=max(self.spec.timeout, self.keeper.heartbeat * 2),
                )
            self.last_heartbeat = hb
            if result.ok:
                self.beats += 1
                self.last_shipped = hb.ts
                if self.ship_error is not None:
                    log.info("keeper %s: heartbeat reaches %s again", self.room, target.describe())
                self.ship_error = self.ship_failing_since = None
                return True
            error = f"rsync exit {result.exit_code}: {result.error}"
            if self.ship_error is None:  # once per outage: the replication alarm pages
                log.warning(
                    "keeper %s: heartbeat cannot be shipped to %s: %s (logged once "
                    "until it works again)",
                    self.room,
                    target.describe(),
                    error,
                )
                self.ship_failing_since = hb.ts
            self.ship_error = error
            return False

    def _write(self, path: Path, text: str) -> None:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, text)

    # -- receipt -------------------------------------------------------------------------

    async def read_receipt(self) -> Receipt | None:
        """Reads the keeper's receipt (a local path, or an rsync pull into the runtime dir)
        and keeps the newest; None when it could not be read (`receipt_error` says why)."""
        try:
            receipt = await self._fetch()
        except (OSError, RecordError, TargetError) as exc:
            self._receipt_failed(
                str(exc)
                if not isinstance(exc, OSError)
                else f"{exc.strerror or exc}: {exc.filename or self.keeper.receipt}"
            )
            return None
        if receipt.room != self.room:
            self._receipt_failed(
                f"the receipt at {self.keeper.receipt} is for room "
                f"{receipt.room!r}, not {self.room!r}"
            )
            return None
        if self.receipt_error is not None:
            log.info("keeper %s: receipt readable again", self.room)
        self.receipt_error = self.receipt_failing_since = None
        self.receipt_read = self._clock()
        if self.receipt is None or receipt.written >= self.receipt.written:
            self.receipt = receipt
        return receipt

    async def _fetch(self) -> Receipt:
        return await fetch_receipt(
            self._receipt_from,
            self.spec.runtime_dir,
            self._dir,
            io_timeout=self.spec.timeout,
            time_limit=max(self.spec.timeout, self.keeper.heartbeat * 2),
        )

    def _receipt_failed(self, error: str) -> None:
        if self.receipt_error is None:
            log.warning(
                "keeper %s: receipt cannot be read from %s: %s (logged once until it works again)",
                self.room,
                self._receipt_from.describe(),
                error,
            )
            self.receipt_failing_since = self._clock()
        self.receipt_error = error

    # -- confirmation for a critical page ------------------------------------------------

    async def confirm(self, urgent: float) -> tuple[float | None, bool]:
        """Ships an urgent heartbeat and reads the receipt until it answers `urgent`; the
        caller bounds the wait. (safe_as_of, answered). When the heartbeat cannot be
        shipped, no answer can come: the page is not held for nothing."""
        self._urgent = urgent
        if not await self.beat():
            return self.newest_safe(), False
        while True:
            await self.read_receipt()
            if self._answered(urgent):
                assert self.receipt is not None
                return self.receipt.safe_as_of, True
            await asyncio.sleep(CONFIRM_POLL)

    def newest_safe(self) -> float | None:
        return self.receipt.safe_as_of if self.receipt is not None else None


def clock_text(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%H:%M:%S", time.localtime(ts))
