"""`sentinel backup ...`: full sync by hand, verify, restore, drill, guard decisions, status.

`sync`, `resume` and `discard` act on what the daemon runs: each is a row in
`backup_commands` (sentinel/command_rows.py) that the running daemon applies to its own
replicator; this process waits for the result (and the sync's progress) and prints it.
Only when no daemon runs (first seeding before the service starts) does the command run
here, through the same code (sentinel/backup_commands.py) and under the same per-target
lock as the daemon's rsync; a running daemon that does not take the row within TAKE_WAIT
gets it withdrawn, never run beside it. verify, restore and drill only read the replica
and run here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from backup.control_socket import ensure_control_dir
from backup.database_drill import DrillPlan, database_drill, iso
from backup.database_drill_record import DrillRecord, duration_text, save_record
from backup.drill_record import FileDrill, save_drill
from backup.keeper_drill import keeper_drill
from backup.replicator import Replicator
from backup.restore import RestoreError, drill, restore
from backup.spec import ReplicationSpec
from backup.status import read_status
from backup.target import TargetError
from sentinel import command_rows, migrations
from sentinel.alarm.actor import Actor
from sentinel.alarm.commands import (
    NotInitialised,
    StateDbError,
    connect,
    daemon_running,
    explain,
)
from sentinel.backup_commands import BackupCommand, CommandResult, apply
from sentinel.cli.common import load_or_exit
from sentinel.command_rows import BACKUP, RowState
from sentinel.config import Config
from sentinel.config.replication import ReplicationConfig
from sentinel.replication import runtime_dir, spec_from_config
from sentinel.room_heartbeat import history_target, receipt_target
from sentinel.store import Store, open_readonly

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# a running daemon takes a row within a second (it looks every half second); after this
# long the CLI says it waits: a reload, or a command runner the supervisor restarts
CLAIM_WAIT = 5.0
# how long a running daemon gets to take the row before the CLI withdraws it: longer than
# the supervisor's longest restart delay (sentinel/supervisor.py BACKOFF_MAX). A daemon
# without this replication in its config never takes it.
TAKE_WAIT = 90.0
WITHDRAWN = "cancelled: the daemon did not take the command"
INTERRUPTED = "cancelled: interrupted (Ctrl-C) before the daemon took the command"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `backup` and its subcommands."""
    p = sub.add_parser("backup", help="replication: sync, verify, restore, drill, guard")
    bsub = p.add_subparsers(dest="backup_command", metavar="ACTION")

    s = bsub.add_parser(
        "sync",
        help="run a full reconcile now, in the running daemon if any (with a progress bar)",
    )
    s.add_argument(
        "--full",
        action="store_true",
        required=True,
        help="the whole source (required: incremental sync is the daemon's job)",
    )
    s.add_argument(
        "--init-target",
        action="store_true",
        help="write the replica's .sentinel-target marker first (a new or "
        "re-created replica; without it a missing marker stops replication)",
    )
    s.add_argument(
        "--init-source",
        action="store_true",
        help="write the source's .sentinel-source marker first (the source really "
        "is the document store, e.g. after restoring it onto a new disk)",
    )
    s.add_argument("name", nargs="?", help="replication name (default: all)")
    s.add_argument("--by", help="who asks (default: your login name)")
    s.set_defaults(func=_cmd(_sync))

    v = bsub.add_parser("verify", help="compare source and replica by checksum")
    v.add_argument("name", nargs="?")
    v.set_defaults(func=_cmd(_verify))

    r = bsub.add_parser("restore", help="restore from the replica into a directory")
    r.add_argument("path", nargs="?", default="", help="path inside the source (default: all)")
    r.add_argument("--to", required=True, type=Path, help="directory to restore into")
    r.add_argument("--as-of", help="point in time: ISO 8601 (2026-11-20T14:30) or epoch")
    r.add_argument("--name", help="replication name (needed when there are several)")
    r.add_argument(
        "--into-existing",
        action="store_true",
        help="allow a non-empty --to directory: restored files are written and "
        "replace files of the same name; nothing else is touched",
    )
    r.set_defaults(func=_cmd(_restore))

    d = bsub.add_parser(
        "drill",
        help="restore into a temp dir and compare with the source "
        "(from the keeper's newest snapshot when "
        "[replication.keeper] history is set)",
    )
    d.add_argument("name", nargs="?")
    d.add_argument(
        "--database",
        action="store_true",
        help="archive-log replications: restore the newest base backup and the shipped "
        "logs, open the database and run drill.check_query; measures the RTO",
    )
    d.add_argument(
        "--target-time",
        help="with --database: recover up to this time, ISO 8601 or epoch "
        "(default: as far as the shipped logs go)",
    )
    d.set_defaults(func=_cmd(_drill))

    for action, text in (
        ("resume", "ship the changes held by the ransomware guard"),
        ("discard", "drop the changes held by the ransomware guard"),
    ):
        a = bsub.add_parser(action, help=text)
        a.add_argument("name", nargs="?")
        a.add_argument("--by", help="who decides (default: your login name)")
        a.set_defaults(func=_cmd(_resume if action == "resume" else _discard))

    la = bsub.add_parser(
        "log-ack",
        help="archive-log: the current log sequence gaps no longer matter "
        "(a base backup was taken after them; docs/database.md)",
    )
    la.add_argument("name", nargs="?")
    la.add_argument("--by", help="who decides (default: your login name)")
    la.set_defaults(func=_cmd(_log_ack))

    st = bsub.add_parser("status", help="replication state as JSON")
    st.set_defaults(func=_status)


