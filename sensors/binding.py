"""How one configured sensor takes its value out of a decoded point."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from common.kinds import BINARY_KINDS, UNITS, Kind
from sensors.fault import value_fault
from sensors.reading import Reading, Value

# Words devices use for binary states (ESPHome ON/OFF, Tuya smoke_state, Arduino sketches).
_TRUE_WORDS = frozenset({"on", "true", "1", "yes", "wet", "leak", "alarm", "detected", "open"})
_FALSE_WORDS = frozenset({"off", "false", "0", "no", "dry", "normal", "clear", "closed", "ok"})


class ConversionError(ValueError):
    """A point's value cannot be this sensor's kind (e.g. text where a number belongs)."""


@dataclass(frozen=True, slots=True)
class Binding:
    """A configured sensor as a source sees it: which field, which kind, how to correct it.

    `fields` are tried in order and may be glob patterns (`*.Temperature` matches Tasmota's
    `AM2301.Temperature`). `value_map` maps a raw value's text (`"wet"`, `"1"`) to the value
    to use before conversion. `offset` is the calibration added to analog values.
    """

    sensor_id: str
    kind: str
    fields: tuple[str, ...]
    offset: float = 0.0
    value_map: Mapping[str, Value] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return UNITS.get(self.kind, "")

    def pick(self, points: Mapping[str, Value]) -> tuple[str, Value] | None:
        """The first of this binding's fields present in a decoded message."""
        for pattern in self.fields:
            if pattern in points:
                return pattern, points[pattern]
            if any(ch in pattern for ch in "*?["):
                for name, value in points.items():
                    if fnmatch.fnmatchcase(name, pattern):
                        return name, value
        return None

    def reading(self, raw: Value, *, ts: float, source: str) -> Reading:
        """The reading for `raw`; raises ConversionError when it is not this kind at all."""
        value = self._mapped(raw)
        if self.kind in BINARY_KINDS:
            return Reading(self.sensor_id, self.kind, to_bool(value), "", ts, source)
        number = to_float(value)
        fault = value_fault(self.kind, number)
        if fault:
            return Reading(self.sensor_id, self.kind, None, self.unit, ts, source, fault)
        return Reading(self.sensor_id, self.kind, number + self.offset, self.unit, ts, source)

    def availability(self, online: bool, *, ts: float, source: str) -> Reading:
        return Reading(self.sensor_id, Kind.AVAILABILITY, online, "", ts, source)

    def _mapped(self, raw: Value) -> Value:
        if not self.value_map:
            return raw
        key = _text_key(raw)
        if key in self.value_map:
            return self.value_map[key]
        if key.lower() in self.value_map:
            return self.value_map[key.lower()]
        return raw


def _text_key(raw: Value) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def to_bool(value: Value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if value in (0, 1):
            return bool(value)
        raise ConversionError(f"{value!r} is not 0 or 1")
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ConversionError(f"{_short(value)} is not an on/off value")


def to_float(value: Value) -> float:
    if isinstance(value, bool) or value is None:
        raise ConversionError(f"{_short(value)} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConversionError(f"{_short(value)} is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise ConversionError(f"{_short(value)} is not a finite number")
    return number


def _short(value: Value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
