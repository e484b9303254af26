"""`sentinel status`: one report built from the state database, read-only, in three forms.

The report works while the daemon runs (WAL lets a reader in), after it died (the heartbeat
says how long ago) and before it ever ran. Each package reads its own tables
(`read_status` in sentinel/alarm, alerts, backup); this module only composes and judges.
"""

from __future__ import annotations

import sqlite3
import time
import tomllib
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from alerts import status as alerts_status
from backup import status as backup_status
from backup.database_drill_record import drill_view, drill_view_empty
from sentinel import __version__, livestatus
from sentinel.alarm import status as alarm_status
from sentinel.component_watch import ALARM_PATH
from sentinel.component_watch import SENSOR_PREFIX as COMPONENT_PREFIX
from sentinel.config import Config
from sentinel.config.root import DaemonConfig
from sentinel.heartbeat import DaemonView, read_daemon, view_from_live
from sentinel.replication import SENSOR_PREFIX, database_drills, sensor_id, unreadable_detail
from sentinel.store import open_readonly

SCHEMA_VERSION = 1


class Health(IntEnum):
    """Nagios plugin exit codes; every form of `sentinel status` exits with one of them."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Verdict:
    health: Health
    reasons: list[str]


def build_report(config: Config, *, now: float | None = None) -> dict[str, Any]:
    configured = {
        "sensors": len(config.sensors),
        "replication": len(config.replication),
        "channels": _channel_count(config),
    }
    report = _report(config.daemon.state_dir, config.daemon.heartbeat, now)
    report["site"] = config.site.name
    report["configured"] = configured
    _live_unreadable(config, report)
    _attach_database_drills(config, report)
    _attach_paperwork(config, report)
    if config.keeper is not None:
        from sentinel.keeper.status import rooms_section

        report["rooms"] = rooms_section(config.keeper, report["components"], report["generated"])
    return _judged(report)


def _live_unreadable(config: Config, report: dict[str, Any]) -> None:
    """The replication_unreadable alarm's reason as the quarantine says now. The engine
    stores an alarm's reason when it fires (and when its severity changes), so "… (+3)"
    stayed while more documents were set aside; the reason at firing stays in
    `reason_at_firing`. Only while the table holds unreadable paths (a path released for
    another try and not shipped yet keeps the alarm, but is no longer in the table)."""
    rows = {r.get("name"): r for r in report.get("replication", [])}
    sources = {sensor_id(rc.name): (rc.name, str(rc.source)) for rc in config.replication}
    for alarm in report.get("alarms", []):
        sid = alarm.get("sensor") or alarm.get("sensor_id")
        if alarm.get("kind") != "replication_unreadable" or sid not in sources:
            continue
        name, source = sources[sid]
        quarantine = (rows.get(name) or {}).get("quarantine") or {}
        detail = unreadable_detail(
            source, quarantine.get("unreadable"), quarantine.get("unreadable_first")
        )
        if detail is not None and detail != alarm.get("reason"):
            alarm["reason_at_firing"] = alarm.get("reason")
            alarm["reason"] = detail


def _attach_database_drills(config: Config, report: dict[str, Any]) -> None:
    """Each archive-log replication with a drill configured gets its "database_drill" view
    (backup/database_drill_record.py): the config says which must drill and how often."""
    drilled = database_drills(config)
    if not drilled:
        return
    rows = {r.get("name"): r for r in report["replication"]}
    conn = open_readonly(config.daemon.state_dir)
    try:
        for name, max_age in drilled:
            row = rows.get(name)
            if row is None:
                row = rows[name] = {"name": name}
                report["replication"].append(row)
            if conn is None:
                row["database_drill"] = drill_view_empty(report["generated"], max_age)
            else:
                row["database_drill"] = drill_view(conn, name, report["generated"], max_age)
    except sqlite3.Error:
        pass  # the report already says the state database cannot be read
    finally:
        if conn is not None:
            conn.close()


def _attach_paperwork(config: Config, report: dict[str, Any]) -> None:
    """Whether the printed security pack and runbook still match the config, and each
    replication's last file drill (sentinel/report/staleness.py)."""
    from sentinel.report.fingerprint import config_hash
    from sentinel.report.staleness import drill_view, reports_view

    now = report["generated"]
    rows = {r.get("name"): r for r in report["replication"]}
    try:
        conn = open_readonly(config.daemon.state_dir)
    except sqlite3.Error:
        return  # the report already says the state database cannot be read
    try:
        report["reports"] = reports_view(conn, config_hash(config), now)
        for rc in config.replication:
            row = rows.get(rc.name)
            if row is None:
                continue  # nothing replicated yet: nothing to drill either
            own_drill = rc.database is not None and rc.database.drill is not None
            max_age = None if own_drill else config.reports.drill_max_age
            row["drill"] = drill_view(conn, rc.name, now, max_age)
    except sqlite3.Error:
        pass
    finally:
        if conn is not None:
            conn.close()


