"""One room the keeper serves: its heartbeat, its snapshots, its receipt and its alarms.

The room daemon ships data, then a heartbeat, over one rsync path into the landing area.
This component looks at the heartbeat every `poll`, snapshots the landing area soon after
it changes (inotify, and the heartbeat's shipped sequence), writes the receipt the room reads
back ("data safe as of"), and feeds the alarm engine: `room_silent` when the heartbeat is
older than the room's threshold, `room_disaster` when that happens while the room had a
critical alarm, `landing_mass_change` when a snapshot finds a mass deletion or rewrite, and
`keeper_snapshot_failures`. The alarm engine, outbox and templates are the room daemon's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from alerts.templates import KIND_LABELS, SEVERITY_LABELS
from backup.filters import Filters
from backup.keeper_record import (
    HEARTBEAT_FILE,
    RECEIPT_FILE,
    Heartbeat,
    Receipt,
    RecordError,
    parse_heartbeat,
    read_heartbeat,
    read_receipt,
    write_atomic,
)
from backup.retention import Retention
from backup.snapshot import SnapshotStore
from backup.target import VERSIONS_DIR
from backup.watcher import Watcher
from common.retry import Backoff
from sensors.reading import Kind, Reading
from sentinel.config.keeper import KeeperConfig, RoomConfig

log = logging.getLogger("sentinel.keeper")

SENSOR_PREFIX = "room:"
# Readings are re-sent this often even when nothing changed, so a restarted engine relearns.
REPORT_EVERY = 10.0
# After a failed snapshot, wait this long (doubling, capped) before the next attempt.
# a failed snapshot is retried after 5 s, 10 s, ... at most every 5 minutes (no jitter:
# one keeper, nothing to spread)
RETRY = Backoff(5.0, 300.0)
# A heartbeat that claims a moment further ahead of this host's clock is refused: "data safe
# as of" only ever grows, so one heartbeat from a clock years ahead (or a forged one) would
# make every later receipt and page claim safety it does not have.
CLOCK_AHEAD_MAX = 300.0
# An urgent heartbeat takes a snapshot at once, but not more often than this: a writer
# flipping `urgent` every second must not make the keeper snapshot every second.
URGENT_MIN_GAP = 10.0
# The heartbeat and rsync's temporary copies of it change every few seconds by design; only
# data changes make a snapshot due.
_QUIET = Filters(exclude=(HEARTBEAT_FILE, f".{HEARTBEAT_FILE}.*"))

Submit = Callable[[Reading], Awaitable[None]]


class RoomWatch:
    """The keeper's view of one room (a supervised component)."""

    def __init__(
        self,
        room: RoomConfig,
        keeper: KeeperConfig,
        submit: Submit,
        *,
        language: str = "ko",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.room = room
        self.keeper = keeper
        self.name = f"{SENSOR_PREFIX}{room.name}"
        self.sensor_id = self.name
        self._submit = submit
        self._lang = language
        self._clock = clock
        self._store: SnapshotStore | None = None  # opened in run(): a bad dir pages, not crashes
        self.receipt_path = keeper.receipt_dir / room.name / RECEIPT_FILE
        self.retention = Retention(
            keep_all=keeper.keep_all, hourly=keeper.keep_hourly, daily=keeper.keep_daily
        )
        self.started = clock()
        self.heartbeat: Heartbeat | None = None
        self.heartbeat_arrived: float | None = None
        self.heartbeat_error: str | None = None
        self._hb_key: tuple[int, ...] | None = None
        self.landing_problem: str | None = None
        self.watch_error: str | None = None
        self._watching = False
        self._dirty_since: float | None = None
        self._last_change: float | None = None
        self._snap_seq: int | None = None
        self.safe_as_of: float | None = None
        self.answered: float | None = None
        self.last_snapshot: dict[str, Any] | None = None
        self.snapshots: list[tuple[str, float]] = []
        self.failures = 0
        self.last_error: str | None = None
        self.receipt_error: str | None = None
        self._seen_file = False
        # the receipt is rewritten after every accepted heartbeat (its `written` is how the
        # room knows this keeper is alive), after each snapshot, and while it fails
        self._receipt_due = False
        self._last_urgent_snapshot = 0.0
        self._retry_at = 0.0
        self.mass_change: str | None = None
        # (snapshot time, files deleted, files before) within the window
        self._churn: deque[tuple[float, int, int]] = deque()
        self._reported: tuple[Any, ...] | None = None
        self._reported_at = 0.0

    # -- life -------------------------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.to_thread(self._load)
        watch = asyncio.create_task(self._watch(), name=f"{self.name}-inotify")
        try:
            while True:
                now = self._clock()
                self._look_at_heartbeat(now)
                if self._snapshot_due(now):
                    await self._snapshot(now)
                else:
                    self._advance_without_snapshot(now)
                if self._receipt_due or self.receipt_error is not None:
                    await self._write_receipt(now)
                await self._report(now)
                await asyncio.sleep(self.keeper.poll)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    @property
    def store(self) -> SnapshotStore:
        """The room's snapshot store, created (0700) on first use; raises OSError when the
        snapshot dir cannot be made or entered."""
        if self._store is None:
            self._store = SnapshotStore(self.keeper.snapshot_dir / self.room.name)
        return self._store

    def _load(self) -> None:
        """What survives a keeper restart: the snapshots on disk and the last receipt."""
        try:
            self._list_snapshots()
        except OSError as exc:
            self._failed(self._clock(), f"cannot open the snapshot store: {exc}")
        now = self._clock()
        with contextlib.suppress(OSError, RecordError):
            old = read_receipt(self.receipt_path)
            if all(v is None or v <= now + CLOCK_AHEAD_MAX for v in (old.safe_as_of, old.answered)):
                self.safe_as_of, self.answered = old.safe_as_of, old.answered
            # the last heartbeat this keeper accepted, and when: a heartbeat file the
            # writer deleted since must not turn a silent room into "never heard from"
            # (nor resolve its likely-disaster alarm)
            last = old.extra.get("heartbeat")
            arrived = old.extra.get("heartbeat_arrived")
            if isinstance(last, str) and isinstance(arrived, int | float) and arrived <= now:
                with contextlib.suppress(RecordError):
                    self.heartbeat = parse_heartbeat(last.encode("utf-8"))
                    self.heartbeat_arrived = float(arrived)
        if not self.snapshots:
            self._changed(self._clock())  # nothing kept yet: the first snapshot is due

    async def _watch(self) -> None:
        """inotify on the landing area: any change there (the room's, or an attacker's)
        makes a snapshot due. Without it, snapshots follow the heartbeat's sequence and
        `snapshot_every`, and status says so."""
        delay = 1.0
        while True:
            watcher = Watcher(
                self.room.landing,
                _QUIET,
                on_change=lambda rel, kind: self._changed(self._clock()),
                on_overflow=lambda: self._changed(self._clock()),
                on_dir_gone=lambda rel: self._changed(self._clock()),
            )
            try:
                await asyncio.to_thread(watcher.open)
                self._watching, self.watch_error = True, None
                self._changed(self._clock())  # whatever happened before the watch existed
                await watcher.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the landing area vanished, a watch limit...
                if self.watch_error != str(exc):
                    log.warning(
                        "room %s: cannot watch %s: %s", self.room.name, self.room.landing, exc
                    )
                self.watch_error = str(exc)
            finally:
                self._watching = False
                watcher.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _changed(self, now: float) -> None:
        self._last_change = now
        if self._dirty_since is None:
            self._dirty_since = now

    # -- the heartbeat ----------------------------------------------------------------------

    def _look_at_heartbeat(self, now: float) -> None:
        path = self.room.landing / HEARTBEAT_FILE
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.landing_problem = (
                None
                if self.room.landing.is_dir()
                else f"landing area {self.room.landing} is missing"
            )
            return
        except OSError as exc:
            self.landing_problem = f"cannot look at {path}: {exc.strerror}"
            return
        self.landing_problem = None
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key == self._hb_key:
            return
        self._hb_key = key
        if not stat.S_ISREG(st.st_mode):
            self.heartbeat_error = f"{HEARTBEAT_FILE} is not a regular file"
            return
        try:
            beat = read_heartbeat(path)
            self._trust(beat, now)
        except (OSError, RecordError) as exc:
            self.heartbeat_error = f"unreadable heartbeat: {exc}"
            log.warning("room %s: %s", self.room.name, self.heartbeat_error)
            return
        first, self._seen_file = not self._seen_file, True
        # the keeper's clock decides age: the room's clock may be wrong. The first file read
        # after a start landed when its ctime says (set by this host's kernel at rsync's
        # rename), and is no news if this keeper had accepted it before the restart.
        arrived = min(now, st.st_ctime) if first else now
        if first and self.heartbeat_arrived is not None and arrived <= self.heartbeat_arrived:
            return
        self.heartbeat, self.heartbeat_error = beat, None
        self.heartbeat_arrived = arrived
        self._receipt_due = True
        if beat.seq != self._snap_seq:
            # the room shipped something since the last snapshot (or no snapshot yet says
            # which of its shipments it holds)
            self._changed(now)

    def _trust(self, beat: Heartbeat, now: float) -> None:
        """Refuses a heartbeat that is another room's (a room set up with the wrong module
        would keep this one looking alive) or that claims a moment in this host's future."""
        if beat.room != self.room.name:
            raise RecordError(
                f"it names room {beat.room!r}, this landing area is room "
                f"{self.room.name!r} (check the room's [replication.keeper] room)"
            )
        for name, value in (("synced_through", beat.synced_through), ("urgent", beat.urgent)):
            if value is not None and value > now + CLOCK_AHEAD_MAX:
                raise RecordError(
                    f"{name} is {value - now:.0f} s ahead of this host's clock (the room's "
                    "clock is wrong, or the file is forged); it cannot vouch for anything"
                )

    def heartbeat_age(self, now: float) -> float:
        return now - (
            self.heartbeat_arrived if self.heartbeat_arrived is not None else self.started
        )

    # -- snapshots --------------------------------------------------------------------------

    def _urgent(self) -> bool:
        beat = self.heartbeat
        return (
            beat is not None
            and beat.urgent is not None
            and (self.answered is None or beat.urgent > self.answered)
        )

    def _snapshot_due(self, now: float) -> bool:
        if now < self._retry_at or not self.room.landing.is_dir():
            return False
        if self._urgent() and not self._watching and self._dirty_since is None:
            # unwatched, nothing says the landing area is unchanged: only a snapshot answers
            self._changed(now)
        if self._dirty_since is not None:
            if self._urgent() and now - self._last_urgent_snapshot >= URGENT_MIN_GAP:
                self._last_urgent_snapshot = now
                return True
            quiet = now - (self._last_change or now)
            waited = now - self._dirty_since
            return quiet >= self.keeper.settle or waited >= self.keeper.snapshot_within
        newest = self.snapshots[-1][1] if self.snapshots else None
        # a newest snapshot dated ahead of the clock (the clock went back) must not stop the
        # at-least-every snapshot
        return (
            newest is None
            or now - newest >= self.keeper.snapshot_every
            or newest > now + CLOCK_AHEAD_MAX
        )

    async def _snapshot(self, now: float) -> None:
        beat = self.heartbeat  # read before the walk: everything it covers has landed
        self._dirty_since = None
        try:
            result = await asyncio.to_thread(self.store.take, self.room.landing, now=now)
            pruned = await asyncio.to_thread(self.store.prune, self.retention, now=now)
            await asyncio.to_thread(self._list_snapshots)
        except Exception as exc:
            self._failed(now, f"snapshot failed: {exc}")
            return
        if self.failures:
            log.info("room %s: snapshots work again", self.room.name)
        self.failures, self.last_error, self._retry_at = 0, None, 0.0
        snap = result.snapshot
        self.last_snapshot = {
            "name": snap.name,
            "ts": snap.ts,
            "files": result.files,
            "copied": result.copied,
            "linked": result.linked,
            "bytes_copied": result.bytes_copied,
            "added": result.added,
            "changed": result.changed,
            "removed": result.removed,
            "skipped": len(result.skipped),
            "seconds": round(result.seconds, 3),
            "pruned": len(pruned),
        }
        # the room prunes its own .sentinel-versions/ (versions_retention): that is no
        # attack, and the snapshots keep those files anyway
        removed = result.removed - result.removed_by_top.get(VERSIONS_DIR, 0)
        previous = result.previous_files - result.previous_by_top.get(VERSIONS_DIR, 0)
        self.mass_change = self._mass_change(result.changed, removed, previous, snap.name)
        if beat is not None:
            self._snap_seq = beat.seq
            self._safe(beat.synced_through)
            if beat.urgent is not None:
                self.answered = max(self.answered or 0.0, beat.urgent)
        await self._write_receipt(now)
        log.info(
            "room %s: snapshot %s: %d files, %d copied (%d bytes), %d removed, %.2fs",
            self.room.name,
            snap.name,
            result.files,
            result.copied,
            result.bytes_copied,
            result.removed,
            result.seconds,
        )

    def _failed(self, now: float, error: str) -> None:
        self.failures += 1
        self.last_error = error
        self._retry_at = now + RETRY.base(self.failures)
        self._changed(now)  # still not kept
        log.error("room %s: %s", self.room.name, error)

    def _advance_without_snapshot(self, now: float) -> None:
        """Nothing landed since the last snapshot (inotify is watching and the room's
        shipped sequence is the one snapshotted): that snapshot holds everything the newest
        heartbeat covers, so "safe as of" moves on without a new snapshot."""
        beat = self.heartbeat
        if (
            beat is None
            or not self._watching
            or self._dirty_since is not None
            or self._snap_seq != beat.seq
            or not self.snapshots
        ):
            return
        before = (self.safe_as_of, self.answered)
        self._safe(beat.synced_through)
        if beat.urgent is not None:
            self.answered = max(self.answered or 0.0, beat.urgent)
        if (self.safe_as_of, self.answered) != before:
            self._receipt_due = True

    def _safe(self, through: float) -> None:
        self.safe_as_of = through if self.safe_as_of is None else max(self.safe_as_of, through)

    def _mass_change(self, changed: int, removed: int, previous: int, name: str) -> str | None:
        """Deleted plus rewritten files against the thresholds for this snapshot alone, and
        deleted files summed over `mass_change_window` against the file count at its start
        (a slow drip). Rewrites are not summed: one document saved 60 times in an hour is
        one document, and a per-snapshot count cannot tell it from 60 (a rewrite drip
        below the per-snapshot limits is not paged)."""
        room = self.room
        now = self._clock()
        if previous:  # a first snapshot has nothing to compare with
            self._churn.append((now, removed, previous))
        while self._churn and now - self._churn[0][0] > room.mass_change_window:
            self._churn.popleft()
        windows: list[tuple[int, int, int | None, int | None]] = [
            (changed + removed, previous, changed, removed)
        ]
        if len(self._churn) > 1:
            total = sum(c for _, c, _ in self._churn)
            windows.append((total, self._churn[0][2], None, None))
        for count, base, *_ in windows:
            if count > room.mass_change_files or (
                base >= room.mass_change_min_files and count > room.mass_change_share * base
            ):
                break
        else:
            return None
        if len(windows) > 1 and (count, base) == windows[1][:2]:
            window = _duration(room.mass_change_window, self._lang == "ko")
            if self._lang == "ko":
                return (
                    f"백업 파일 {base}개 중 {count}개가 {window} 동안 삭제됨 "
                    "(원본은 이전 스냅숏에 보존)"
                )
            return (
                f"{count} of {base} files deleted from the landing area within "
                f"{window} (earlier snapshots keep the originals)"
            )
        if self._lang == "ko":
            return (
                f"백업 파일 {previous}개 중 {removed}개 삭제, {changed}개 변경됨 "
                f"(원본은 스냅숏 {name}에 보존)"
            )
        return (
            f"{removed} of {previous} files deleted and {changed} rewritten in the landing "
            f"area (snapshots before {name} keep the originals)"
        )

    def _list_snapshots(self) -> None:
        self.snapshots = [(s.name, s.ts) for s in self.store.list()]

    async def _write_receipt(self, now: float) -> None:
        """Written off the event loop: its fsync can wait behind another room's snapshot
        flush on the same disk, and nothing else (no room, no page) may wait with it."""
        self._receipt_due = False
        await asyncio.to_thread(self._write_receipt_file, now)

    def _write_receipt_file(self, now: float) -> None:
        newest = self.snapshots[-1] if self.snapshots else None
        beat = self.heartbeat
        receipt = Receipt(
            room=self.room.name,
            safe_as_of=self.safe_as_of,
            snapshot=newest[0] if newest else None,
            snapshot_ts=newest[1] if newest else None,
            written=now,
            answered=self.answered,
            extra={
                "heartbeat": beat.to_json() if beat else None,
                "heartbeat_arrived": self.heartbeat_arrived,
            },
        )
        try:
            self.receipt_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            write_atomic(self.receipt_path, receipt.to_json())
        except OSError as exc:
            # the room's pages and status quote this file: not writing it is a failure of
            # the keeper's job, paged like a failed snapshot (and retried every poll)
            if self.receipt_error is None:
                log.error(
                    "room %s: cannot write the receipt %s: %s",
                    self.room.name,
                    self.receipt_path,
                    exc.strerror,
                )
            self.receipt_error = f"cannot write the receipt {self.receipt_path}: {exc.strerror}"
            return
        if self.receipt_error is not None:
            log.info("room %s: the receipt is written again", self.room.name)
        self.receipt_error = None

    # -- alarms -----------------------------------------------------------------------------

    async def _report(self, now: float) -> None:
        age = self.heartbeat_age(now)
        silent = age > self.room.silent_after
        disaster = silent and self.heartbeat is not None and bool(self.heartbeat.critical_alarms)
        failures = self.failures + (1 if self.receipt_error else 0)
        state = (silent, disaster, self.mass_change, failures)
        if state == self._reported and now - self._reported_at < REPORT_EVERY:
            return
        if silent and state[:2] != (self._reported or (None, None))[:2]:
            log.critical("room %s: %s", self.room.name, self._silence_text(age, disaster))
        self._reported, self._reported_at = state, now
        sid = self.sensor_id
        text = self._silence_text(age, disaster) if silent else None
        await self._submit(
            Reading(sid, Kind.ROOM_SILENT, silent and not disaster, source="keeper", detail=text)
        )
        await self._submit(Reading(sid, Kind.ROOM_DISASTER, disaster, source="keeper", detail=text))
        await self._submit(
            Reading(
                sid,
                Kind.LANDING_MASS_CHANGE,
                self.mass_change is not None,
                source="keeper",
                detail=self.mass_change,
            )
        )
        await self._submit(
            Reading(
                sid,
                Kind.KEEPER_SNAPSHOT_FAILURES,
                float(failures),
                source="keeper",
                detail=self.last_error or self.receipt_error,
            )
        )

    def _silence_text(self, age: float, disaster: bool) -> str:
        """The page, short enough for one SMS beside the room's name (90 bytes in EUC-KR):
        "90초 무응답, 자료 14:32:05까지 안전, 누수(위험)", in the alerts' language."""
        ko = self._lang == "ko"
        beat = self.heartbeat
        how_long = _duration(age, ko)
        if beat is None:
            return (
                f"보관 서버 시작 후 {how_long} 무응답(수신 기록 없음)"
                if ko
                else f"never heard from ({how_long} since keeper start)"
            )
        safe = _clock(self.safe_as_of)
        labels = KIND_LABELS["ko" if ko else "en"]
        sev = SEVERITY_LABELS["ko" if ko else "en"]
        # the most severe alarm by name, the others counted: the room's name must still fit
        alarms = sorted(beat.alarms, key=lambda a: a.severity != "critical")
        listed = ""
        if alarms:
            first = alarms[0]
            level = sev.get(first.severity, first.severity)  # type: ignore[call-overload]
            listed = f"{labels.get(first.kind, first.kind)}({level})"
            if len(alarms) > 1:
                listed += f" 외 {len(alarms) - 1}" if ko else f" +{len(alarms) - 1}"
        if disaster:
            return (
                f"재난추정 {how_long} 무응답, 자료 {safe}까지 안전, {listed}"
                if ko
                else f"LIKELY DISASTER: silent {how_long} during {listed}; data safe to {safe}"
            )
        if ko:
            return f"{how_long} 무응답, 자료 {safe}까지 안전" + (f", {listed}" if listed else "")
        return f"silent {how_long}, data safe to {safe}" + (f", alarms: {listed}" if listed else "")

    # -- status -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        now = self._clock()
        beat = self.heartbeat
        return {
            "room": self.room.name,
            "label": self.room.where,
            "landing": str(self.room.landing),
            "heartbeat_arrived": self.heartbeat_arrived,
            "heartbeat_age": round(self.heartbeat_age(now), 1),
            "silent": self.heartbeat_age(now) > self.room.silent_after,
            "silent_after": self.room.silent_after,
            "heartbeat_error": self.heartbeat_error,
            "room_ts": beat.ts if beat else None,
            "room_seq": beat.seq if beat else None,
            "room_rpo": beat.rpo if beat else None,
            "room_pending": beat.pending if beat else None,
            "room_alarms": [
                {"kind": a.kind, "severity": a.severity, "id": a.id} for a in beat.alarms
            ]
            if beat
            else [],
            "safe_as_of": self.safe_as_of,
            "answered": self.answered,
            "snapshot_count": len(self.snapshots),
            "newest_snapshot": self.snapshots[-1][0] if self.snapshots else None,
            "newest_snapshot_ts": self.snapshots[-1][1] if self.snapshots else None,
            "oldest_snapshot": self.snapshots[0][0] if self.snapshots else None,
            "oldest_snapshot_ts": self.snapshots[0][1] if self.snapshots else None,
            "last_snapshot": self.last_snapshot,
            "unsnapshotted_since": self._dirty_since,
            "snapshot_failures": self.failures,
            "last_error": self.last_error or self.receipt_error or self.landing_problem,
            "watching": self._watching,
            "watch_error": self.watch_error,
            "mass_change": self.mass_change,
            "clock_warning": self._clock_warning(now),
        }

    def _clock_warning(self, now: float) -> str | None:
        if not self.snapshots or self.snapshots[-1][1] <= now + CLOCK_AHEAD_MAX:
            return None
        return (
            f"the newest snapshot is dated {self.snapshots[-1][1] - now:.0f} s ahead of "
            "this host's clock (the clock went back?): new snapshots sort after it, and "
            "retention and --as-of go by snapshot time"
        )


def _duration(seconds: float, ko: bool) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}초" if ko else f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}분" if ko else f"{seconds // 60}m"
    return f"{seconds // 3600}시간" if ko else f"{seconds // 3600}h"


def _clock(ts: float | None) -> str:
    """14:32:05 today, 12-01 14:32 another day, 2025-12-01 another year; "?" when nothing
    is known yet."""
    if ts is None:
        return "?"
    local, today = time.localtime(ts), time.localtime()
    if local.tm_year != today.tm_year:
        return time.strftime("%Y-%m-%d", local)
    if time.strftime("%m%d", local) != time.strftime("%m%d", today):
        return time.strftime("%m-%d %H:%M", local)
    return time.strftime("%H:%M:%S", local)
