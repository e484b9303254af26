"""The sample buffer: each sensor's latest value, and sampled history, held in memory and
written by `Engine.flush()` in batches (a reading a second per sensor must not mean a
write a second)."""

from __future__ import annotations

import enum
import logging
from typing import Any

from sentinel.alarm.alarm import dump_value, load_value
from sentinel.alarm.registry import SensorRegistry
from sentinel.alarm.repository import HistorySample, Repository, SensorSample, StoredSensor

log = logging.getLogger("sentinel.alarm")

# History rows kept in memory while SQLite cannot be written; older ones are dropped (counted).
HISTORY_BUFFER_MAX = 100_000

Key = tuple[str, str]  # (sensor id, kind)
Sample = tuple[str, str, float, Any]  # (sensor id, kind, ts, value): one history row


class Flushed(enum.Enum):
    NOTHING = "nothing"  # nothing was buffered and nothing was to be pruned
    WRITTEN = "written"
    FAILED = "failed"  # kept for the next flush


class Latest:
    """The last value of one (sensor, kind), and what went to history last."""

    __slots__ = ("fault", "hist_ts", "hist_value", "ts", "unit", "value")

    def __init__(self, value: Any, unit: str, ts: float, fault: str | None) -> None:
        self.value = value
        self.unit = unit
        self.ts = ts
        self.fault = fault
        self.hist_ts = float("-inf")
        self.hist_value: Any = object()


class SampleBuffer:
    def __init__(self, history_interval: float) -> None:
        self._history_interval = history_interval
        self._latest: dict[Key, Latest] = {}
        self._dirty: set[Key] = set()
        self._history: list[Sample] = []
        self.dropped = 0

    def __len__(self) -> int:
        """History rows waiting to be written."""
        return len(self._history)

    def get(self, sensor_id: str, kind: str) -> Latest | None:
        return self._latest.get((sensor_id, kind))

    def restore(self, stored: StoredSensor) -> None:
        """A value from before a restart: known (combined rules use it), but neither dirty
        nor history."""
        if stored.value_ts is not None:
            self._latest[(stored.id, stored.kind)] = Latest(
                load_value(stored.value), stored.unit, stored.value_ts, stored.fault
            )

    def remember(
        self, sensor_id: str, kind: str, value: Any, unit: str, now: float, fault: str | None
    ) -> None:
        key = (sensor_id, kind)
        latest = self._latest.get(key)
        if latest is None:
            latest = self._latest[key] = Latest(value, unit, now, fault)
        else:
            latest.value = value
            latest.unit = unit
            latest.ts = now
            latest.fault = fault
        self._dirty.add(key)
        # history is sampled: one row per interval, plus every change of a boolean
        if (value.__class__ is bool and value != latest.hist_value) or (
            now - latest.hist_ts >= self._history_interval
        ):
            latest.hist_ts = now
            latest.hist_value = value
            if len(self._history) >= HISTORY_BUFFER_MAX:
                del self._history[: HISTORY_BUFFER_MAX // 10]
                self.dropped += HISTORY_BUFFER_MAX // 10
            self._history.append((sensor_id, kind, now, value))

    async def flush(
        self, repo: Repository, sensors: SensorRegistry, prune_before: float | None
    ) -> Flushed:
        """Write what is buffered (and prune, with `prune_before`); on failure keep it."""
        dirty, self._dirty = self._dirty, set()
        history, self._history = self._history, []
        rows = self._sensor_rows(dirty, sensors)
        if not rows and not history and prune_before is None:
            return Flushed.NOTHING
        try:
            await repo.save_samples(
                rows,
                [HistorySample(sid, kind, ts, dump_value(v)) for sid, kind, ts, v in history],
                prune_before,
            )
        except Exception as exc:
            self._dirty |= dirty
            self._history[:0] = history
            log.error("alarm engine: cannot write latest values/history (kept): %s", exc)
            return Flushed.FAILED
        return Flushed.WRITTEN

    def _sensor_rows(self, dirty: set[Key], sensors: SensorRegistry) -> list[SensorSample]:
        rows = []
        for sid, kind in dirty:
            latest = self._latest.get((sid, kind))
            info = sensors.get(sid)
            if latest is None or info is None:
                continue
            rows.append(
                SensorSample(
                    id=sid,
                    kind=kind,
                    location=info.location,
                    unit=latest.unit,
                    max_age=info.max_age,
                    configured=int(info.configured),
                    value=dump_value(latest.value),
                    value_ts=latest.ts,
                    fault=latest.fault,
                )
            )
        return rows