def build_report_without_config(
    config_path: Path, error: str, *, state_dir: Path | None = None, now: float | None = None
) -> dict[str, Any]:
    """Status when the config on disk cannot be read: the alarms and the daemon are still
    what matters. The state directory is `state_dir` (--state-dir), else the one the running
    daemon recorded for this config file, else the one the file names if it still parses as
    TOML, else the default."""
    if state_dir is None:
        live = livestatus.find(config=config_path)
        if live is not None and live.get("state_dir"):
            state_dir = Path(str(live["state_dir"]))
        else:
            state_dir = _named_state_dir(config_path) or DaemonConfig().state_dir
    report = _report(state_dir, None, now)
    report["site"] = (report["daemon"].get("config") or {}).get("site", "?")
    report["config_error"] = f"config {config_path} cannot be read: {error.splitlines()[0]}"
    return _judged(report)


def _named_state_dir(config_path: Path) -> Path | None:
    try:
        with config_path.open("rb") as f:
            value = tomllib.load(f).get("daemon", {}).get("state_dir")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else config_path.parent / path


def _judged(report: dict[str, Any]) -> dict[str, Any]:
    verdict = judge(report)
    report["overall"] = {"state": verdict.health.name, "reasons": verdict.reasons}
    return report


def _report(state_dir: Path, interval: float | None, now: float | None) -> dict[str, Any]:
    """The report's body from the state database, or from the daemon's live status file
    when that is newer (the daemon runs from memory: it cannot write the database)."""
    now = time.time() if now is None else now
    components: dict[str, Any] = {}
    sections = _empty_sections()
    conn = None
    view: DaemonView | None = None
    db_error: str | None = None
    try:
        conn = open_readonly(state_dir)
        view = read_daemon(conn, now, interval)
        if conn is not None:
            sections = _sections(conn, now)
    except sqlite3.Error as exc:
        db_error = f"cannot read the state database in {state_dir}: {exc}"
    finally:
        if conn is not None:
            conn.close()
    live = livestatus.find(state_dir=state_dir)
    live_ts = float(live.get("ts") or 0) if live else 0.0
    if live is not None and (
        view is None or view.heartbeat_ts is None or live_ts > view.heartbeat_ts
    ):
        view = view_from_live(live, now, interval)
        if view.state == "up" and live.get("durable") is False:
            # the database is stale: what the daemon holds in memory is the truth
            sections["alarms"] = list(live.get("alarms") or [])
    if view is None:
        daemon: dict[str, Any] = {"state": "unknown", "error": db_error}
    else:
        daemon = view.as_dict(now)
        daemon["config"] = view.config or {}
        components = view.components or {}
        if db_error:
            daemon["db_error"] = db_error
    _attach_keepers(sections["replication"], components, now)
    _attach_streams(sections["replication"], components)
    return {
        "schema": SCHEMA_VERSION,
        "generated": now,
        "version": __version__,
        "site": "",
        "state_dir": str(state_dir),
        "daemon": daemon,
        "components": components,
        **sections,
        "configured": {},
    }


