"""A quiet database still has a bounded RPO (issue 16): the log switch and the base backup's
age, for each `[[replication]]` of kind "archive-log".

A database ships a log only when the log closes. Under a steady write load that happens
every few minutes; on a quiet evening the open log can hold an hour of approvals that exist
nowhere else. This component (supervised, named `database:<name>`) knows the newest closed
log in the replication's source directory (names through backup/logname.py; close time =
the file's mtime) and, when none has closed for `switch_after`, runs `switch_command`
(`select pg_switch_wal()`, `alter system archive log current`). It then waits for a log to
close; it does not run the command again before `switch_after` has passed again.

A switch that fails pages (kind `database_switch_failing`, pseudo-sensor `database:<name>`):
a non-zero exit, a command that outlives `switch_timeout`, or a "successful" command after
which no new log closes within `switch_timeout` (the archive command itself is broken, or
PostgreSQL had nothing to switch: see docs/database.md). The next switch that yields a log
resolves it.

The base backup's age is checked every few minutes: the newest entry of `base_backup_dir`
(mtime) or the time `base_backup_command` prints (ISO 8601 or Unix seconds). Older than
`base_backup_max_age`, none at all, or no way to tell -> kind `database_base_backup_age`,
critical: shipped logs without a base backup restore nothing.

The commands may carry a password (`PGPASSWORD=...`, `sqlplus sys/pw@db`, a URL with one):
the command line is never logged or shown, and its output is masked before it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from alerts import reasons
from backup.logname import LogName, LogNaming
from common.kinds import Kind
from common.redaction import Redactor, command_secrets, mask
from sensors.reading import Reading
from sentinel.config import Config
from sentinel.config.database import DatabaseConfig
from sentinel.config.replication import ReplicationConfig

log = logging.getLogger("sentinel.database")

SENSOR_PREFIX = "database:"
# How often the source directory is scanned at most: a scandir of a few thousand names
# costs milliseconds; a short switch_after (tests, benchmarks) scans more often.
SCAN_INTERVAL = 2.0
# reading the archive or base backup directory longer than this is reported, not awaited
SCAN_TIMEOUT = 30.0
BASE_BACKUP_INTERVAL = 300.0
BASE_BACKUP_COMMAND_TIMEOUT = 120.0
# What of a command's output a log line, status and a page carry.
OUTPUT_LIMIT = 400

Submit = Callable[[Reading], Awaitable[Any]]


def sensor_id(name: str) -> str:
    return SENSOR_PREFIX + name


@dataclass(frozen=True, slots=True)
class CommandResult:
    ok: bool
    output: str  # masked, shortened
    error: str | None  # masked: why it failed, in the words a page carries


async def run_command(command: str, limit: float, redactor: Redactor) -> CommandResult:
    """Runs a shell command with its output captured; a command outliving `limit` seconds is
    killed with its whole process group (a `psql` under `sh -c` must not stay behind)."""
    try:
        proc = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(False, "", redactor.redact(f"cannot start: {exc}"))
    try:
        async with asyncio.timeout(limit):
            raw, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return CommandResult(False, "", f"no answer within {limit:g} s (killed)")
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    output = redactor.redact(raw.decode("utf-8", "replace").strip())
    if len(output) > OUTPUT_LIMIT:
        output = "…" + output[-OUTPUT_LIMIT:]
    if proc.returncode != 0:
        # psql's reason is its first line; the hint after it is indented on the next
        said = " ".join(line.strip() for line in output.splitlines() if line.strip())
        said = said if len(said) <= 300 else said[:300] + "…"
        return CommandResult(False, output, f"exit status {proc.returncode}: {said or 'no output'}")
    return CommandResult(True, output, None)


def parse_time(text: str) -> float:
    """A base backup's time as `base_backup_command` prints it: Unix seconds or ISO 8601
    (a time without a zone is local time). ValueError says what was printed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("printed nothing (expected ISO 8601 or Unix seconds)")
    last = lines[-1]
    try:
        return float(last)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(last.replace(" UTC", "+00:00")).timestamp()
    except ValueError:
        shown = last if len(last) <= 80 else last[:80] + "…"
        raise ValueError(
            f"printed {shown!r}, which is not a time (expected ISO 8601 or Unix seconds)"
        ) from None