def _cmd(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        config = load_or_exit(args)
        args.loaded_config = config
        try:
            specs = _select(config, getattr(args, "name", None))
        except ValueError as exc:
            print(f"sentinel: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return int(asyncio.run(_with_store(config, specs, args, fn)))

    return run


def _select(config: Config, name: str | None) -> list[ReplicationSpec]:
    runtime = runtime_dir(config)
    chosen = [rc for rc in config.replication if name in (None, rc.name)]
    if not chosen:
        known = ", ".join(rc.name for rc in config.replication) or "none configured"
        raise ValueError(f"no replication named {name!r} ({known})")
    try:
        ensure_control_dir(runtime)
    except OSError as exc:
        raise ValueError(str(exc)) from None
    lock_dir = config.daemon.state_dir  # the daemon's rsyncs lock here too
    return [spec_from_config(rc, runtime, lock_dir=lock_dir) for rc in chosen]


async def _with_store(
    config: Config, specs: list[ReplicationSpec], args: argparse.Namespace, fn: Any
) -> int:
    store = await Store.open(config.daemon.state_dir)
    try:
        await migrations.migrate(store)
        return int(await fn(store, specs, args))
    except (TargetError, RestoreError) as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await store.close()


async def _sync(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    extra = {"init_source": args.init_source, "init_target": args.init_target}
    return await _commands(store, specs, args, BackupCommand.SYNC, extra)


async def _verify(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    bad = 0
    for spec in specs:
        rep = Replicator(spec, store.db, store.write)
        await rep.load()
        record = await rep.verify()
        if record["ok"]:
            print(f"{spec.name}: OK, replica matches the source")
            continue
        bad += 1
        if record["error"]:
            print(f"{spec.name}: could not compare: {record['error']}")
        print(f"{spec.name}: MISMATCH, {record['differences']} differences")
        for path in record["sample"]:
            print(f"  {path}")
    return EXIT_FAILURE if bad else EXIT_OK


def parse_time(text: str) -> float:
    """ISO 8601 (local time when no zone is given) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(
            f"--as-of: expected 2026-11-20T14:30 or epoch seconds, found {text!r}"
        ) from None


async def _restore(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    if len(specs) > 1:
        print("sentinel: several replications are configured: pass --name", file=sys.stderr)
        return EXIT_USAGE
    try:
        as_of = parse_time(args.as_of) if args.as_of else None
    except ValueError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_USAGE
    spec = specs[0]
    result = await restore(
        spec.target,
        spec.runtime_dir,
        args.to,
        path=args.path,
        as_of=as_of,
        into_existing=args.into_existing,
    )
    when = f" as of {datetime.fromtimestamp(as_of).isoformat()}" if as_of is not None else ""
    print(
        f"{spec.name}: restored {result.files} files{when} into {args.to}"
        + (f" (using {len(result.versions_used)} version sets)" if as_of is not None else "")
    )
    if result.rebuilt:
        print(f"  {result.rebuilt} of them rebuilt from a later, appended content")
    if result.excluded_newer:
        print(f"  {result.excluded_newer} files left out: only content written after then is kept")
    # a file that existed then and is not back: said, never silent
    for line in result.problems:
        print(f"sentinel: warning: {line}", file=sys.stderr)
    for line in result.unrebuilt:
        print(f"sentinel: warning: left out {line}", file=sys.stderr)
    return EXIT_OK


async def _drill(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    if args.database or args.target_time:
        return await _drill_database(store, specs, args)
    bad = 0
    config: Config = args.loaded_config
    by_name = {rc.name: rc for rc in config.replication}
    for spec in specs:
        rc = by_name[spec.name]
        if rc.keeper is not None and rc.keeper.history is not None:
            bad += not await _drill_keeper(store, spec, rc)
            continue
        started, began = time.time(), time.monotonic()
        result = await drill(spec)
        took = time.monotonic() - began
        # the runbook prints this drill's RTO, status warns when the last good one is old
        bad += not await _record_drill(
            store,
            FileDrill(
                spec.name,
                "files",
                started,
                result.ok,
                took,
                result.files,
                result.error or _differences_text(len(result.differences)),
            ),
        )
        if result.ok:
            print(
                f"{spec.name}: DRILL OK: {result.files} files restored and identical to "
                f"the source ({took:.1f}s)"
            )
            continue
        bad += 1
        print(
            f"{spec.name}: DRILL FAILED: {result.error or ''} {len(result.differences)} differences"
        )
        for path in result.differences[:50]:
            print(f"  {path}")
    return EXIT_FAILURE if bad else EXIT_OK


async def _drill_keeper(store: Store, spec: ReplicationSpec, rc: ReplicationConfig) -> bool:
    """The drill from the keeper's newest snapshot (backup/keeper_drill.py); True when it
    passed. Every difference is listed: a drill that fails must say what to look at."""
    assert rc.keeper is not None and rc.keeper.history is not None
    history = history_target(rc.keeper, spec.target)
    started, began = time.time(), time.monotonic()
    result = await keeper_drill(
        spec, history, receipt_target(rc.keeper.receipt, spec.target), rc.keeper_room
    )
    took = time.monotonic() - began
    recorded = await _record_drill(
        store,
        FileDrill(
            spec.name,
            "keeper",
            started,
            result.ok,
            took,
            result.files,
            result.error or _differences_text(len(result.failed)),
            result.snapshot,
        ),
    )
    if result.snapshot is not None:
        print(
            f"{spec.name}: keeper snapshot {result.snapshot} from {result.history}; "
            f"data safe as of {_when(result.safe_as_of)}"
        )
    if result.ok:
        same = (
            f"identical to the source except {len(result.newer)} changed at the source since"
            if result.newer
            else "identical to the source"
        )
        print(
            f"{spec.name}: DRILL OK: {result.files} files restored from the keeper's "
            f"snapshot, {same} ({took:.1f}s)"
        )
    else:
        print(
            f"{spec.name}: DRILL FAILED: "
            + (
                result.error
                if result.error
                else f"{len(result.failed)} difference{'' if len(result.failed) == 1 else 's'} "
                "between the source and the snapshot"
            )
        )
        for diff in result.failed:
            print(f"  {diff}")
    if result.newer:
        print(
            f"{spec.name}: newer than the snapshot (changed at the source after "
            f"{_when(result.safe_as_of)}; not a failure):"
        )
        for diff in result.newer:
            print(f"  {diff} (changed {_when(diff.changed)})")
    return result.ok and recorded


async def _record_drill(store: Store, record: FileDrill) -> bool:
    """Notes the drill for status and the runbook; a drill that cannot be noted says so
    (status would keep warning that the last drill is too old)."""
    try:
        await save_drill(store.write, record)
    except (OSError, sqlite3.Error) as exc:
        print(
            f"sentinel: {record.source}: the drill was not recorded ({exc}); status and the "
            "runbook will not show it",
            file=sys.stderr,
        )
        return False
    return True


def _differences_text(count: int) -> str:
    return f"{count} difference{'' if count == 1 else 's'} from the source" if count else ""


async def _drill_database(
    store: Store, specs: list[ReplicationSpec], args: argparse.Namespace
) -> int:
    """`backup drill --database` (backup/database_drill.py): each archive-log replication
    with [replication.database.drill], recorded for status and the daemon's page."""
    config: Config = args.loaded_config
    by_name = {rc.name: rc for rc in config.replication}
    chosen = [
        (spec, by_name[spec.name])
        for spec in specs
        if (db := by_name[spec.name].database) is not None and db.drill is not None
    ]
    if not chosen:
        print(
            "sentinel: --database drills an archive-log replication with "
            "[replication.database.drill]; "
            + (f"{args.name!r} has none" if args.name else "none is configured"),
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        target_time = parse_time(args.target_time) if args.target_time else None
    except ValueError as exc:
        print(f"sentinel: {str(exc).replace('--as-of', '--target-time')}", file=sys.stderr)
        return EXIT_USAGE
    bad = 0
    for spec, rc in chosen:
        record = await database_drill(_drill_plan(spec, rc, target_time))
        await save_record(store.write, record)
        print(_drill_line(record))
        bad += not record.ok
    return EXIT_FAILURE if bad else EXIT_OK


def _drill_plan(
    spec: ReplicationSpec, rc: ReplicationConfig, target_time: float | None
) -> DrillPlan:
    assert rc.database is not None and rc.database.drill is not None
    db, drill_cfg = rc.database, rc.database.drill
    replica = spec.target.local_root
    protected = tuple(p for p in (Path(rc.source), replica, db.base_backup_dir) if p is not None)
    return DrillPlan(
        name=spec.name,
        target=spec.target,
        runtime_dir=spec.runtime_dir,
        preset=db.preset,
        pattern=db.pattern,
        base_backup_dir=db.base_backup_dir,
        pg_bin=Path(drill_cfg.pg_bin),
        check_query=drill_cfg.check_query,
        timeout=drill_cfg.timeout,
        max_age=drill_cfg.max_age,
        protected=protected,
        scratch_dir=drill_cfg.scratch_dir,
        target_time=target_time,
        database=drill_cfg.database,
        user=drill_cfg.user,
        restore_command=drill_cfg.restore_command,
        recover_command=drill_cfg.recover_command,
        check_command=drill_cfg.check_command,
    )


def _drill_line(record: DrillRecord) -> str:
    parts = ", ".join(f"{k} {duration_text(v)}" for k, v in record.parts.items())
    if not record.ok:
        return f"{record.source}: DATABASE DRILL FAILED: {record.error} (steps: {parts or 'none'})"
    upto = "the end of the shipped logs" if record.target_time is None else iso(record.target_time)
    newest = "none replayed" if record.newest_xact is None else iso(record.newest_xact)
    base = f"base backup {record.base_backup}, " if record.base_backup else ""
    return (
        f"{record.source}: DATABASE DRILL OK: {base}recovered up to {upto}; newest "
        f"transaction {newest}; check: {record.check_result}; "
        f"RTO {duration_text(record.rto or 0.0)} ({parts})"
    )


def _when(ts: float | None) -> str:
    if ts is None:
        return "unknown (the keeper has confirmed no heartbeat yet)"
    return datetime.fromtimestamp(ts).astimezone().isoformat(sep=" ", timespec="seconds")


async def _resume(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    return await _commands(store, specs, args, BackupCommand.RESUME, {})


async def _discard(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    return await _commands(store, specs, args, BackupCommand.DISCARD, {})


async def _log_ack(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    logs = [s for s in specs if s.log_naming is not None]
    if not logs:
        print("sentinel: no archive-log replication selected", file=sys.stderr)
        return EXIT_FAILURE
    return await _commands(store, logs, args, BackupCommand.LOG_ACK, {})


async def _commands(
    store: Store,
    specs: list[ReplicationSpec],
    args: argparse.Namespace,
    command: BackupCommand,
    extra: dict[str, Any],
) -> int:
    state_dir = store.path.parent
    try:
        conn = connect(state_dir)
    except NotInitialised as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except StateDbError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return exc.exit_code
    actor = Actor.current(getattr(args, "by", None))
    failed = 0
    try:
        for spec in specs:
            row = command_rows.add(
                conn, BACKUP, command, {"name": spec.name, **extra, **actor.as_args()}
            )
            try:
                with _progress_bar(spec.name, command is BackupCommand.SYNC) as on_progress:
                    outcome = await _outcome(conn, store, spec, command, row, on_progress)
            except (KeyboardInterrupt, asyncio.CancelledError):
                _interrupted(conn, spec, command, row)
                raise
            print(
                f"sentinel: {outcome.message}" if outcome.error else outcome.message,
                file=sys.stderr if outcome.error else sys.stdout,
            )
            failed += not outcome.ok
    except sqlite3.Error as exc:
        error = explain(store.path, exc)
        print(f"sentinel: {error}", file=sys.stderr)
        return error.exit_code
    finally:
        conn.close()
    return EXIT_FAILURE if failed else EXIT_OK


async def _outcome(
    conn: sqlite3.Connection,
    store: Store,
    spec: ReplicationSpec,
    command: BackupCommand,
    row: int,
    on_progress: Callable[[float], None],
) -> CommandResult:
    """The daemon's result for `row`; this process runs the command only when no daemon
    runs (two processes must never write one replication's state). The waits block the
    loop: this process has nothing else to run meanwhile."""
    if daemon_running(conn):
        taken = _taken_by_daemon(conn, spec, command, row)
        if taken is None or taken:
            return _daemon_result(conn, spec, row, on_progress)
        if command_rows.withdraw(conn, BACKUP, row, _cancelled(WITHDRAWN)):
            return CommandResult(
                False,
                f"{spec.name}: the running daemon did not take the {command} command within "
                f"{TAKE_WAIT:.0f}s: withdrawn. Is {spec.name} in the running daemon's "
                "config (sentinel status)? Run it again once it is.",
                error=True,
            )
        return _daemon_result(conn, spec, row, on_progress)  # it took it just now
    if not command_rows.claim(conn, BACKUP, row):  # a daemon started and took it just now
        return _daemon_result(conn, spec, row, on_progress)
    rep = Replicator(spec, store.db, store.write)
    await rep.load()
    with _show_lock_waits():
        outcome = await apply(
            command, _row_args(conn, row), _only(rep), store.write, on_progress=on_progress
        )
    command_rows.finish(conn, BACKUP, row, outcome.to_json())
    return outcome


def _taken_by_daemon(
    conn: sqlite3.Connection, spec: ReplicationSpec, command: BackupCommand, row: int
) -> bool | None:
    """Waits up to TAKE_WAIT for the running daemon to claim the row: True when it did,
    False when it did not, None when the daemon stopped meanwhile without taking it (its
    next start takes it, or a later CLI run)."""

    def claimed(state: RowState) -> bool:
        return state.claimed

    state = command_rows.wait_for(
        conn, BACKUP, row, until=claimed, timeout=CLAIM_WAIT, sleep=_sleep
    )
    if state.claimed:
        return True
    print(
        f"sentinel: {spec.name}: the daemon has not taken the {command} command yet "
        f"(reloading, or restarting its command runner?); waiting up to {TAKE_WAIT:.0f}s",
        file=sys.stderr,
    )
    state = command_rows.wait_for(
        conn,
        BACKUP,
        row,
        until=claimed,
        still_worth_it=lambda: daemon_running(conn),
        timeout=TAKE_WAIT - CLAIM_WAIT,
        sleep=_sleep,
    )
    if state.claimed:
        return True
    return False if daemon_running(conn) else None


def _interrupted(
    conn: sqlite3.Connection, spec: ReplicationSpec, command: BackupCommand, row: int
) -> None:
    """Ctrl-C: a row nobody took yet is withdrawn, not left to run at some later start."""
    if command_rows.withdraw(conn, BACKUP, row, _cancelled(INTERRUPTED)):
        said = f"the {command} command was withdrawn before the daemon took it"
    else:
        (by,) = conn.execute(
            f"SELECT claimed_by FROM {BACKUP.name} WHERE id = ?", (row,)
        ).fetchone() or (None,)
        said = (
            f"this process stopped running the {command} command (the daemon marks it "
            "interrupted at its next start)"
            if by == os.getpid()
            else f"the daemon has the {command} command and finishes it (sentinel backup status)"
        )
    print(f"sentinel: {spec.name}: interrupted: {said}", file=sys.stderr)


def _cancelled(why: str) -> str:
    return CommandResult(False, why, error=True).to_json()


def _sleep(seconds: float) -> None:
    """The waits' sleep: the first Ctrl-C only cancels asyncio.run's task, which a
    blocking wait would not see until the command ended."""
    time.sleep(seconds)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _daemon_result(
    conn: sqlite3.Connection, spec: ReplicationSpec, row: int, on_progress: Callable[[float], None]
) -> CommandResult:
    def done(state: RowState) -> bool:
        return state.result is not None

    state = command_rows.wait_for(
        conn,
        BACKUP,
        row,
        until=done,
        still_worth_it=lambda: daemon_running(conn),
        on_progress=on_progress,
        sleep=_sleep,
    )
    if state.result is None:
        return CommandResult(
            False,
            f"{spec.name}: the daemon stopped before the command finished; see "
            "sentinel backup status and run it again",
            error=True,
        )
    return CommandResult.from_json(state.result)


def _row_args(conn: sqlite3.Connection, row: int) -> Any:
    (text,) = conn.execute(f"SELECT args FROM {BACKUP.name} WHERE id = ?", (row,)).fetchone()
    return json.loads(text)


def _only(rep: Replicator) -> Callable[[str], Replicator | None]:
    return lambda name: rep if name == rep.spec.name else None


@contextmanager
def _progress_bar(name: str, shown: bool) -> Iterator[Callable[[float], None]]:
    """A progress bar fed with percentages (from this process's rsync or the daemon's row)."""
    if not shown:
        yield lambda pct: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn(name),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task(name, total=100)
        yield lambda pct: progress.update(task, completed=pct)


@contextmanager
def _show_lock_waits() -> Iterator[None]:
    """A sync run here that waits for another process's rsync on the same replica says so."""
    logger = logging.getLogger("backup.target_lock")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("sentinel: %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _status(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    conn = open_readonly(config.daemon.state_dir)
    if conn is None:
        print("{}")
        return EXIT_OK
    try:
        print(json.dumps(read_status(conn, time.time()), indent=2, ensure_ascii=False))
    finally:
        conn.close()
    return EXIT_OK
