"""`sentinel backup ...`: full sync by hand, verify, restore, drill, guard decisions, status.

These run in their own process next to the daemon: rsync work runs here, and state
(journal, guard, verify results) is shared through the state database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from backup import control
from backup.control_socket import ensure_control_dir
from backup.keeper_drill import keeper_drill
from backup.replicator import Replicator
from backup.restore import RestoreError, drill, restore
from backup.spec import ReplicationSpec
from backup.status import read_status
from backup.target import TargetError
from backup.watcher import SourceGone
from sentinel import migrations
from sentinel.cli.common import load_or_exit
from sentinel.config import Config
from sentinel.config.replication import ReplicationConfig
from sentinel.replication import runtime_dir, spec_from_config
from sentinel.room_heartbeat import history_target, receipt_target
from sentinel.store import Store, open_readonly

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `backup` and its subcommands."""
    p = sub.add_parser("backup", help="replication: sync, verify, restore, drill, guard")
    bsub = p.add_subparsers(dest="backup_command", metavar="ACTION")

    s = bsub.add_parser("sync", help="run a full reconcile now (with a progress bar)")
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
    d.set_defaults(func=_cmd(_drill))

    for action, text in (
        ("resume", "ship the changes held by the ransomware guard"),
        ("discard", "drop the changes held by the ransomware guard"),
    ):
        a = bsub.add_parser(action, help=text)
        a.add_argument("name", nargs="?")
        a.set_defaults(func=_cmd(_resume if action == "resume" else _discard))

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
    return [spec_from_config(rc, runtime) for rc in chosen]


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
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    failed = 0
    pct = re.compile(r"(\d+)%")
    for spec in specs:
        rep = Replicator(spec, store.db, store.write)
        await rep.load()
        columns = (
            TextColumn(spec.name),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
        )
        with Progress(*columns) as progress:
            task = progress.add_task(spec.name, total=100)

            def on_output(chunk: str, task: Any = task, progress: Any = progress) -> None:
                found = pct.findall(chunk)
                if found:
                    progress.update(task, completed=int(found[-1]))

            try:
                result = await rep.reconcile(
                    "by hand",
                    on_output=on_output,
                    init_source=args.init_source,
                    init_target=args.init_target,
                )
            except SourceGone as exc:
                result, skipped = None, f"source missing or not mounted: {exc}"
            else:
                skipped = rep.last_skip
            if result is not None and result.ok:
                progress.update(task, completed=100)
        if result is None:
            print(f"{spec.name}: skipped: {skipped}")
            failed += 1
        elif not result.ok:
            print(f"{spec.name}: FAILED: rsync exit {result.exit_code}: {result.error}")
            failed += 1
        else:
            print(f"{spec.name}: full reconcile done in {result.seconds:.1f}s")
    return EXIT_FAILURE if failed else EXIT_OK


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
    return EXIT_OK


async def _drill(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    bad = 0
    config: Config = args.loaded_config
    by_name = {rc.name: rc for rc in config.replication}
    for spec in specs:
        rc = by_name[spec.name]
        if rc.keeper is not None and rc.keeper.history is not None:
            bad += not await _drill_keeper(spec, rc)
            continue
        began = time.monotonic()
        result = await drill(spec)
        took = time.monotonic() - began
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


async def _drill_keeper(spec: ReplicationSpec, rc: ReplicationConfig) -> bool:
    """The drill from the keeper's newest snapshot (backup/keeper_drill.py); True when it
    passed. Every difference is listed: a drill that fails must say what to look at."""
    assert rc.keeper is not None and rc.keeper.history is not None
    history = history_target(rc.keeper, spec.target)
    began = time.monotonic()
    result = await keeper_drill(
        spec, history, receipt_target(rc.keeper.receipt, spec.target), rc.keeper_room
    )
    took = time.monotonic() - began
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
    return result.ok


def _when(ts: float | None) -> str:
    if ts is None:
        return "unknown (the keeper has confirmed no heartbeat yet)"
    return datetime.fromtimestamp(ts).astimezone().isoformat(sep=" ", timespec="seconds")


async def _resume(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    for spec in specs:
        await control.resume(store.write, spec.name)
        print(f"{spec.name}: guard cleared; the daemon ships the pending changes")
    return EXIT_OK


async def _discard(store: Store, specs: list[ReplicationSpec], args: argparse.Namespace) -> int:
    for spec in specs:
        dropped = await control.discard(store.write, spec.name)
        print(
            f"{spec.name}: {dropped} pending changes dropped; the replica stays as it was. "
            "The next full reconcile mirrors the source as it is then: restore the source "
            "first if it was damaged."
        )
    return EXIT_OK


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
