"""Decoders, value conversion and fault detection: pure functions, fuzzed with hypothesis."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.binding import Binding, ConversionError
from sensors.decode import (
    DECODERS,
    Decoded,
    Point,
    decode_esphome,
    decode_json,
    decode_line,
    decode_tasmota,
    decode_zigbee2mqtt,
    parse_availability,
)
from sensors.fault import register_fault, value_fault

TOPICS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "zigbee2mqtt/leak1",
            "zigbee2mqtt/leak1/availability",
            "tele/t1/SENSOR",
            "tele/t1/LWT",
            "node/binary_sensor/leak/state",
            "node/status",
        ]
    ),
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


FIELDS = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=12)
NUMBERS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=10)
OBJECT_TOPICS = {
    "zigbee2mqtt": "zigbee2mqtt/dev1",
    "tasmota": "tele/t1/SENSOR",
    "json": "room/probe",
}
AVAILABILITY_TOPICS = {
    "zigbee2mqtt": "zigbee2mqtt/dev1/availability",
    "tasmota": "tele/t1/LWT",
    "esphome": "node/status",
}


def _typed(points: tuple[Point, ...]) -> list[tuple[str, object, type]]:
    # Point(f, True) == Point(f, 1.0) in Python: the type is compared too
    return [(p.field, p.value, type(p.value)) for p in points]


def _a_rejection_or_points(result: Decoded) -> None:
    """What a decoder owes any input: points, or a rejection saying why; a decoder that
    raised (caught by `_never_raise`) is a bug, not a rejection."""
    assert not (result.error or "").startswith("decoder error"), result.error
    assert result.error is None or result.points == ()
    for point in result.points:
        assert point.value is None or isinstance(point.value, bool | float | str)


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=300, deadline=None)
@given(topic=TOPICS, payload=st.binary(max_size=300))
def test_decoders_never_raise_on_arbitrary_bytes(name: str, topic: str, payload: bytes) -> None:
    _a_rejection_or_points(DECODERS[name](topic, payload))


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=200, deadline=None)
@given(topic=TOPICS, data=JSONISH)
def test_decoders_never_raise_on_arbitrary_json(name: str, topic: str, data: object) -> None:
    _a_rejection_or_points(DECODERS[name](topic, json.dumps(data).encode()))


@pytest.mark.parametrize("name", sorted(OBJECT_TOPICS))
@settings(max_examples=200, deadline=None)
@given(fields=st.dictionaries(FIELDS, SCALARS, max_size=8))
def test_a_json_object_decodes_to_its_fields(name: str, fields: dict[str, object]) -> None:
    result = DECODERS[name](OBJECT_TOPICS[name], json.dumps(fields).encode())
    assert result.error is None
    assert _typed(result.points) == _typed(tuple(Point(k, v) for k, v in fields.items()))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(value=st.booleans() | NUMBERS)
def test_an_esphome_state_decodes_to_its_value(value: bool | float) -> None:
    payload = ("ON" if value else "OFF") if isinstance(value, bool) else repr(value)
    result = decode_esphome("node/sensor/x/state", payload.encode())
    assert _typed(result.points) == _typed((Point("state", value),))


@settings(max_examples=200, deadline=None)
@given(fields=st.dictionaries(FIELDS, NUMBERS, min_size=1, max_size=8))
def test_a_line_decodes_to_its_pairs(fields: dict[str, float]) -> None:
    line = " ".join(f"{k}={v!r}" for k, v in fields.items()) + "\n"
    result = decode_line("serial", line.encode())
    assert _typed(result.points) == _typed(tuple(Point(k, v) for k, v in fields.items()))


@pytest.mark.parametrize("name", sorted(AVAILABILITY_TOPICS))
@settings(max_examples=50, deadline=None)
@given(online=st.booleans(), as_json=st.booleans(), upper=st.booleans())
def test_availability_decodes_to_its_state(
    name: str, online: bool, as_json: bool, upper: bool
) -> None:
    word = "online" if online else "offline"
    word = word.capitalize() if upper else word
    payload = json.dumps({"state": word}) if as_json else word
    result = DECODERS[name](AVAILABILITY_TOPICS[name], payload.encode())
    assert _typed(result.points) == _typed((Point("availability", online),))


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=100))
def test_availability_parser_never_raises(payload: bytes) -> None:
    assert parse_availability(payload) in (True, False, None)


def test_deeply_nested_json_is_rejected_not_raised() -> None:
    assert decode_json("t", b"[" * 30_000 + b"]" * 30_000).error
    assert decode_json("t", b"1" * 70_000).error  # over the size bound
    assert decode_zigbee2mqtt("zigbee2mqtt/x", b'{"a":' * 5000 + b"1" + b"}" * 5000).error


def test_zigbee2mqtt_state_and_availability() -> None:
    state = decode_zigbee2mqtt(
        "zigbee2mqtt/leak1", b'{"water_leak":true,"battery":97,"linkquality":80}'
    )
    assert Point("water_leak", True) in state.points
    assert Point("battery", 97.0) in state.points
    avail = decode_zigbee2mqtt("zigbee2mqtt/leak1/availability", b'{"state":"offline"}')
    assert avail.points == (Point("availability", False),)
    assert decode_zigbee2mqtt("zigbee2mqtt/leak1/availability", b"online").points[0].value is True
    assert decode_zigbee2mqtt("zigbee2mqtt/leak1", b"[1,2]").error == "payload is not a JSON object"


def test_tasmota_nested_sensor_and_lwt() -> None:
    decoded = decode_tasmota(
        "tele/rack/SENSOR",
        b'{"Time":"2026-11-01T10:00:00","AM2301":{"Temperature":24.6,"Humidity":58.2},'
        b'"TempUnit":"C"}',
    )
    assert Point("AM2301.Temperature", 24.6) in decoded.points
    assert decode_tasmota("tele/rack/LWT", b"Offline").points == (Point("availability", False),)
    assert decode_tasmota("tele/rack/INFO1", b"{}").error


def test_esphome_state_and_status() -> None:
    assert decode_esphome("n/binary_sensor/leak/state", b"ON").points == (Point("state", True),)
    assert decode_esphome("n/sensor/temp/state", b"21.5").points == (Point("state", 21.5),)
    assert decode_esphome("n/status", b"offline").points == (Point("availability", False),)


def test_json_paths_and_bare_scalars() -> None:
    decoded = decode_json("x", b'{"data":{"probes":[{"t":20.5}]}}')
    assert decoded.points == (Point("data.probes.0.t", 20.5),)
    assert decode_json("x", b"wet").points == (Point("", "wet"),)
    assert decode_json("x", b"\xff\xfe").error == "payload is not UTF-8"


def test_line_formats_and_garbage() -> None:
    assert decode_line("p", b"leak=1 temp=24.5\n").points == (
        Point("leak", 1.0),
        Point("temp", 24.5),
    )
    assert decode_line("p", b'{"leak": 0}\n').points == (Point("leak", 0.0),)
    assert decode_line("p", b"leak=1,temp=2;hum=3").points[2] == Point("hum", 3.0)
    assert decode_line("p", b"emp=24.5 hu").error  # a half line after a reset
    assert decode_line("p", b'{"leak": ').error
    assert decode_line("p", b"\x00\x13garbage").error


def test_binding_converts_kinds_and_applies_offset() -> None:
    temp = Binding("t1", "temperature", ("*.Temperature",), offset=-0.5)
    reading = temp.reading(24.5, ts=1.0, source="s")
    assert (reading.value, reading.unit, reading.fault) == (24.0, "°C", None)
    assert temp.pick({"AM2301.Temperature": 1.0}) == ("AM2301.Temperature", 1.0)
    with pytest.raises(ConversionError):
        temp.reading("hot", ts=1.0, source="s")
    with pytest.raises(ConversionError):
        temp.reading(float("nan"), ts=1.0, source="s")
    leak = Binding("l1", "water_leak", ("leak",), value_map={"wet": True, "dry": False})
    assert leak.reading("wet", ts=1.0, source="s").value is True
    assert leak.reading(0.0, ts=1.0, source="s").value is False
    assert Binding("s", "smoke", ("smoke_state",)).reading("alarm", ts=1, source="").value is True
    with pytest.raises(ConversionError):
        leak.reading(7.0, ts=1.0, source="s")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("temperature", -127.0),
        ("temperature", -40.0),
        ("temperature", 850.0),
        ("temperature", 126.0),
        ("humidity", 100.5),
        ("humidity", -1.0),
        ("battery", 255.0),
    ],
)
def test_impossible_values_become_faults_not_values(kind: str, value: float) -> None:
    reading = Binding("x", kind, ("v",)).reading(value, ts=1.0, source="s")
    assert reading.value is None
    assert reading.fault


def test_plausible_values_are_not_faults() -> None:
    assert value_fault("temperature", -39.9) is None
    assert value_fault("temperature", 85.0) is None
    assert value_fault("humidity", 0.0) is None
    assert register_fault(0xFFFF) and register_fault(0x7FFF)
    assert register_fault(0xFF33) is None
