"""Sensor history for the charts, downsampled in SQLite.

30 days of 10-second samples is 259,200 rows per sensor; a phone needs at most a few hundred
points. The bucket statistics (min, avg, max) are computed by SQLite, in a worker thread
with its own read-only connection, so no chart blocks the event loop: from the
raw samples over the (sensor_id, kind, ts) index for an hour, longer ranges from the
one- and ten-minute roll-ups (sentinel/alarm/rollup.py).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sentinel.alarm.rollup import WIDTHS, as_number, charted
from sentinel.alarm.rules import RuleBook
from sentinel.config import Config
from sentinel.store import open_readonly

RANGES: dict[str, float] = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
# points per chart: about one per two pixels of a desktop chart, plenty for a phone
MAX_POINTS = 720

# the values the roll-ups count, read the same way (sentinel/alarm/rollup.py)
_QUERY = f"""
SELECT MIN(CAST((ts - :start) / :step AS INTEGER), :last) AS bucket,
       MIN(ts), MIN(v), AVG(v), MAX(v)
FROM (
    SELECT ts, {as_number("value")} AS v
    FROM alarm_history
    WHERE sensor_id = :sensor AND kind = :kind AND ts >= :start AND ts <= :end
      AND {charted("value")}
)
GROUP BY bucket ORDER BY bucket
"""

# longer ranges: the ten-minute roll-ups (sentinel/alarm/rollup.py)
_ROLLUP_QUERY = """
SELECT MIN(CAST((bucket - :start) / :step AS INTEGER), :last) AS b,
       MIN(bucket), MIN(lo), SUM(total) / SUM(n), MAX(hi)
FROM alarm_history_rollup
WHERE sensor_id = :sensor AND kind = :kind AND width = :width
  AND bucket >= :start AND bucket <= :end
GROUP BY b ORDER BY b
"""
# a range longer than this reads the roll-ups
ROLLUP_FROM = 3600.0


def rollup_width(span: float) -> float | None:
    """The roll-up a chart of `span` seconds reads (None: the raw samples): the widest
    whose buckets still give the chart its points (24 h: one-minute, 30 d: ten-minute)."""
    if span <= ROLLUP_FROM:
        return None
    fitting = [w for w in WIDTHS if span / w >= MAX_POINTS]
    return max(fitting) if fitting else min(WIDTHS)


@dataclass(frozen=True, slots=True)
class Thresholds:
    warn_high: float | None = None
    crit_high: float | None = None
    warn_low: float | None = None
    crit_low: float | None = None


def rule_book(config: Config) -> RuleBook:
    """The rules as the alarm engine resolves them; built once per web server."""
    return RuleBook(config.rules, config.alarms, {s.id: s.kind for s in config.sensors})


def thresholds(book: RuleBook, sensor_id: str, kind: str) -> Thresholds:
    """The limits the alarm engine applies to this sensor, drawn on its chart."""
    rule = book.rule(sensor_id, kind)
    if not rule.enabled:
        return Thresholds()
    return Thresholds(rule.warn_high, rule.crit_high, rule.warn_low, rule.crit_low)


def query(state_dir: Path, sensor_id: str, kind: str, span: float, now: float) -> dict[str, Any]:
    """Bucketed history of one (sensor, kind) over the last `span` seconds."""
    return query_many(state_dir, [(sensor_id, kind, span)], now)[0]


def query_many(
    state_dir: Path, charts: Sequence[tuple[str, str, float]], now: float
) -> list[dict[str, Any]]:
    """Several charts over one read-only connection: the page asks for all its tiles' charts
    in one request (one thread hop, one connection), not twenty."""
    conn = open_readonly(state_dir)
    try:
        return [_chart(conn, sensor_id, kind, span, now) for sensor_id, kind, span in charts]
    finally:
        if conn is not None:
            conn.close()


def _chart(
    conn: sqlite3.Connection | None, sensor_id: str, kind: str, span: float, now: float
) -> dict[str, Any]:
    width = rollup_width(span)
    rolled = width is not None
    if width is not None:
        # whole roll-up buckets: 30 d -> 1 h steps (720 points), 7 d -> 20 min (504),
        # 24 h -> 2 min (720)
        step = math.ceil(span / MAX_POINTS / width) * width
        start = math.floor((now - span) / width) * width
    else:
        step = max(1.0, span / MAX_POINTS)
        start = now - span
    columns: dict[str, list[float | None]] = {"t": [], "min": [], "avg": [], "max": []}
    unit = ""
    if conn is not None:
        try:
            params = {
                "sensor": sensor_id,
                "kind": kind,
                "start": start,
                "end": now,
                "step": step,
                "last": MAX_POINTS - 1,  # a sample at exactly `now` joins the last bucket
                "width": width,
            }
            for _bucket, first, lo, mean, hi in conn.execute(
                _ROLLUP_QUERY if rolled else _QUERY, params
            ):
                columns["t"].append(round(first))
                columns["min"].append(_num(lo))
                columns["avg"].append(_num(mean))
                columns["max"].append(_num(hi))
            row = conn.execute(
                "SELECT unit FROM alarm_sensors WHERE id = ? AND kind = ?", (sensor_id, kind)
            ).fetchone()
            unit = str(row[0]) if row else ""
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):  # a daemon that never ran has no history
                raise
    return {
        "sensor": sensor_id,
        "kind": kind,
        "unit": unit,
        "from": start,
        "to": now,
        "step": step,
        "source": "rollup" if rolled else "samples",
        **columns,
    }


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, 4) if math.isfinite(number) else None


def with_thresholds(result: dict[str, Any], book: RuleBook) -> dict[str, Any]:
    result["thresholds"] = asdict(thresholds(book, result["sensor"], result["kind"]))
    return result
