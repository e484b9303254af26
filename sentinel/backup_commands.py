"""Backup commands from the CLI (`sentinel backup resume|discard|sync`), applied by the
daemon to the replicators it runs (rows in `backup_commands`, sentinel/command_rows.py).

`apply` is the one implementation: the daemon's `BackupCommandRunner` calls it with its own
replicators, and the CLI calls it in-process only when no daemon claims the row (first
seeding before the service starts). A malformed row gets a clear result and the daemon
carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from backup import control
from backup.journal import WriteTx
from backup.replicator import Replicator
from backup.restore import RestoreError
from backup.target import TargetError
from backup.watcher import SourceGone
from sentinel.alarm.actor import Actor
from sentinel.command_rows import BACKUP
from sentinel.store import Store

log = logging.getLogger("sentinel.backup_commands")

POLL = 0.5  # seconds between looks for new rows
PROGRESS_EVERY = 1.0  # at most one progress write a second (each is a transaction)
KEEP_APPLIED = 30 * 86400.0  # applied rows kept this long (the trail of who did what)
_PERCENT = re.compile(r"(\d+)%")


class BackupCommand(StrEnum):
    SYNC = "sync"
    RESUME = "resume"
    DISCARD = "discard"
    LOG_ACK = "log-ack"  # archive-log: the current gaps are moot (docs/database.md)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A command's result as the row carries it. `error`: the command could not run at
    all (bad row, bad target); the CLI shows it on stderr."""

    ok: bool
    message: str
    error: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CommandResult:
        try:
            data = json.loads(text)
            return cls(bool(data["ok"]), str(data["message"]), bool(data.get("error")))
        except (ValueError, TypeError, KeyError):
            return cls(False, text or "no result", error=True)


def rejected(why: str) -> CommandResult:
    return CommandResult(False, f"command rejected: {why}", error=True)


def progress_of(chunk: str) -> float | None:
    """rsync --info=progress2's last percentage in `chunk` (None: none in it)."""
    found = _PERCENT.findall(chunk)
    return float(found[-1]) if found else None


async def apply(
    command: str,
    args: Any,
    replicator: Callable[[str], Replicator | None],
    write: WriteTx,
    *,
    on_progress: Callable[[float], None] | None = None,
) -> CommandResult:
    """Runs one command. `replicator(name)`: the replicator of that replication (None: no
    such one). Never raises but for cancellation."""
    try:
        kind = BackupCommand(command)
    except ValueError:
        return rejected(f"unknown command {command!r}")
    if not isinstance(args, dict) or not isinstance(args.get("name"), str):
        return rejected(f"{command}: the row names no replication")
    name: str = args["name"]
    rep = replicator(name)
    if rep is None:
        return rejected(f"{command}: no replication named {name!r} in the daemon's config")
    actor = Actor.from_args(args)
    log.info("backup %s of %s asked by %s", kind, name, actor.describe())
    try:
        if kind is BackupCommand.RESUME:
            await control.resume(write, name)
            return CommandResult(
                True, f"{name}: guard cleared; the daemon ships the pending changes"
            )
        if kind is BackupCommand.DISCARD:
            dropped = await control.discard(write, name)
            return CommandResult(
                True,
                f"{name}: {dropped} pending changes dropped; the replica stays as it was. "
                "The next full reconcile mirrors the source as it is then: restore the "
                "source first if it was damaged.",
            )
        if kind is BackupCommand.LOG_ACK:
            if rep.archive is None:
                return rejected(f"{name} is not an archive-log replication")
            floor = await rep.archive.acknowledge()
            upto = ", ".join(f"thread {t}: {s}" for t, s in sorted(floor.items())) or "none"
            return CommandResult(True, f"{name}: log gaps up to {upto} acknowledged")
        return await _sync(rep, args, on_progress)
    except (TargetError, RestoreError) as exc:
        return CommandResult(False, str(exc), error=True)
    except Exception as exc:  # a bug in one command must not stop the daemon
        log.exception("backup %s of %s failed", kind, name)
        return CommandResult(False, f"{name}: {kind} failed: {exc}", error=True)


async def _sync(
    rep: Replicator, args: dict[str, Any], on_progress: Callable[[float], None] | None
) -> CommandResult:
    name = rep.spec.name

    def on_output(chunk: str) -> None:
        pct = progress_of(chunk)
        if pct is not None and on_progress is not None:
            on_progress(pct)

    try:
        result = await rep.reconcile(
            "by hand",
            on_output=on_output,
            init_source=bool(args.get("init_source")),
            init_target=bool(args.get("init_target")),
        )
    except SourceGone as exc:
        return CommandResult(False, f"{name}: skipped: source missing or not mounted: {exc}")
    if result is None:
        return CommandResult(False, f"{name}: skipped: {rep.last_skip}")
    if not result.ok:
        return CommandResult(
            False, f"{name}: FAILED: rsync exit {result.exit_code}: {result.error}"
        )
    if on_progress is not None:
        on_progress(100.0)
    return CommandResult(True, f"{name}: full reconcile done in {result.seconds:.1f}s")