def newest_entry(directory: Path) -> float | None:
    """The mtime of the newest entry of a base backup directory (a pg_basebackup directory
    or tar, any file); None when it holds none. Dot names are an unfinished copy's."""
    newest: float | None = None
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            mtime = entry.stat(follow_symlinks=False).st_mtime
            newest = mtime if newest is None else max(newest, mtime)
    return newest


@dataclass(frozen=True, slots=True)
class NewestLog:
    name: str
    log: LogName
    closed: float  # mtime


def newest_log(directory: Path, naming: LogNaming) -> NewestLog | None:
    """The closed log with the highest (thread, sequence) and its close time. Names that do
    not parse (a `.partial`, `.history`, an archive command's temporary name) are skipped."""
    best: NewestLog | None = None
    with os.scandir(directory) as entries:
        for entry in entries:
            parsed = naming.parse(entry.name)
            if parsed is None:
                continue
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:  # pruned while we looked
                continue
            if best is None or (parsed, mtime) > (best.log, best.closed):
                best = NewestLog(entry.name, parsed, mtime)
    return best


class DatabaseWatch:
    """One archive-log replication's log switch and base backup age. A supervisor
    Component named `database:<name>`."""

    def __init__(
        self,
        rc: ReplicationConfig,
        submit: Submit,
        *,
        clock: Callable[[], float] = time.time,
        secrets: list[str] | None = None,
        scan_interval: float | None = None,
        base_backup_interval: float = BASE_BACKUP_INTERVAL,
    ) -> None:
        assert rc.database is not None
        self.db: DatabaseConfig = rc.database
        self.replication = rc.name
        self.name = sensor_id(rc.name)
        self.source = Path(rc.source)
        self._submit = submit
        self._clock = clock
        self._naming = LogNaming(self.db.preset, self.db.pattern)
        self._redactor = Redactor(
            [
                *(secrets or []),
                *command_secrets(self.db.switch_command or ""),
                *command_secrets(self.db.base_backup_command or ""),
            ]
        )
        self._scan_interval = scan_interval or min(SCAN_INTERVAL, self.db.switch_after / 4)
        self._base_interval = base_backup_interval
        self._started = clock()
        # the log switch
        self.newest: NewestLog | None = None
        self.scan_error: str | None = None
        self.last_switch: float | None = None  # when the command last started
        self.last_result: str | None = None  # "ok: <log>", or what went wrong
        self.switch_failing: str | None = None
        self.switches = 0
        self.switch_failures = 0  # in a row
        self._waiting_since: float | None = None  # a switch ran; no new log yet
        self._before: NewestLog | None = None
        # the base backup
        self.base_backup: float | None = None
        self.base_backup_error: str | None = None
        self.base_backup_checked: float | None = None
        self._next_base = float("-inf")

    def _masked(self, text: str) -> str:
        return mask(self._redactor.redact(text))

    async def run(self) -> None:
        while True:
            now = self._clock()
            await self._scan_and_switch(now)
            if now >= self._next_base:
                self._next_base = now + self._base_interval
                await self.check_base_backup(now)
            await asyncio.sleep(self._scan_interval)

    # -- the log switch ----------------------------------------------------------------------

    async def _scan(self) -> None:
        # in a thread with a limit: the archive directory is often an NFS mount, and a hung
        # one must not freeze the daemon's loop (every alarm and page runs on it)
        try:
            self.newest = await asyncio.wait_for(
                asyncio.to_thread(newest_log, self.source, self._naming), SCAN_TIMEOUT
            )
            self.scan_error = None
        except TimeoutError:
            self.scan_error = (
                f"reading {self.source} took over {SCAN_TIMEOUT:g}s (a hung network mount?)"
            )
        except OSError as exc:
            # the replication's own source_missing alarm says it; status shows it here too
            self.scan_error = self._masked(f"cannot read {self.source}: {exc.strerror or exc}")

    def _new_log_since_switch(self) -> bool:
        if self.newest is None:
            return False
        before = self._before
        return before is None or (self.newest.log, self.newest.closed) > (
            before.log,
            before.closed,
        )

    async def _scan_and_switch(self, now: float) -> None:
        await self._scan()
        if self._waiting_since is not None:
            if self._new_log_since_switch():
                assert self.newest is not None
                self._waiting_since = None
                self.last_result = f"ok: {self.newest.name} closed"
                log.info("%s: log switch closed %s", self.name, self.newest.name)
                await self._switch_ok()
            elif now - self._waiting_since >= self.db.switch_timeout:
                self._waiting_since = None
                await self._switch_failed(
                    f"no new log closed within {self.db.switch_timeout:g} s after the switch "
                    "command succeeded (is the archive command working?)",
                    now,
                )
            return
        if self.db.switch_command is None or self.scan_error is not None:
            return
        quiet_since = max(
            self.newest.closed if self.newest else self._started,
            self.last_switch if self.last_switch is not None else float("-inf"),
        )
        if now - quiet_since < self.db.switch_after:
            return
        await self.switch(now)

    async def switch(self, now: float) -> None:
        """Runs switch_command once; the next scans wait for the log it closes."""
        assert self.db.switch_command is not None
        self.last_switch = now
        self.switches += 1
        self._before = self.newest
        result = await run_command(self.db.switch_command, self.db.switch_timeout, self._redactor)
        if not result.ok:
            await self._switch_failed(f"switch command failed: {result.error}", now)
            return
        self._waiting_since = now
        self.last_result = "ran, waiting for the log to close"
        await self._scan()
        if self._new_log_since_switch():
            await self._scan_and_switch(self._clock())

    async def _switch_failed(self, error: str, now: float) -> None:
        error = self._masked(error)
        self.last_result = error
        log.warning("%s: %s", self.name, error)
        self.switch_failing = error
        self.switch_failures += 1
        await self._submit(self._switch_reading(True, now))

    async def _switch_ok(self) -> None:
        self.switch_failures = 0
        if self.switch_failing is not None:
            self.switch_failing = None
            await self._submit(self._switch_reading(False, self._clock()))

    def _switch_reading(self, failing: bool, now: float) -> Reading:
        params = {"name": self.replication, "error": self.switch_failing}
        return Reading(
            self.name,
            str(Kind.DATABASE_SWITCH_FAILING),
            failing,
            "",
            now,
            source="database",
            detail=(
                f"log switch of {self.replication} failing: {self.switch_failing}"
                if failing
                else None
            ),
            cause=reasons.DATABASE_SWITCH_FAILING if failing else None,
            params=params if failing else None,
        )

    # -- the base backup ---------------------------------------------------------------------

    async def newest_base_backup(self) -> float | None:
        """The newest base backup's time; None when there is none. Raises ValueError with
        the reason when it cannot be told."""
        if self.db.base_backup_dir is not None:
            try:
                return await asyncio.wait_for(
                    asyncio.to_thread(newest_entry, Path(self.db.base_backup_dir)), SCAN_TIMEOUT
                )
            except FileNotFoundError:
                return None
            except TimeoutError:
                raise ValueError(
                    f"reading {self.db.base_backup_dir} took over {SCAN_TIMEOUT:g}s "
                    "(a hung network mount?)"
                ) from None
            except OSError as exc:
                raise ValueError(
                    f"cannot read base_backup_dir {self.db.base_backup_dir}: {exc.strerror or exc}"
                ) from None
        assert self.db.base_backup_command is not None
        result = await run_command(
            self.db.base_backup_command, BASE_BACKUP_COMMAND_TIMEOUT, self._redactor
        )
        if not result.ok:
            raise ValueError(f"base_backup_command failed: {result.error}")
        try:
            return parse_time(result.output)
        except ValueError as exc:
            raise ValueError(f"base_backup_command {exc}") from None

    async def check_base_backup(self, now: float) -> None:
        if self.db.base_backup_dir is None and self.db.base_backup_command is None:
            return
        self.base_backup_checked = now
        try:
            self.base_backup = await self.newest_base_backup()
            self.base_backup_error = None
        except ValueError as exc:
            self.base_backup = None
            self.base_backup_error = self._masked(str(exc))
        problem = self.base_backup_problem(now)
        if problem:
            log.warning("%s: %s", self.name, problem)
        params: dict[str, Any] = {
            "name": self.replication,
            "max_age": self.db.base_backup_max_age,
            "age": None if self.base_backup is None else max(0.0, now - self.base_backup),
            "error": self.base_backup_error,
        }
        await self._submit(
            Reading(
                self.name,
                str(Kind.DATABASE_BASE_BACKUP_AGE),
                problem is not None,
                "",
                now,
                source="database",
                detail=problem,
                cause=reasons.DATABASE_BASE_BACKUP if problem else None,
                params=params if problem else None,
            )
        )

    def base_backup_problem(self, now: float) -> str | None:
        if self.base_backup_error is not None:
            return f"base backup of {self.replication} unknown: {self.base_backup_error}"
        if self.base_backup is None:
            return f"no base backup of {self.replication}: the shipped logs restore nothing"
        age = now - self.base_backup
        if age > self.db.base_backup_max_age:
            return (
                f"newest base backup of {self.replication} is {reasons.duration(age, 'en')} "
                f"old (allowed {reasons.duration(self.db.base_backup_max_age, 'en')})"
            )
        return None

    def summary(self, now: float) -> str:
        """The status table's one line: newest log and its age, the last switch, the base
        backup's age."""
        parts = [
            f"newest log {self.newest.name}, {reasons.duration(now - self.newest.closed, 'en')} ago"
            if self.newest
            else "no log yet"
        ]
        if self.last_switch is not None:
            parts.append(
                f"last switch {reasons.duration(now - self.last_switch, 'en')} ago: "
                f"{self.last_result}"
            )
        if self.base_backup is not None:
            parts.append(f"base backup {reasons.duration(now - self.base_backup, 'en')} old")
        elif self.base_backup_checked is not None:
            parts.append("no base backup")
        return "; ".join(parts)

    def health(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "state": self.summary(now),
            "last_error": self.switch_failing or self.base_backup_error or self.scan_error,
            "newest_log": self.newest.name if self.newest else None,
            "newest_log_age": round(now - self.newest.closed, 1) if self.newest else None,
            "scan_error": self.scan_error,
            "switch_command": self.db.switch_command is not None,
            "switch_after": self.db.switch_after,
            "switches": self.switches,
            "last_switch": self.last_switch,
            "last_switch_result": self.last_result,
            "switch_failing": self.switch_failing,
            "switch_failures": self.switch_failures,
            "base_backup": self.base_backup,
            "base_backup_age": (
                round(now - self.base_backup, 1) if self.base_backup is not None else None
            ),
            "base_backup_max_age": self.db.base_backup_max_age,
            "base_backup_error": self.base_backup_error,
            "base_backup_checked": self.base_backup_checked,
        }


def build_database_watches(
    config: Config,
    submit: Submit,
    *,
    clock: Callable[[], float] = time.time,
    secrets: list[str] | None = None,
) -> list[DatabaseWatch]:
    """One watch per `[[replication]]` of kind "archive-log"."""
    return [
        DatabaseWatch(rc, submit, clock=clock, secrets=secrets)
        for rc in config.replication
        if rc.kind == "archive-log" and rc.database is not None
    ]
