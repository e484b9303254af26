"""Roll-ups of the sensor history, for the charts (owner "history_rollup").

A 30-day chart of one sensor sampled every 10 s reads 259,200 history rows; bucketing them
took 300-400 ms on this machine, and twenty 24-hour charts (8,640 rows each) took 330 ms
together. SQLite keeps, beside `alarm_history`, one row per sensor, kind and minute, and
one per ten minutes, with the count, minimum, maximum and sum of the values, maintained by
a trigger on every history insert (whoever writes the history, the roll-ups cannot fall out
of step with it). A 24-hour chart reads 1,440 one-minute rows, a 30-day chart 4,320
ten-minute rows; only the one-hour chart reads raw samples. The minimum and maximum of each
bucket are kept, so a short spike still shows at its full height.

Values are numbers; booleans count as 0/1 (a leak chart's max is "was it wet"); JSON strings
and nulls (faults) are left out.
"""

from __future__ import annotations

OWNER = "history_rollup"
# the widths kept, in seconds; the longest also decides what pruning keeps
WIDTHS = (60.0, 600.0)
BUCKET = max(WIDTHS)


def as_number(column: str) -> str:
    """SQL: a history value (JSON text) as the number a chart draws; booleans as 0/1."""
    return (
        f"CASE {column} WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 ELSE CAST({column} AS REAL) END"
    )


def charted(column: str) -> str:
    """SQL: the history values a chart draws: not faults (NULL, null) and not JSON strings."""
    return f"{column} IS NOT NULL AND {column} != 'null' AND substr({column}, 1, 1) != '\"'"


_VALUE = as_number("NEW.value")


def _upsert(width: float) -> str:
    return f"""
        INSERT INTO alarm_history_rollup(sensor_id, kind, width, bucket, n, lo, hi, total)
        VALUES (NEW.sensor_id, NEW.kind, {width:g},
                CAST(NEW.ts / {width:g} AS INTEGER) * {width:g}, 1, {_VALUE}, {_VALUE}, {_VALUE})
        ON CONFLICT (sensor_id, kind, width, bucket) DO UPDATE SET
            n = n + 1,
            lo = min(lo, excluded.lo),
            hi = max(hi, excluded.hi),
            total = total + excluded.total;"""


def _backfill(width: float) -> str:
    """The history kept from before the roll-ups existed."""
    return f"""
    INSERT INTO alarm_history_rollup(sensor_id, kind, width, bucket, n, lo, hi, total)
    SELECT sensor_id, kind, {width:g}, CAST(ts / {width:g} AS INTEGER) * {width:g}, count(*),
           min(v), max(v), sum(v)
    FROM (SELECT sensor_id, kind, ts, {as_number("value")} AS v
          FROM alarm_history WHERE {charted("value")})
    GROUP BY 1, 2, 4;"""


MIGRATIONS: tuple[str, ...] = (
    # 1: ten-minute roll-ups (replaced by 2; kept so a database at 1 upgrades in order)
    f"""
    CREATE TABLE alarm_history_rollup (
        sensor_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        bucket REAL NOT NULL,       -- start of the ten minutes, a multiple of {BUCKET:g} s
        n INTEGER NOT NULL,
        lo REAL NOT NULL,
        hi REAL NOT NULL,
        total REAL NOT NULL,
        PRIMARY KEY (sensor_id, kind, bucket)
    ) WITHOUT ROWID;

    CREATE TRIGGER alarm_history_rollup_add AFTER INSERT ON alarm_history
    WHEN NEW.value IS NOT NULL AND NEW.value != 'null' AND substr(NEW.value, 1, 1) != '"'
    BEGIN
        INSERT INTO alarm_history_rollup(sensor_id, kind, bucket, n, lo, hi, total)
        VALUES (NEW.sensor_id, NEW.kind, CAST(NEW.ts / {BUCKET:g} AS INTEGER) * {BUCKET:g}, 1,
                {_VALUE}, {_VALUE}, {_VALUE})
        ON CONFLICT (sensor_id, kind, bucket) DO UPDATE SET
            n = n + 1,
            lo = min(lo, excluded.lo),
            hi = max(hi, excluded.hi),
            total = total + excluded.total;
    END;

    -- the history kept from before this migration
    INSERT INTO alarm_history_rollup(sensor_id, kind, bucket, n, lo, hi, total)
    SELECT sensor_id, kind, CAST(ts / {BUCKET:g} AS INTEGER) * {BUCKET:g}, count(*),
           min(v), max(v), sum(v)
    FROM (SELECT sensor_id, kind, ts,
                 CASE value WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0
                            ELSE CAST(value AS REAL) END AS v
          FROM alarm_history
          WHERE value IS NOT NULL AND value != 'null' AND substr(value, 1, 1) != '"')
    GROUP BY 1, 2, 3;
    """,
    # 2: a one-minute width beside the ten-minute one (24-hour charts), one table for both
    f"""
    DROP TRIGGER alarm_history_rollup_add;
    DROP TABLE alarm_history_rollup;

    CREATE TABLE alarm_history_rollup (
        sensor_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        width REAL NOT NULL,        -- seconds: {WIDTHS[0]:g} or {WIDTHS[1]:g}
        bucket REAL NOT NULL,       -- start of the bucket, a multiple of its width
        n INTEGER NOT NULL,
        lo REAL NOT NULL,
        hi REAL NOT NULL,
        total REAL NOT NULL,
        PRIMARY KEY (sensor_id, kind, width, bucket)
    ) WITHOUT ROWID;

    CREATE TRIGGER alarm_history_rollup_add AFTER INSERT ON alarm_history
    WHEN {charted("NEW.value")}
    BEGIN
        {_upsert(WIDTHS[0])}
        {_upsert(WIDTHS[1])}
    END;

    {_backfill(WIDTHS[0])}
    {_backfill(WIDTHS[1])}
    """,
)
