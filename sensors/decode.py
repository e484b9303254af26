"""Pure payload decoders: (topic, payload bytes) -> `Decoded` points. They never raise.

A point is one named field of one message (`water_leak`, `AM2301.Temperature`, `state`).
Which configured sensor a point belongs to is decided by the source, not here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sensors.reading import Value

# The field name decoders give an availability (online/offline) point.
AVAILABILITY = "availability"
# Bounds that keep a hostile payload from costing much; real payloads are far smaller.
MAX_POINTS = 256
MAX_DEPTH = 8
MAX_PAYLOAD = 64 * 1024

_ONLINE = {"online": True, "offline": False}


@dataclass(frozen=True, slots=True)
class Point:
    """One decoded field of a message: a JSON scalar (bool, float, str) or None."""

    field: str
    value: Value


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a decoder made of one message: points, or why it was rejected."""

    points: tuple[Point, ...] = ()
    error: str | None = None

    @classmethod
    def reject(cls, reason: str) -> Decoded:
        return cls((), reason)


Decoder = Callable[[str, bytes], Decoded]


def _never_raise(func: Decoder) -> Decoder:
    @functools.wraps(func)
    def wrapper(topic: str, payload: bytes) -> Decoded:
        try:
            if len(payload) > MAX_PAYLOAD:
                return Decoded.reject(f"payload of {len(payload)} bytes is too large")
            return func(topic, payload)
        except Exception as exc:  # a decoder bug must cost one message, never the source
            return Decoded.reject(f"decoder error: {type(exc).__name__}")

    return wrapper


def _text(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


def _scalar(value: Any) -> Value | Any:
    """JSON numbers become floats (bool stays bool); other scalars pass through."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def _flatten(value: Any, prefix: str, out: list[Point], depth: int = 0) -> None:
    if len(out) >= MAX_POINTS or depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}.{index}" if prefix else str(index), out, depth + 1)
    else:
        out.append(Point(prefix, _scalar(value)))


def _json(payload: bytes) -> tuple[Any, str | None]:
    text = _text(payload)
    if text is None:
        return None, "payload is not UTF-8"
    if not text:
        return None, "empty payload"
    try:
        return json.loads(text), None
    except (ValueError, RecursionError):
        return None, "payload is not valid JSON"


def _json_object_points(payload: bytes) -> Decoded:
    data, error = _json(payload)
    if error:
        return Decoded.reject(error)
    if not isinstance(data, dict):
        return Decoded.reject("payload is not a JSON object")
    points: list[Point] = []
    _flatten(data, "", points)
    return Decoded(tuple(points))


def parse_availability(payload: bytes) -> bool | None:
    """`online`/`offline` in any case, or Zigbee2MQTT's `{"state": "online"}`; else None."""
    text = _text(payload)
    if text is None:
        return None
    word = text.lower()
    if word in _ONLINE:
        return _ONLINE[word]
    if word.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if isinstance(data, dict) and isinstance(data.get("state"), str):
            return _ONLINE.get(data["state"].lower())
    return None


def _availability(payload: bytes) -> Decoded:
    online = parse_availability(payload)
    if online is None:
        return Decoded.reject("availability payload is neither online nor offline")
    return Decoded((Point(AVAILABILITY, online),))


@_never_raise
def decode_zigbee2mqtt(topic: str, payload: bytes) -> Decoded:
    """`zigbee2mqtt/<name>` state JSON, or `zigbee2mqtt/<name>/availability`."""
    if topic.endswith("/availability"):
        return _availability(payload)
    return _json_object_points(payload)


@_never_raise
def decode_tasmota(topic: str, payload: bytes) -> Decoded:
    """`tele/<t>/SENSOR` (fields nested by sensor name: `AM2301.Temperature`), `tele/<t>/LWT`."""
    if topic.endswith("/LWT"):
        return _availability(payload)
    if topic.endswith(("/SENSOR", "/STATE")):
        return _json_object_points(payload)
    return Decoded.reject("not a Tasmota SENSOR, STATE or LWT topic")


def _text_scalar(text: str) -> Value:
    upper = text.upper()
    if upper in ("ON", "OFF"):
        return upper == "ON"
    try:
        return float(text)
    except ValueError:
        return text


@_never_raise
def decode_esphome(topic: str, payload: bytes) -> Decoded:
    """`<prefix>/<component>/<name>/state` (`ON`/`OFF`, numbers, text), `<prefix>/status`."""
    if topic.endswith("/status"):
        return _availability(payload)
    if not topic.endswith("/state"):
        return Decoded.reject("not an ESPHome state or status topic")
    text = _text(payload)
    if text is None:
        return Decoded.reject("payload is not UTF-8")
    if not text:
        return Decoded.reject("empty payload")
    return Decoded((Point("state", _text_scalar(text)),))


@_never_raise
def decode_json(topic: str, payload: bytes) -> Decoded:
    """Any JSON (objects flattened to dotted paths `a.b.0`), or a bare scalar as field ``""``."""
    data, error = _json(payload)
    if error == "payload is not valid JSON":
        text = _text(payload) or ""
        # A word like `wet` or `ON` is a bare value; broken JSON is not.
        if text.isprintable() and not text.startswith(("{", "[", '"')) and len(text) <= 100:
            return Decoded((Point("", _text_scalar(text)),))
    if error:
        return Decoded.reject(error)
    points: list[Point] = []
    _flatten(data, "", points)
    return Decoded(tuple(points))


def _line_value(text: str) -> Value:
    try:
        return float(text)
    except ValueError:
        return text


@_never_raise
def decode_line(topic: str, payload: bytes) -> Decoded:
    """One text line from a serial device: a JSON object or `key=value key2=value2` pairs.

    Pairs may be separated by spaces, commas or semicolons. A line with any token that is
    not `key=value` is rejected whole: it is most likely a half line after a reset.
    """
    text = _text(payload)
    if text is None:
        return Decoded.reject("line is not UTF-8")
    if not text:
        return Decoded.reject("empty line")
    if text.startswith("{"):
        return _json_object_points(payload)
    if not text.isprintable():
        return Decoded.reject("line has control characters")
    tokens = text.replace(",", " ").replace(";", " ").split()
    points: list[Point] = []
    for token in tokens[:MAX_POINTS]:
        key, sep, value = token.partition("=")
        if not sep or not key or not value:
            return Decoded.reject(f"token {token[:40]!r} is not key=value")
        points.append(Point(key, _line_value(value)))
    return Decoded(tuple(points))


DECODERS: dict[str, Decoder] = {
    "zigbee2mqtt": decode_zigbee2mqtt,
    "tasmota": decode_tasmota,
    "esphome": decode_esphome,
    "json": decode_json,
    "line": decode_line,
}
