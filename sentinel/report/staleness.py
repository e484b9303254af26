"""When the paperwork no longer matches the site (issue 17, part 3), as status sees it.

A printed security pack or runbook is stale once the config's fingerprint differs from the
one it was generated from; a restore drill is stale once the newest successful one is older
than `[reports] drill_max_age`. Both are warnings (the room is protected; the binder is not
true any more). Never generated and never drilled are notes, not warnings: a new install is
not a fault, and every status line says what to run."""

from __future__ import annotations

import sqlite3
from typing import Any

from backup.database_drill_record import age_text, duration_text
from backup.drill_record import FileDrill, last_drill
from sentinel.report.record import KINDS, last_report

COMMANDS = {"security": "sentinel report security", "runbook": "sentinel report runbook"}


def reports_view(conn: sqlite3.Connection | None, current: str, now: float) -> dict[str, Any]:
    """{"config_hash": current, "security": {...} | None, "runbook": {...} | None}; each
    report's view carries `stale` and, when stale, the `problem` status warns with."""
    view: dict[str, Any] = {"config_hash": current}
    for kind in KINDS:
        row = last_report(conn, kind) if conn is not None else None
        if row is None:
            view[kind] = None
            continue
        stale = row.config_hash != current
        view[kind] = {
            "ts": row.ts,
            "age": max(0.0, now - row.ts),
            "config_hash": row.config_hash,
            "lang": row.lang,
            "paths": list(row.paths),
            "stale": stale,
            "problem": (
                f"the {kind} report of {age_text(max(0.0, now - row.ts))} ago was made from "
                f"config {row.config_hash}; the config is now {current}: run "
                f"`{COMMANDS[kind]}` and replace the printed copy"
                if stale
                else None
            ),
        }
    return view


def drill_view(
    conn: sqlite3.Connection | None, source: str, now: float, max_age: float | None
) -> dict[str, Any]:
    """One replication's file drills (`sentinel backup drill`): the last, the last successful,
    a one-line summary and the problem status warns with (None: none, or only a note).
    `max_age` None: no age limit (a database drill, with its own, stands for this one)."""
    last = last_drill(conn, source) if conn is not None else None
    last_ok = last_drill(conn, source, ok_only=True) if conn is not None else None
    problem = None
    if last is not None and not last.ok:
        problem = f"the last restore drill ({age_text(now - last.ts)} ago) failed: {last.error}"
    elif last_ok is not None and max_age is not None and now - last_ok.ts > max_age:
        problem = (
            f"the last successful restore drill is {age_text(now - last_ok.ts)} old "
            f"(reports.drill_max_age {age_text(max_age)}): run `sentinel backup drill`"
        )
    return {
        "last": _as_dict(last),
        "last_ok": _as_dict(last_ok),
        "max_age": max_age,
        "summary": _summary(last_ok, now),
        "problem": problem,
    }


def _summary(last_ok: FileDrill | None, now: float) -> str:
    if last_ok is None:
        return "last successful restore drill: never (run `sentinel backup drill`)"
    rto = "?" if last_ok.rto is None else duration_text(last_ok.rto)
    return (
        f"last successful restore drill: {age_text(max(0.0, now - last_ok.ts))} ago, "
        f"{last_ok.files if last_ok.files is not None else '?'} files, RTO {rto}"
    )


def _as_dict(drill: FileDrill | None) -> dict[str, Any] | None:
    if drill is None:
        return None
    return {
        "kind": drill.kind,
        "ts": drill.ts,
        "ok": drill.ok,
        "rto": drill.rto,
        "files": drill.files,
        "error": drill.error or None,
        "snapshot": drill.snapshot,
    }