class BackupCommandRunner:
    """The daemon's side: claims each new row of `backup_commands` and applies it to the
    replicators this daemon runs; each command runs on its own (a resume must not wait
    behind an hour-long sync)."""

    name = "backup-commands"

    def __init__(
        self,
        store: Store,
        replicators: list[Replicator],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._by_name = {rep.spec.name: rep for rep in replicators}
        self._clock = clock
        self.applied = 0
        self.running: set[int] = set()

    async def run(self) -> None:
        async with self._store.write() as db:
            await db.execute(
                f"DELETE FROM {BACKUP.name} WHERE applied < ?", (self._clock() - KEEP_APPLIED,)
            )
        await self._close_interrupted()
        async with asyncio.TaskGroup() as tg:
            while True:
                for row_id, command, args in await self._claim_new():
                    self.running.add(row_id)
                    tg.create_task(
                        self._run_one(row_id, command, args), name=f"backup-cmd:{row_id}"
                    )
                await asyncio.sleep(POLL)

    async def _close_interrupted(self) -> None:
        """Rows a runner claimed and never finished: this daemon's before a reload (the
        runtime is rebuilt, its tasks cancelled) or a daemon that died. Their result says
        so, so a CLI still waiting stops waiting; a CLI's own rows, while it lives, stay."""
        async with self._store.db.execute(
            f"SELECT id, claimed_by FROM {BACKUP.name} "
            "WHERE applied IS NULL AND claimed IS NOT NULL"
        ) as cur:
            rows = await cur.fetchall()
        gone = [int(r[0]) for r in rows if r[1] == os.getpid() or not _alive(r[1])]
        if not gone:
            return
        outcome = CommandResult(
            False,
            "interrupted: the daemon stopped or reloaded while it ran the command; run it again",
            error=True,
        )
        async with self._store.write() as db:
            for row_id in gone:
                await db.execute(BACKUP.finish_sql, (self._clock(), outcome.to_json(), row_id))
        log.warning("backup commands %s were interrupted: marked so", gone)

    async def _claim_new(self) -> list[tuple[int, str, str]]:
        async with self._store.db.execute(BACKUP.pending_sql) as cur:
            rows = await cur.fetchall()
        mine = []
        for row in rows:
            async with self._store.write() as db:
                cur = await db.execute(BACKUP.claim_sql, (self._clock(), os.getpid(), row[0]))
                if cur.rowcount == 1:
                    mine.append((int(row[0]), str(row[1]), str(row[2])))
        return mine

    async def _run_one(self, row_id: int, command: str, raw_args: str) -> None:
        """Never raises but for cancellation: a failed write here must not take the
        TaskGroup, and every other command's sync, down with it."""
        last = 0.0
        writes: list[asyncio.Task[None]] = []
        progress_failed = False

        def on_progress(pct: float) -> None:
            # rsync's output arrives on the loop, in a callback: the write goes in a task
            nonlocal last
            now = time.monotonic()
            if pct < 100.0 and now - last < PROGRESS_EVERY:
                return
            last = now
            writes.append(asyncio.get_running_loop().create_task(self._progress(row_id, pct)))
            writes[-1].add_done_callback(progress_written)

        def progress_written(task: asyncio.Task[None]) -> None:
            # once per command: a full disk would otherwise log once a second for an hour
            nonlocal progress_failed
            if task.cancelled() or task.exception() is None or progress_failed:
                return
            progress_failed = True
            log.error(
                "backup command #%d: its progress could not be written (the CLI shows "
                "none until the result): %s",
                row_id,
                task.exception(),
            )

        try:
            try:
                args = json.loads(raw_args)
            except ValueError as exc:
                outcome = rejected(f"arguments are not JSON: {exc}")
            else:
                outcome = await apply(
                    command, args, self._by_name.get, self._store.write, on_progress=on_progress
                )
            log.info("backup command #%d %s: %s", row_id, command, outcome.message)
            # the last progress lands before the result: the CLI stops looking once it has one
            await asyncio.gather(*writes, return_exceptions=True)
            await self._finish(row_id, command, outcome)
        finally:
            for write in writes:
                write.cancel()  # done ones ignore it; a stop must not leave one behind
            self.running.discard(row_id)

    async def _finish(self, row_id: int, command: str, outcome: CommandResult) -> None:
        """Writes the result; when that fails, tries once more with an error result (a
        result too large or odd for the row), else leaves the row claimed: the next start
        closes it as interrupted."""
        try:
            async with self._store.write() as db:
                await db.execute(BACKUP.finish_sql, (self._clock(), outcome.to_json(), row_id))
            self.applied += 1
            return
        except Exception:
            log.exception("backup command #%d %s: its result could not be written", row_id, command)
        failed = CommandResult(
            False, f"{command}: the daemon could not write the result; see its log", error=True
        )
        try:
            async with self._store.write() as db:
                await db.execute(BACKUP.finish_sql, (self._clock(), failed.to_json(), row_id))
        except Exception:
            log.exception("backup command #%d: not even an error result could be written", row_id)

    async def _progress(self, row_id: int, pct: float) -> None:
        async with self._store.fast_write() as db:
            await db.execute(BACKUP.progress_sql, (pct, row_id))

    def health(self) -> dict[str, Any]:
        return {"applied": self.applied, "running": len(self.running)}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process (a CLI run with sudo): it lives
    return True
