"""Wiring for replication: config -> `backup.Replicator` components, and their health ->
`Reading`s for the alarm engine (lag, failures, guard, verify, watch limit)."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from alerts.reasons import LOG_GAP
from backup.control_socket import control_dir_problem, ensure_control_dir
from backup.database_drill_record import drill_view, drill_view_empty
from backup.filters import Filters
from backup.logname import LogNaming
from backup.quarantine import shown
from backup.replicator import Replicator
from backup.spec import GuardSettings, ReplicationSpec
from backup.transport import SshTarget, parse_target
from sensors.reading import UNITS, Kind, Reading
from sentinel import rundir
from sentinel.config import Config
from sentinel.config.replication import ReplicationConfig
from sentinel.store import Store, open_readonly

log = logging.getLogger("sentinel.replication")


def runtime_dir(config: Config) -> Path:
    """Where ssh ControlMaster sockets live: the daemon's runtime directory
    (sentinel/rundir.py), never under the state directory."""
    return rundir.runtime_dir()


def runtime_problems(config: Config) -> list[str]:
    """Why ssh targets could not keep their control socket (checked before start)."""
    if not any(isinstance(parse_target(rc.target), SshTarget) for rc in config.replication):
        return []
    problem = control_dir_problem(runtime_dir(config))
    return [problem] if problem else []


def spec_from_config(
    rc: ReplicationConfig, runtime: Path, *, lock_dir: Path | None = None
) -> ReplicationSpec:
    """`lock_dir`: where the per-target write locks live (the state directory: the service
    and a by-hand `sentinel backup sync` must take the same lock file)."""
    target = parse_target(
        rc.target,
        password_file=rc.password_file,
        ssh_port=rc.ssh_port,
        identity_file=rc.identity_file,
        known_hosts=rc.known_hosts,
        strict_host_key_checking=rc.strict_host_key_checking,
        contimeout=max(1, min(30, int(rc.timeout))),
        stream_identity_file=rc.stream_identity_file,
    )
    g = rc.guard
    return ReplicationSpec(
        name=rc.name,
        source=rc.source,
        target=target,
        filters=Filters(tuple(rc.include), tuple(rc.exclude)),
        batch_max_files=rc.batch_max_files,
        batch_max_bytes=rc.batch_max_bytes,
        timeout=rc.timeout,
        reconcile_every=rc.reconcile_every,
        reconcile_at_start=rc.reconcile_at_start,
        verify_every=rc.verify_every,
        retention=rc.versions_retention,
        guard=GuardSettings(g.enabled, g.window, g.max_files, g.max_share, g.min_files),
        fallback_reconcile=rc.fallback_reconcile,
        retry_max=rc.retry_max,
        sparse=rc.sparse,
        hardlinks=rc.hardlinks,
        local_copy=rc.local_copy,
        latency_budget=rc.latency_budget,
        runtime_dir=runtime,
        require_mountpoint=rc.require_mountpoint,
        lock_dir=lock_dir,
        log_naming=None
        if rc.kind != "archive-log" or rc.database is None
        else LogNaming(rc.database.preset, rc.database.pattern),
    )


def build_replicators(
    config: Config, store: Store, *, clock: Callable[[], float] = time.time
) -> list[Replicator]:
    """One Replicator (a supervisor Component named "replication:<name>") per source.
    Run `await sentinel.migrations.migrate(store)` first."""
    runtime = runtime_dir(config)
    if config.replication:
        try:
            ensure_control_dir(runtime)
        except OSError as exc:
            # preflight refuses this before start, so only a race is left. Never use a
            # directory another user controls (a socket planted there would be taken for
            # our ssh master): a fresh private one does, for this run.
            fallback = Path(tempfile.mkdtemp(prefix="sentinel-"))
            log.warning("replication: %s; ssh sockets go to %s instead", exc, fallback)
            runtime = fallback
    return [
        Replicator(
            spec_from_config(rc, runtime, lock_dir=config.daemon.state_dir),
            store.db,
            store.write,
            journal_write=store.fast_write,
            journal_run=store.fast_run,
            clock=clock,
        )
        for rc in config.replication
    ]


SENSOR_PREFIX = "replication:"


def sensor_id(name: str) -> str:
    """The id replication health readings (and their alarms) carry for source `name`."""
    return SENSOR_PREFIX + name


def replication_readings(replicators: Iterable[Replicator], now: float) -> list[Reading]:
    """Each replicator's health as readings (call every few seconds)."""
    out: list[Reading] = []
    for rep in replicators:
        h = rep.replication_health()
        sid = sensor_id(rep.spec.name)
        values: list[tuple[str, float | bool]] = [
            # an archive-log replication's lag is the data RPO: how old the newest log is
            # that a restore can reach (every one before it arrived)
            (Kind.REPLICATION_LAG, float(h.rpo if h.data_rpo is None else h.data_rpo)),
            (Kind.REPLICATION_FAILURES, float(h.consecutive_failures)),
            (Kind.REPLICATION_GUARD, h.guard_tripped),
            (Kind.REPLICATION_VERIFY, h.verify_mismatch),
            (Kind.WATCH_LIMIT, h.watch_limit),
            (Kind.REPLICATION_SOURCE_MISSING, h.source_missing),
            (Kind.REPLICATION_TARGET_MISSING, h.target_missing),
            # the unreadable ones have their own alarm, which names them
            (Kind.REPLICATION_QUARANTINE, float(h.quarantined_other)),
        ]
        for kind, value in values:
            out.append(
                Reading(sid, str(kind), value, UNITS.get(kind, ""), now, source="replication")
            )
        out.append(
            Reading(
                sid,
                str(Kind.REPLICATION_UNREADABLE),
                bool(h.unreadable),
                "",
                now,
                source="replication",
                detail=unreadable_detail(h.source, h.unreadable, h.unreadable_first),
            )
        )
        if h.archive_log:
            out.append(log_gap_reading(sid, h.log_gap, now))
    return out