def _sections(conn: sqlite3.Connection, now: float) -> dict[str, Any]:
    alarms = alarm_status.read_status(conn, now)
    # Replication and component health (and an MQTT source's lost session, "source:mqtt")
    # ride the alarm engine as pseudo-sensors; people see them in the replication and
    # components sections instead of as sensor rows.
    sensors = [
        s
        for s in alarms.get("sensors", [])
        if not str(s.get("id")).startswith(
            (SENSOR_PREFIX, COMPONENT_PREFIX, "room:", "keeper:", "source:")
        )
    ]
    return {
        "sensors": sensors,
        "alarms": alarms.get("alarms", []),
        "silences": alarms.get("silences", []),
        "replication": _replication(backup_status.read_status(conn, now)),
        "alerts": alerts_status.read_status(conn, now),
    }


def _replication(by_name: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per source, in the shape docs/status.md documents."""
    rows = []
    for name, r in by_name.items():
        verify = r.get("last_verify")
        rows.append(
            {
                "name": name,
                "rpo_seconds": r.get("rpo"),
                "pending": r.get("pending"),
                "last_success": r.get("last_success"),
                "consecutive_failures": r.get("consecutive_failures", 0),
                "last_error": r.get("last_error"),
                "last_full_reconcile": r.get("last_full"),
                "guard_tripped": bool(r.get("guard", {}).get("tripped")),
                "guard": r.get("guard"),
                "verify": "-"
                if not verify
                else ("ok" if verify["ok"] else f"MISMATCH ({verify['differences']})"),
                "last_verify": verify,
                "quarantine": r.get("quarantine") or {"count": 0, "paths": []},
                **_log_fields(r.get("log")),
            }
        )
    return rows


def _log_fields(log: dict[str, Any] | None) -> dict[str, Any]:
    """An archive-log replication's data RPO (now - close time of the newest log a restore
    reaches), its head and its gap; nothing for a replication of files."""
    if not log:
        return {}
    return {
        "data_rpo_seconds": log.get("data_rpo_seconds"),
        "log_head": log.get("log_head"),
        "log_head_name": log.get("log_head_name"),
        "log_gap": log.get("log_gap") or [],
    }


KEEPER_PREFIX = "keeper:"


def keeper_view(health: dict[str, Any], now: float) -> dict[str, Any]:
    """What status says about one replication's keeper, from its component's health (the
    daemon's heartbeat row): the newest receipt's "data safe as of", ages, and the problem
    a person must see (None when there is none)."""
    receipt = health.get("receipt") or {}
    written = receipt.get("written")
    shipped = health.get("last_shipped")
    age = None if written is None else max(0.0, now - float(written))
    stale_after = float(health.get("stale_after") or 30.0)
    problems = []
    if health.get("ship_error"):
        problems.append(
            f"heartbeat cannot be shipped since "
            f"{_clock(health.get('ship_failing_since'))}: {health['ship_error']}"
        )
    if not receipt:
        if health.get("receipt_error"):
            problems.append(
                f"keeper unreachable: its receipt cannot be read: {health['receipt_error']}"
            )
        elif shipped is not None:
            problems.append("keeper not answering: no receipt yet")
    elif age is not None and age > stale_after:
        why = (
            f"; reading it fails: {health['receipt_error']}" if health.get("receipt_error") else ""
        )
        problems.append(
            f"keeper not answering: newest receipt is {_age(age)} old "
            f"(written {_clock(written)}){why}"
        )
    return {
        "room": health.get("room"),
        "safe_as_of": receipt.get("safe_as_of"),
        "receipt_written": written,
        "receipt_age": None if age is None else round(age, 1),
        "snapshot": receipt.get("snapshot"),
        "heartbeat_shipped": shipped,
        "heartbeat_age": None if shipped is None else round(max(0.0, now - shipped), 1),
        "heartbeat_error": health.get("ship_error"),
        "receipt_error": health.get("receipt_error"),
        "last_confirm": health.get("last_confirm"),
        "problem": "; ".join(problems) or None,
    }


def _attach_keepers(rows: list[dict[str, Any]], components: dict[str, Any], now: float) -> None:
    """Each replication row with a keeper gets its "keeper" view (a row the backup tables
    do not hold yet is added, so the keeper's state is never hidden)."""
    by_name = {r.get("name"): r for r in rows}
    for cname, health in components.items():
        if not cname.startswith(KEEPER_PREFIX) or not isinstance(health, dict):
            continue
        name = cname[len(KEEPER_PREFIX) :]
        row = by_name.get(name)
        if row is None:
            row = by_name[name] = {"name": name}
            rows.append(row)
        row["keeper"] = keeper_view(health, now)


def _attach_streams(rows: list[dict[str, Any]], components: dict[str, Any]) -> None:
    """A replication with a stream key (backup/stream.py) gets "stream": up, error,
    down_since, from its component's health."""
    for row in rows:
        health = components.get(f"replication:{row.get('name')}")
        if isinstance(health, dict) and health.get("stream") is not None:
            row["stream"] = health["stream"]


def _clock(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "?"
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _empty_sections() -> dict[str, Any]:
    return {"sensors": [], "alarms": [], "silences": [], "replication": [], "alerts": {}}


def _channel_count(config: Config) -> int | None:
    try:
        return config.channel_count()
    except Exception:  # an unreadable Apprise file is reported by the daemon, not here
        return None


def judge(report: dict[str, Any]) -> Verdict:
    """The one rule for OK/WARNING/CRITICAL/UNKNOWN, shared by all three forms."""
    daemon = report["daemon"]
    reasons: list[str] = []
    health = Health.OK

    def worse(level: Health, reason: str) -> None:
        nonlocal health
        health = max(health, level)
        reasons.append(reason)

    config_error = report.get("config_error")
    state = daemon.get("state")
    if state in ("never-started", "unknown"):
        reason = (
            "daemon has never run with this state directory"
            if state == "never-started"
            else daemon.get("error") or "daemon state unknown"
        )
        return Verdict(Health.UNKNOWN, [reason] + ([config_error] if config_error else []))
    if state == "down":
        worse(Health.CRITICAL, f"daemon down (last heartbeat {_age(daemon['heartbeat_age'])} ago)")
    elif state == "stale":
        worse(
            Health.CRITICAL,
            f"daemon not heard from for {_age(daemon['heartbeat_age'])} though pid "
            f"{daemon.get('pid')} exists: it hangs or cannot write the state database "
            "(see its log)",
        )
    elif state == "stopped":
        worse(Health.CRITICAL, f"daemon stopped {_age(daemon['heartbeat_age'])} ago")
    for alarm in report["alarms"]:
        level = Health.CRITICAL if alarm.get("severity") == "critical" else Health.WARNING
        label = alarm.get("location") or alarm.get("sensor_id") or alarm.get("sensor")
        worse(level, f"{alarm.get('severity', 'alarm')}: {label} {alarm.get('reason', '')}".strip())
    state_db = report["components"].get("state-db") or {}
    if state == "up" and state_db.get("durable") is False:
        worse(
            Health.CRITICAL,
            f"state database not writable: {state_db.get('last_error')}; "
            "alarms page from memory, NOT durable",
        )
    recovered = state_db.get("recovered")
    if state == "up" and recovered:
        worse(
            Health.WARNING,
            "state database was corrupt, started fresh; the damaged file "
            f"is {recovered.get('moved_to')}",
        )
    if config_error:
        worse(Health.WARNING, config_error)
    if report["alerts"].get("all_channels_failing_since"):
        worse(Health.CRITICAL, "every alert channel is failing")
    undeliverable = report["alerts"].get("undeliverable")
    if undeliverable:
        worse(
            Health.WARNING,
            f"{undeliverable} undeliverable outbox rows (set aside: no "
            "message could be made of them; a page may be missing)",
        )
    for name, component in report["components"].items():
        count = component.get("restarts_in_window")
        error = component.get("last_error")
        if component.get("failing"):
            # a broken engine or sender cannot raise or deliver its own alarm: say it here
            level = Health.CRITICAL if name in ALARM_PATH else Health.WARNING
            road = " (alarms cannot be paged through it)" if name in ALARM_PATH else ""
            worse(
                level,
                f"component {name} keeps failing{road}: {count} restarts in window, "
                f"last error: {error}",
            )
        elif component.get("task") == "restarting":
            worse(
                Health.WARNING,
                f"component {name} restarting (restart {component.get('restarts', 0)}): {error}",
            )
    for row in report.get("replication") or []:
        keeper = row.get("keeper") or {}
        if keeper.get("problem"):
            worse(
                Health.WARNING,
                f"keeper {keeper.get('room')} ({row.get('name')}): {keeper['problem']}",
            )
        drill = row.get("database_drill") or {}
        if drill.get("problem"):
            worse(Health[drill["level"]], f"{row.get('name')}: {drill['problem']}")
        files_drill = row.get("drill") or {}
        if files_drill.get("problem"):
            worse(Health.WARNING, f"{row.get('name')}: {files_drill['problem']}")
    for kind in ("security", "runbook"):
        paper = (report.get("reports") or {}).get(kind) or {}
        if paper.get("problem"):
            worse(Health.WARNING, paper["problem"])
    if report.get("rooms"):
        from sentinel.keeper.status import room_problems

        for level_name, reason in room_problems(report["rooms"]):
            worse(Health[level_name], reason)
    if not reasons:
        reasons.append("all normal")
    return Verdict(health, reasons)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def nagios_line(report: dict[str, Any]) -> tuple[str, int]:
    """`SENTINEL CRITICAL - text | 'label'=value[UOM];warn;crit;min;max` and its exit code."""
    overall = report["overall"]
    health = Health[overall["state"]]
    text = "; ".join(overall["reasons"])
    perf = [
        f"'alarms'={len(report['alarms'])};;;0",
        f"'sensors_lost'={sum(1 for s in report['sensors'] if s.get('state') == 'lost')};;;0",
    ]
    age = report["daemon"].get("heartbeat_age")
    if age is not None:
        perf.append(f"'heartbeat_age'={age:.1f}s;;;0")
    for source in report["replication"]:
        rpo = source.get("rpo_seconds")
        if rpo is not None:
            perf.append(f"'rpo_{source.get('name')}'={rpo:.1f}s;60;300;0")
        pending = source.get("pending")
        if pending is not None:
            perf.append(f"'pending_{source.get('name')}'={pending};;;0")
        receipt_age = (source.get("keeper") or {}).get("receipt_age")
        if receipt_age is not None:
            perf.append(f"'keeper_receipt_age_{source.get('name')}'={receipt_age:.1f}s;;;0")
    for room in report.get("rooms") or ():
        name = room["room"]
        if room.get("heartbeat_age") is not None:
            perf.append(
                f"'heartbeat_age_{name}'={room['heartbeat_age']:.1f}s;;{room['silent_after']:g};0"
            )
        if room.get("safe_as_of") is not None:
            lag = max(0.0, report["generated"] - room["safe_as_of"])
            perf.append(f"'safe_lag_{name}'={lag:.1f}s;;;0")
        if room.get("snapshot_count") is not None:
            perf.append(f"'snapshots_{name}'={room['snapshot_count']};;;0")
    depth = report["alerts"].get("outbox_pending")
    if depth is not None:
        perf.append(f"'outbox'={depth};;;0")
    line = f"SENTINEL {health.name} - {text} | {' '.join(perf)}"
    return " ".join(line.split()), int(health)
