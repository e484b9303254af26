"""`sentinel status`: a table for people, `--json` for tools, `--nagios` for monitoring."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from backup.quarantine import printable
from sentinel.config import ConfigError, config_path, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="show daemon, sensors, alarms, replication and alert channels",
        description="Exit codes (all forms): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="machine-readable (docs/status.md)")
    form.add_argument("--nagios", action="store_true", help="one Nagios plugin line")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="read this state directory when the config cannot be read (default: the one "
        "the running daemon recorded, else the one the file names, else the default)",
    )
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from sentinel.status import Health, build_report, build_report_without_config, nagios_line

    path = config_path(getattr(args, "config", None))
    try:
        report = build_report(load_config(path))
    except ConfigError as exc:
        # a broken file on disk must not hide an active alarm: report what the state
        # database (or the running daemon) says, and that the config is broken
        print(f"sentinel: {exc}", file=sys.stderr)
        report = build_report_without_config(path, str(exc), state_dir=args.state_dir)
    code = int(Health[report["overall"]["state"]])
    if args.json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2, default=str)
        print()
    elif args.nagios:
        line, code = nagios_line(report)
        print(line)
    else:
        render(report, Console())
    return code


def _t(value: Any) -> str:
    """Any text from the report (reasons, names, paths, errors: much of it chosen by whoever
    names a file or a sensor) as literal text: no rich markup ("[attack county]" stays),
    no control characters (a newline or ESC[2J in a file name)."""
    return escape(printable(str(value)))


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    seconds = max(0.0, now - ts)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h ago"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _value(v: Any, unit: str | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "YES" if v else "no"
    if isinstance(v, float):
        return f"{v:.1f}{unit or ''}"
    return f"{v}{unit or ''}"


STYLE = {"OK": "green", "WARNING": "yellow", "CRITICAL": "bold red", "UNKNOWN": "magenta"}


def render(report: dict[str, Any], console: Console) -> None:
    now = report["generated"]
    overall = report["overall"]
    daemon = report["daemon"]
    console.print(
        f"[bold]sentinel[/bold] {_t(report['site'])} — "
        f"[{STYLE[overall['state']]}]{overall['state']}[/]: "
        f"{_t('; '.join(str(r) for r in overall['reasons']))}"
    )
    line = f"daemon: {daemon['state']}"
    if daemon.get("pid"):
        line += f", pid {daemon['pid']}, version {daemon.get('version')}"
    if daemon.get("uptime") is not None:
        line += f", up {_ago(now - daemon['uptime'], now).removesuffix(' ago')}"
    if daemon.get("heartbeat_ts"):
        line += f", heartbeat {_ago(daemon['heartbeat_ts'], now)}"
    if daemon.get("status"):
        line += f" — {daemon['status']}"
    console.print(_t(line))
    urls = (report.get("components", {}).get("web") or {}).get("urls")
    if urls:
        console.print(_t(f"dashboard: {', '.join(urls)}"))

    configured = report.get("configured", {})
    if report.get("rooms") is not None:
        _rooms(report, console, now)
    else:
        _sensors(report, console, now, configured.get("sensors", 0))
    _alarms(report, console, now)
    _replication(report, console, now, configured.get("replication", 0))
    _alerts(report, console, now)
    _components(report, console)
    _paperwork(report, console, now)


def _clock(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%m-%d %H:%M:%S")


def _rooms(report: dict[str, Any], console: Console, now: float) -> None:
    """The keeper's rooms: is each alive, and up to when is its data safe here."""
    table = Table(title="Rooms (keeper)", title_justify="left")
    for col in (
        "room",
        "heartbeat",
        "data safe as of",
        "landing lag",
        "snapshots",
        "newest",
        "oldest",
        "disk free",
        "problem",
    ):
        table.add_column(col)
    for r in report["rooms"]:
        age = r.get("heartbeat_age")
        beat = "never" if age is None else f"{age:.0f}s ago"
        if r.get("silent"):
            beat = f"[bold red]SILENT {beat}[/]"
        lag = r.get("landing_lag")
        free = [
            f"{v:.0f}%"
            for v in (r.get("landing_disk_free"), r.get("snapshot_disk_free"))
            if v is not None
        ]
        problem = (
            r.get("mass_change")
            or r.get("heartbeat_error")
            or r.get("last_error")
            or r.get("watch_error")
            or ""
        )
        table.add_row(
            _t(f"{r['room']} ({r['label']})" if r["label"] != r["room"] else r["room"]),
            beat,
            _clock(r.get("safe_as_of")),
            "-" if lag is None else f"{lag:.0f}s",
            str(r.get("snapshot_count") if r.get("snapshot_count") is not None else "-"),
            _clock(r.get("newest_snapshot_ts")),
            _clock(r.get("oldest_snapshot_ts")),
            " / ".join(free) or "-",
            _t(problem),
        )
    console.print(table)


def _sensors(report: dict[str, Any], console: Console, now: float, configured: int) -> None:
    if not report["sensors"]:
        console.print(
            "\n[bold]Sensors[/bold]: none configured"
            if not configured
            else f"\n[bold]Sensors[/bold]: {configured} configured, none seen yet"
        )
        return
    table = Table(title="Sensors", title_justify="left", expand=False)
    for col in ("sensor", "location", "kind", "value", "age", "state"):
        table.add_column(col)
    for s in report["sensors"]:
        state = s.get("state", "")
        style = {"ok": "green", "alarm": "bold red", "lost": "yellow", "fault": "yellow"}.get(
            state, ""
        )
        if s.get("silenced"):
            state += " (silenced)"
        table.add_row(
            _t(s.get("id", "")),
            _t(s.get("location", "")),
            _t(s.get("kind", "")),
            _value(s.get("value"), s.get("unit")),
            "never" if s.get("age") is None else _ago(now - s["age"], now),
            f"[{style}]{_t(state)}[/]" if style else _t(state),
        )
    console.print(table)


def _alarms(report: dict[str, Any], console: Console, now: float) -> None:
    if not report["alarms"]:
        console.print("\n[bold]Alarms[/bold]: none active")
    else:
        table = Table(title="Active alarms", title_justify="left")
        for col in ("id", "severity", "state", "location", "reason", "value", "since"):
            table.add_column(col)
        for a in report["alarms"]:
            table.add_row(
                _t(a.get("id", "")),
                _t(a.get("severity", "")),
                _t(str(a.get("state", "")) + (f" by {a['acked_by']}" if a.get("acked_by") else "")),
                _t(a.get("location") or a.get("sensor_id", "")),
                _t(a.get("reason", "")),
                _t(_value(a.get("value"), a.get("unit"))),
                _ago(a.get("since"), now),
            )
        console.print(table)
    for s in report.get("silences", []):
        console.print(
            _t(
                f"silenced: {s.get('sensor') or 'all'} until "
                f"{datetime.fromtimestamp(s['until']).strftime('%H:%M') if s.get('until') else '?'}"
                f" — {s.get('reason', '')}"
            )
        )


def _replication(report: dict[str, Any], console: Console, now: float, configured: int) -> None:
    if not report["replication"]:
        console.print(
            "\n[bold]Replication[/bold]: "
            + ("none configured" if not configured else f"{configured} configured, no data yet")
        )
        return
    table = Table(title="Replication", title_justify="left")
    for col in ("source", "RPO", "pending", "last success", "failures", "guard", "verify"):
        table.add_column(col)
    for r in report["replication"]:
        rpo = r.get("rpo_seconds")
        table.add_row(
            _t(r.get("name", "")),
            "-" if rpo is None else f"{rpo:.1f}s",
            _t(r.get("pending", "-")),
            _ago(r.get("last_success"), now),
            _t(
                str(r.get("consecutive_failures", 0))
                + (f" ({r['last_error']})" if r.get("last_error") else "")
            ),
            "TRIPPED" if r.get("guard_tripped") else "ok",
            _t(r.get("verify", "-")),
        )
    console.print(table)
    for r in report["replication"]:
        _log_line(r, console)
    for r in report["replication"]:
        _keeper_line(r, console, now)
    for r in report["replication"]:
        _stream_line(r, console)
    for r in report["replication"]:
        drill = r.get("database_drill")
        if drill:
            problem = f" [yellow]({_t(drill['problem'])})[/]" if drill.get("problem") else ""
            console.print(f"{_t(r.get('name'))}: {_t(drill['summary'])}{problem}")
    for r in report["replication"]:
        files_drill = r.get("drill")
        if files_drill and not r.get("database_drill"):
            problem = files_drill.get("problem")
            console.print(
                f"{_t(r.get('name'))}: {_t(files_drill['summary'])}"
                + (f" [yellow]({_t(problem)})[/]" if problem else "")
            )
    for r in report["replication"]:
        quarantine = r.get("quarantine") or {}
        if not quarantine.get("count"):
            continue
        console.print(
            f"[yellow]{_t(r.get('name'))}: {quarantine['count']} path(s) cannot be "
            f"replicated (set aside, retried when changed and after a full pass):[/]"
        )
        if quarantine.get("unreadable"):
            console.print(
                f"[yellow]  {quarantine['unreadable']} of them the daemon's account "
                "may not read: grant read access (scripts/install.sh grant-read, "
                "docs/install.md); they ship once readable[/]"
            )
        for q in quarantine.get("paths", []):
            console.print(printable(f"  {q['path']}: {q['reason']}"), markup=False, highlight=False)
        if quarantine["count"] > len(quarantine.get("paths", [])):
            console.print(f"  ... and {quarantine['count'] - len(quarantine['paths'])} more")


def _paperwork(report: dict[str, Any], console: Console, now: float) -> None:
    """`reports: security 3 days ago (config a1b2c3…, current)`; stale in yellow."""
    paper = report.get("reports")
    if not paper:
        return
    parts = []
    for kind in ("security", "runbook"):
        view = paper.get(kind)
        if view is None:
            parts.append(f"{kind} never generated (`sentinel report {kind}`)")
        elif view.get("stale"):
            parts.append(
                f"[yellow]{kind} {_ago(view['ts'], now)} is STALE (config "
                f"{_t(view['config_hash'])}, now {_t(paper['config_hash'])})[/]"
            )
        else:
            parts.append(f"{kind} {_ago(view['ts'], now)} (current)")
    console.print(
        f"\n[bold]Reports[/bold] (config {_t(paper['config_hash'])}): " + "; ".join(parts)
    )


def _log_line(row: dict[str, Any], console: Console) -> None:
    """`onnara-db: data RPO 12.3s (log head 000000010000000000000029)`, and the gap in red."""
    if "log_head" not in row:
        return
    rpo = row.get("data_rpo_seconds")
    text = (
        f"{row.get('name')}: data RPO "
        + ("- (no log arrived yet)" if rpo is None else f"{rpo:.1f}s")
        + (f" (log head {row.get('log_head_name')})" if row.get("log_head_name") else "")
    )
    console.print(printable(text), markup=False, highlight=False)
    if row.get("log_gap"):
        console.print(
            printable(
                f"{row.get('name')}: CRITICAL log sequence gap: "
                f"{', '.join(row['log_gap'])} missing (no restore crosses it; docs/database.md)"
            ),
            style="red",
            markup=False,
            highlight=False,
        )


def _stream_line(row: dict[str, Any], console: Console) -> None:
    """A WARNING line while the stream road is down (rsync ships every batch meanwhile:
    nothing is lost, each batch costs more and takes longer)."""
    stream = row.get("stream")
    if not stream or not stream.get("error"):
        return
    since = stream.get("down_since")
    when = f" since {datetime.fromtimestamp(since).strftime('%H:%M:%S')}" if since else ""
    console.print(
        f"[yellow]{_t(row.get('name'))}: WARNING: the stream is down{when} "
        f"({_t(stream['error'])}); rsync ships every batch until it is back[/]"
    )


def _keeper_line(row: dict[str, Any], console: Console, now: float) -> None:
    """`onnara: data safe at the keeper main-office as of 14:32:05 (receipt 3s old)`, and
    a WARNING line saying why when the keeper cannot be reached or does not answer."""
    keeper = row.get("keeper")
    if not keeper:
        return
    safe = keeper.get("safe_as_of")
    written = keeper.get("receipt_written")
    if safe is not None:
        text = (
            f"{row.get('name')}: data safe at the keeper {keeper.get('room')} as of "
            f"{datetime.fromtimestamp(safe).strftime('%H:%M:%S')}"
        )
    elif written is not None:
        text = f"{row.get('name')}: keeper {keeper.get('room')} holds no snapshot yet"
    else:
        text = f"{row.get('name')}: keeper {keeper.get('room')}: no receipt read yet"
    if written is not None:
        text += f" (receipt {_ago(written, now).removesuffix(' ago')} old"
        shipped = keeper.get("heartbeat_shipped")
        text += f", heartbeat shipped {_ago(shipped, now)})" if shipped else ")"
    console.print(_t(text))
    if keeper.get("problem"):
        console.print("[yellow]" + _t(f"WARNING {row.get('name')}: {keeper['problem']}") + "[/]")


def _alerts(report: dict[str, Any], console: Console, now: float) -> None:
    alerts = report["alerts"]
    channels = alerts.get("channels", [])
    if not channels:
        console.print("\n[bold]Alert channels[/bold]: none configured or none used yet")
    else:
        table = Table(title="Alert channels", title_justify="left")
        for col in ("channel", "tags", "last success", "last failure", "error"):
            table.add_column(col)
        for c in channels:
            table.add_row(
                _t(c.get("name", "")),
                _t(",".join(str(t) for t in c.get("tags", []))),
                _ago(c.get("last_success"), now),
                _ago(c.get("last_failure"), now),
                _t(c.get("last_error") or ""),
            )
        console.print(table)
    depth = alerts.get("outbox_pending")
    if depth is not None:
        console.print(f"outbox: {depth} pending")
    for dead in alerts.get("undeliverable_rows") or []:
        console.print(
            "[yellow]"
            + _t(
                f"undeliverable outbox row {dead.get('id')} (alarm "
                f"{dead.get('alarm_id')}, {dead.get('severity')}): "
                f"{dead.get('error')}"
            )
            + "[/]"
        )
    if alerts.get("fallback_used"):
        console.print(
            f"[yellow]fallback (modem) used for {alerts['fallback_used']} message(s), last "
            f"{_ago(alerts.get('last_fallback'), now)}[/]"
        )
    if alerts.get("all_channels_failing_since"):
        console.print(
            "[bold red]EVERY ALERT CHANNEL FAILING since "
            f"{_ago(alerts['all_channels_failing_since'], now)}[/]"
        )


def _components(report: dict[str, Any], console: Console) -> None:
    comps = report["components"]
    if not comps:
        return
    table = Table(title="Components", title_justify="left")
    for col in ("component", "task", "state", "restarts", "in window", "last error"):
        table.add_column(col)
    for name, c in comps.items():
        task = _t(c.get("task", ""))
        table.add_row(
            _t(name),
            "[bold red]FAILING[/] " + task if c.get("failing") else task,
            _t(c.get("state", "")),
            _t(c.get("restarts", 0)),
            _t(c.get("restarts_in_window", "-")),
            _t(c.get("last_error") or ""),
        )
    console.print(table)
