"""`sentinel ack`, `silence`, `unsilence` and `alarms`: talk to the running alarm engine.

Each command writes a row into `alarm_commands` (sentinel/command_rows.py); the daemon
applies it within a second and this process waits for its result and prints it, or, when
the daemon is not running, says the command is applied at its next start.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sentinel import command_rows
from sentinel.alarm.actor import Actor
from sentinel.alarm.commands import (
    NotInitialised,
    StateDbError,
    connect,
    daemon_running,
    explain,
    find_alarm,
)
from sentinel.alarm.requests import (
    Refused,
    ack_args,
    check_subject,
    refusal,
    silence_args,
    silence_duration,
    unsilence_args,
    unsilence_target,
)
from sentinel.alarm.status import read_history, read_status
from sentinel.cli.common import load_or_exit
from sentinel.config import Config, format_duration
from sentinel.store import DB_NAME, open_readonly

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
# how long to wait for a running daemon's result (it applies rows every second)
RESULT_WAIT = 5.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ack, silence, unsilence and alarms."""
    ack = sub.add_parser("ack", help="acknowledge an alarm (stops repeats and escalation)")
    ack.add_argument("alarm", metavar="ALARM", help="the alarm id from the message, e.g. A7F3")
    ack.add_argument("--by", help="who acknowledges (default: your login name)")
    ack.add_argument("--reason", default="", help="why, or what you are doing about it")
    ack.set_defaults(func=cmd_ack)

    silence = sub.add_parser("silence", help="send nothing about a sensor (or all) for a while")
    what = silence.add_mutually_exclusive_group(required=True)
    what.add_argument("sensor", nargs="?", metavar="SENSOR", help="sensor id or rule name")
    what.add_argument("--all", action="store_true", help="silence every alarm")
    silence.add_argument(
        "--for",
        dest="duration",
        required=True,
        help="how long, e.g. 30m or 2h (at most [alarms] max_silence, max_silence_all for --all)",
    )
    silence.add_argument("--reason", required=True, help="why (shown in status)")
    silence.add_argument("--by", help="who silences (default: your login name)")
    silence.set_defaults(func=cmd_silence)

    unsilence = sub.add_parser("unsilence", help="end silences early")
    target = unsilence.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "target",
        nargs="?",
        metavar="SENSOR|SILENCE_ID",
        help="a sensor id, or one silence by its number (3 or S3)",
    )
    target.add_argument("--all", action="store_true", help="end every silence")
    unsilence.add_argument("--by", help="who ends it (default: your login name)")
    unsilence.add_argument("--reason", default="", help="why (announced with it)")
    unsilence.set_defaults(func=cmd_unsilence)

    alarms = sub.add_parser("alarms", help="list active alarms (or recent transitions)")
    alarms.add_argument("--history", action="store_true", help="the last transitions instead")
    alarms.add_argument("--limit", type=int, default=30, help="rows of history (default 30)")
    alarms.add_argument("--json", action="store_true", help="machine-readable output")
    alarms.set_defaults(func=cmd_alarms)