def log_gap_reading(sid: str, gap: tuple[str, ...], now: float) -> Reading:
    """CRITICAL while logs are missing below the newest arrived one: no restore crosses
    the gap. The page names the missing logs."""
    missing = ", ".join(gap)
    return Reading(
        sid,
        str(Kind.REPLICATION_LOG_GAP),
        bool(gap),
        "",
        now,
        source="replication",
        detail=f"log sequence gap: {missing} missing" if gap else None,
        cause=LOG_GAP if gap else None,
        params={"missing": missing} if gap else None,
    )


def database_drills(config: Config) -> list[tuple[str, float]]:
    """(name, drill.max_age) of each replication with [replication.database.drill]."""
    return [
        (rc.name, rc.database.drill.max_age)
        for rc in config.replication
        if rc.database is not None and rc.database.drill is not None
    ]


class DatabaseDrillFeed:
    """The database drills' record (`sentinel backup drill --database` writes it, from
    another process) as readings for the engine: the last drill failed -> a critical
    `database_drill_failed`, none successful within drill.max_age (or none ever) -> a
    warning `database_drill_overdue`, both on "replication:<name>". The kind's label says
    what is wrong in the page's language; status gives the reason."""

    name = "database-drill"
    READ_EVERY = 30.0  # the record changes at most once per drill

    def __init__(
        self,
        drills: list[tuple[str, float]],
        state_dir: Path,
        submit: Callable[[Reading], Awaitable[None]],
        clock: Callable[[], float],
        interval: float = 2.0,
    ) -> None:
        self._drills, self._state_dir, self._submit = drills, state_dir, submit
        self._clock, self._interval = clock, interval
        self._levels: dict[str, str | None] = {}
        self._read_at = float("-inf")

    def _read(self, now: float) -> dict[str, str | None]:
        conn = open_readonly(self._state_dir)
        try:
            return {
                name: (
                    drill_view(conn, name, now, max_age)
                    if conn is not None
                    else drill_view_empty(now, max_age)
                )["level"]
                for name, max_age in self._drills
            }
        finally:
            if conn is not None:
                conn.close()

    async def run(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(self._interval)

    async def once(self) -> None:
        """Reads the record (at most every READ_EVERY) and feeds the engine."""
        now = self._clock()
        if now - self._read_at >= self.READ_EVERY:
            self._levels = await asyncio.to_thread(self._read, now)
            self._read_at = now
        for reading in database_drill_readings(self._levels, now):
            await self._submit(reading)

    def health(self) -> dict[str, Any]:
        return {"drills": dict(self._levels)}


def database_drill_readings(levels: dict[str, str | None], now: float) -> list[Reading]:
    """Per replication, from its drill view's level (CRITICAL: the last drill failed;
    WARNING: overdue or never; None: fine)."""
    out = []
    for name, level in levels.items():
        for kind, on in (
            (Kind.DATABASE_DRILL_FAILED, level == "CRITICAL"),
            (Kind.DATABASE_DRILL_OVERDUE, level == "WARNING"),
        ):
            out.append(Reading(sensor_id(name), str(kind), on, "", now, source="replication"))
    return out


def unreadable_detail(source: str, count: int | None, first: str | None) -> str | None:
    """The alarm's reason: the first document the service account may not read, and how
    many more. Only a path and a number: the kind's label says what is wrong in the page's
    language ("읽기 권한 없는 문서", "unreadable documents"), status says what to do.
    `first` is already `shown()` (by the replicator, or the quarantine table's reader);
    `source` is the config's."""
    count = int(count or 0)
    if not count:
        return None
    more = f" (+{count - 1})" if count > 1 else ""
    return f"{shown(source.rstrip('/'))}/{first}{more}"
