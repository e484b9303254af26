"""Ten-minute roll-ups of the sensor history, for the long charts (owner "history_rollup").

A 30-day chart of one sensor sampled every 10 s reads 259,200 history rows; bucketing them
took 300-400 ms on this machine. SQLite keeps, beside `alarm_history`, one row per sensor,
kind and ten minutes with the count, minimum, maximum and sum of the values, maintained by a
trigger on every history insert (whoever writes the history, the roll-up cannot fall out of
step with it). A 30-day chart then reads 4,320 rows. Ranges up to a day still read the raw
samples: a ten-minute bucket would hide a short spike's shape there.

Values are numbers; booleans count as 0/1 (a leak chart's max is "was it wet"); JSON strings
and nulls (faults) are left out.
"""

from __future__ import annotations

OWNER = "history_rollup"
BUCKET = 600.0

_VALUE = (
    "CASE NEW.value WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 ELSE CAST(NEW.value AS REAL) END"
)

MIGRATIONS: tuple[str, ...] = (
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
)