def _with_db(
    config: Config,
    body: Callable[[sqlite3.Connection], int],
    not_initialised: Callable[[NotInitialised], str] = str,
) -> int:
    """Runs `body` on a read-write connection; every database problem is one clear line."""
    path = config.daemon.state_dir / DB_NAME
    try:
        conn = connect(config.daemon.state_dir)
    except NotInitialised as exc:
        print(f"sentinel: {not_initialised(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except StateDbError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        return body(conn)
    except sqlite3.Error as exc:
        error = explain(path, exc)
        print(f"sentinel: {error}", file=sys.stderr)
        return error.exit_code
    finally:
        conn.close()


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of a command row: `note` ends the CLI's line; `refusal` is the daemon's
    result when it applied the row and the command changed nothing (exit 1)."""

    note: str
    refusal: str | None = None


def _send(conn: sqlite3.Connection, command: str, args: dict[str, Any]) -> Sent:
    """Writes the command row and returns what became of it."""
    row = command_rows.add(conn, command_rows.ALARM, command, args)
    if not daemon_running(conn):
        return Sent("the daemon is not running: applied when it starts")
    state = command_rows.wait_for(
        conn,
        command_rows.ALARM,
        row,
        until=lambda s: s.result is not None,
        still_worth_it=lambda: daemon_running(conn),
        timeout=RESULT_WAIT,
    )
    if state.result is None:
        return Sent("the daemon has not applied it yet (it applies it at its next tick)")
    if refusal(state.result):
        return Sent("", refusal=state.result)
    return Sent(f"the daemon applied it: {state.result}")


def _refused(command: str, sent: Sent) -> bool:
    """Prints the daemon's refusal as the line (the command did not apply)."""
    if sent.refusal is None:
        return False
    print(f"sentinel: {command}: the daemon did not apply it: {sent.refusal}", file=sys.stderr)
    return True


def cmd_ack(args: argparse.Namespace) -> int:
    config = load_or_exit(args)

    def ack(conn: sqlite3.Connection) -> int:
        row = find_alarm(conn, args.alarm)
        if row is None:
            print(f"sentinel: no such alarm {args.alarm!r}", file=sys.stderr)
            return EXIT_FAILURE
        where = f"{row['severity']} {row['kind']} at {row['location'] or row['sensor_id']}"
        if row["state"] in ("resolved", "cancelled"):
            print(f"{row['id']} ({where}) is already {row['state']}; nothing to acknowledge")
            return EXIT_OK
        if row["state"] == "acknowledged":
            print(f"{row['id']} ({where}) was already acknowledged by {row['acked_by']}")
            return EXIT_OK
        actor = Actor.current(args.by)
        sent = _send(conn, "ack", ack_args(row["id"], args.reason, actor))
        if _refused("ack", sent):
            return EXIT_FAILURE
        print(
            f"{row['id']} ({where}, {row['state']} since {_when(row['fired'] or row['opened'])})"
            f" acknowledged by {actor.describe()}; {sent.note}"
        )
        return EXIT_OK

    return _with_db(config, ack, lambda exc: f"no such alarm {args.alarm!r} ({exc})")


def cmd_silence(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    try:
        duration = silence_duration(config, args.duration, everything=args.all)
    except Refused as exc:
        print(f"sentinel: --for {args.duration}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sensor = None if args.all else args.sensor
    try:
        check_subject(config, sensor)
    except Refused as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return exc.exit_code

    def silence(conn: sqlite3.Connection) -> int:
        actor = Actor.current(args.by)
        sent = _send(conn, "silence", silence_args(config, sensor, duration, args.reason, actor))
        if _refused("silence", sent):
            return EXIT_FAILURE
        what = "every alarm" if sensor is None else sensor
        print(
            f"silence of {what} for {format_duration(duration)} (until "
            f"{_when(time.time() + duration)}) by {actor.describe()} recorded "
            f"(reason: {args.reason}); {sent.note}"
        )
        return EXIT_OK

    return _with_db(config, silence)


def cmd_unsilence(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    target = unsilence_target(config, None if args.all else args.target)

    def unsilence(conn: sqlite3.Connection) -> int:
        actor = Actor.current(args.by)
        sent = _send(conn, "unsilence", unsilence_args(target, args.reason, actor))
        if _refused("unsilence", sent):
            return EXIT_FAILURE
        what = (
            "every silence"
            if target is None
            else (f"silence #{target}" if isinstance(target, int) else f"silences of {target}")
        )
        print(f"end of {what} by {actor.describe()} recorded; {sent.note}")
        return EXIT_OK

    return _with_db(config, unsilence)


def _history_line(r: dict[str, Any]) -> str:
    if r["type"] == "action":
        actor = Actor(r["by"], r["uid"], r["user"], r["sudo_uid"], r["sudo_user"], r["address"])
        until = f" until {_when(r['until'])}" if r["until"] is not None else ""
        return (
            f"{_when(r['ts'])}  {r['command']} {r['target']}{until} by "
            f"{actor.describe()}: {r['reason'] or '-'} ({r['result']})"
        )
    sent = ""
    if r["event"]:
        sent = f" [{r['event']}{'' if r['notified'] else ', not sent'}]"
    return (
        f"{_when(r['ts'])}  {r['alarm_id']}  {r['sensor_id']}  "
        f"{r['from_state']} -> {r['to_state']} ({r['severity']}): {r['reason']}{sent}"
    )


def cmd_alarms(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    conn = open_readonly(config.daemon.state_dir)
    if conn is None:
        print("no alarms (the daemon has not run here yet)")
        return EXIT_OK
    try:
        return _alarms(conn, args)
    except sqlite3.Error as exc:
        path = config.daemon.state_dir / DB_NAME
        why = str(exc)
        if str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_READONLY"):
            # WAL: a reader must open the -shm file, which only a writer may create
            why = "reading it while the daemon is stopped needs write access to its directory"
        print(
            f"sentinel: cannot read the state database {path}: {why}; run the command "
            "with sudo or as a member of group sentinel",
            file=sys.stderr,
        )
        return EXIT_USAGE
    finally:
        conn.close()


def _alarms(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    if args.history:
        rows = read_history(conn, args.limit)
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return EXIT_OK
        for r in reversed(rows):
            print(_history_line(r))
        return EXIT_OK
    status = read_status(conn, time.time())
    if args.json:
        print(json.dumps(status["alarms"], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not status["alarms"]:
        print("no active alarms")
    for a in status["alarms"]:
        acked = f", acknowledged by {a['acked_by']}" if a["acked_by"] else ""
        print(
            f"{a['id']}  {a['severity']:<8} {a['state']:<12} {a['sensor']} "
            f"({a['location']}) since {_when(a['since'])}: {a['reason']}{acked}"
        )
    for s in status["silences"]:
        print(
            f"silence #{s['id']} of {s['sensor']} until {_when(s['until'])} by {s['by']}: "
            f"{s['reason']}"
        )
    return EXIT_OK
