"""`sentinel ack`, `silence`, `unsilence` and `alarms`: talk to the running alarm engine.

Each command writes a row into `alarm_commands`; the daemon applies it within a second, or
at its next start when it is not running.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from datetime import datetime
from typing import Any

from sentinel.alarm.commands import (
    NotInitialised,
    add_command,
    connect,
    daemon_running,
    find_alarm,
)
from sentinel.alarm.status import read_status
from sentinel.cli.common import load_or_exit
from sentinel.config import Config, format_duration, parse_duration
from sentinel.replication import sensor_id
from sentinel.store import open_readonly

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ack, silence, unsilence and alarms."""
    ack = sub.add_parser("ack", help="acknowledge an alarm (stops repeats and escalation)")
    ack.add_argument("alarm", metavar="ALARM", help="the alarm id from the message, e.g. A7F3")
    ack.add_argument("--by", help="who acknowledges (default: your login name)")
    ack.set_defaults(func=cmd_ack)

    silence = sub.add_parser("silence", help="send nothing about a sensor (or all) for a while")
    what = silence.add_mutually_exclusive_group(required=True)
    what.add_argument("sensor", nargs="?", metavar="SENSOR", help="sensor id or rule name")
    what.add_argument("--all", action="store_true", help="silence every alarm")
    silence.add_argument("--for", dest="duration", required=True,
                         help="how long, e.g. 30m or 2h")
    silence.add_argument("--reason", required=True, help="why (shown in status)")
    silence.add_argument("--by", help="who silences (default: your login name)")
    silence.set_defaults(func=cmd_silence)

    unsilence = sub.add_parser("unsilence", help="end silences early")
    target = unsilence.add_mutually_exclusive_group(required=True)
    target.add_argument("target", nargs="?", metavar="SENSOR|SILENCE_ID",
                        help="a sensor id, or the number of one silence")
    target.add_argument("--all", action="store_true", help="end every silence")
    unsilence.add_argument("--by", help="who ends it (default: your login name)")
    unsilence.set_defaults(func=cmd_unsilence)

    alarms = sub.add_parser("alarms", help="list active alarms (or recent transitions)")
    alarms.add_argument("--history", action="store_true", help="the last transitions instead")
    alarms.add_argument("--limit", type=int, default=30, help="rows of history (default 30)")
    alarms.add_argument("--json", action="store_true", help="machine-readable output")
    alarms.set_defaults(func=cmd_alarms)


def _who(given: str | None) -> str:
    if given:
        return given
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _applied_note(running: bool) -> str:
    if running:
        return "the daemon applies it within a second"
    return "the daemon is not running: applied when it starts"


def cmd_ack(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    try:
        conn = connect(config.daemon.state_dir)
    except NotInitialised as exc:
        print(f"sentinel: no such alarm {args.alarm!r} ({exc})", file=sys.stderr)
        return EXIT_FAILURE
    try:
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
        by = _who(args.by)
        add_command(conn, "ack", {"alarm": row["id"], "by": by})
        print(f"{row['id']} ({where}, {row['state']} since {_when(row['fired'] or row['opened'])})"
              f" acknowledged by {by}; {_applied_note(daemon_running(conn))}")
        return EXIT_OK
    finally:
        conn.close()


def _known_subjects(config: Config) -> set[str]:
    known = {s.id for s in config.sensors}
    known |= {sensor_id(r.name) for r in config.replication}
    known |= {r.name for r in config.rules if r.all is not None and r.name}
    return known


def cmd_silence(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    try:
        duration = parse_duration(args.duration)
    except ValueError as exc:
        print(f"sentinel: --for: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if duration <= 0:
        print("sentinel: --for: a silence needs a duration above zero", file=sys.stderr)
        return EXIT_USAGE
    sensor = None if args.all else args.sensor
    if sensor is not None and sensor not in _known_subjects(config):
        print(f"sentinel: no such sensor {sensor!r} in the config", file=sys.stderr)
        return EXIT_FAILURE
    try:
        conn = connect(config.daemon.state_dir)
    except NotInitialised as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        by = _who(args.by)
        add_command(conn, "silence", {"sensor": sensor, "duration": duration,
                                      "reason": args.reason, "by": by})
        what = "every alarm" if sensor is None else sensor
        print(f"silence of {what} for {format_duration(duration)} recorded "
              f"(reason: {args.reason}); {_applied_note(daemon_running(conn))}")
        return EXIT_OK
    finally:
        conn.close()


def cmd_unsilence(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    try:
        conn = connect(config.daemon.state_dir)
    except NotInitialised as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        target: Any = None if args.all else args.target
        if isinstance(target, str) and target.lstrip("#").isdigit():
            target = int(target.lstrip("#"))
        add_command(conn, "unsilence", {"target": target, "by": _who(args.by)})
        what = "every silence" if target is None else (
            f"silence #{target}" if isinstance(target, int) else f"silences of {target}")
        print(f"end of {what} recorded; {_applied_note(daemon_running(conn))}")
        return EXIT_OK
    finally:
        conn.close()


def cmd_alarms(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    conn = open_readonly(config.daemon.state_dir)
    if conn is None:
        print("no alarms (the daemon has not run here yet)")
        return EXIT_OK
    try:
        if args.history:
            try:
                rows = [dict(r) for r in conn.execute(
                    "SELECT t.ts, t.alarm_id, a.sensor_id, a.kind, t.from_state, t.to_state, "
                    "t.severity, t.reason, t.event, t.notified FROM alarm_transitions t "
                    "LEFT JOIN alarm_alarms a ON a.id = t.alarm_id ORDER BY t.seq DESC LIMIT ?",
                    (args.limit,),
                )]
            except Exception:  # no tables yet
                rows = []
            if args.json:
                print(json.dumps(rows, ensure_ascii=False, indent=2))
                return EXIT_OK
            for r in reversed(rows):
                sent = ""
                if r["event"]:
                    sent = f" [{r['event']}{'' if r['notified'] else ', not sent'}]"
                print(f"{_when(r['ts'])}  {r['alarm_id']}  {r['sensor_id']}  "
                      f"{r['from_state']} -> {r['to_state']} ({r['severity']}): "
                      f"{r['reason']}{sent}")
            return EXIT_OK
        status = read_status(conn, time.time())
        if args.json:
            print(json.dumps(status["alarms"], ensure_ascii=False, indent=2))
            return EXIT_OK
        if not status["alarms"]:
            print("no active alarms")
        for a in status["alarms"]:
            acked = f", acknowledged by {a['acked_by']}" if a["acked_by"] else ""
            print(f"{a['id']}  {a['severity']:<8} {a['state']:<12} {a['sensor']} "
                  f"({a['location']}) since {_when(a['since'])}: {a['reason']}{acked}")
        for s in status["silences"]:
            print(f"silence #{s['id']} of {s['sensor']} until {_when(s['until'])}: {s['reason']}")
        return EXIT_OK
    finally:
        conn.close()
