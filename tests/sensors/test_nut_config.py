"""[[nut]] servers and format = "nut" sensors: clear refusals, wiring to one source per
server, the password kept secret, and the UPS pages' wording in both languages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alerts import reasons
from alerts.templates import KIND_LABELS
from sensors.nut import NutSource
from sentinel.alarm.rules import RuleBook
from sentinel.config import Config
from sentinel.config.rules import AlarmsConfig
from sentinel.config.sensors import NutConfig, SensorConfig
from sentinel.credentials import known_secrets
from sentinel.sources import build_sources

UPS = {
    "id": "ups-power",
    "kind": "ups_on_battery",
    "format": "nut",
    "source": "main",
    "ups": "rack",
}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ups": None}, "needs ups"),
        ({"source": "mqtt"}, "[[nut]] server"),
        ({"kind": "temperature"}, 'format = "nut" reads the kinds ups_on_battery'),
        ({"ups": "rack; LIST"}, "pattern"),
        ({"format": "json", "source": "mqtt", "topic": "a"}, "only it has one"),
    ],
)
def test_bad_nut_sensors_have_clear_errors(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        SensorConfig(**{**UPS, **fields})  # type: ignore[arg-type]


def test_a_sensor_naming_an_unknown_server_is_refused() -> None:
    with pytest.raises(
        ValidationError, match=r"'main' is not a \[\[nut\]\] server \(known: ups2\)"
    ):
        Config.model_validate({"nut": [{"name": "ups2"}], "sensors": [UPS]})


def test_one_source_per_server_with_its_settings_and_a_secret_password() -> None:
    config = Config.model_validate(
        {
            "nut": [
                {"name": "main", "port": 3500, "username": "mon", "password": "pw-9911-x"},
                {"name": "unused"},
            ],
            "sensors": [UPS, {**UPS, "id": "ups-lb", "kind": "ups_battery_low"}],
        }
    )
    (source,) = build_sources(config)
    assert isinstance(source, NutSource) and source.name == "nut:main"
    assert (source.port, source.interval, len(source.bindings)) == (3500, 2.0, 2)
    assert "pw-9911-x" not in repr(config.nut[0]) and "pw-9911-x" not in str(source.health())
    assert "pw-9911-x" in known_secrets(config)  # masked in every log line
    with pytest.raises(ValidationError, match="password needs username"):
        NutConfig(name="x", password="p")  # type: ignore[arg-type]


def test_default_rules_warn_on_battery_at_once_and_crit_later() -> None:
    book = RuleBook([], AlarmsConfig(), {})
    on_battery = book.rule("ups-power", "ups_on_battery")
    assert (on_battery.warn_high, on_battery.crit_high) == (1.0, 300.0)
    assert book.rule("ups-lb", "ups_battery_low").severity == "critical"
    assert book.rule("ups-rt", "ups_runtime").crit_low == 180.0
    assert book.rule("ups-rb", "ups_replace_battery").severity == "warning"
    assert book.rule("ups-ov", "ups_overload").severity == "warning"
    assert book.rule("ups-by", "ups_bypass").severity == "warning"
    assert book.rule("ups-off", "ups_output_off").severity == "critical"
    # the mains back for a minute before the all-clear: a flapping UPS is one alarm
    assert on_battery.policy.clear_hold == 60.0


@pytest.mark.parametrize(
    ("kind", "cause", "params", "ko", "en"),
    [
        (
            "ups_on_battery",
            reasons.HIGH,
            {"value": 1.0, "limit": 1.0, "unit": "s"},
            "정전: UPS 배터리로 운전 중",
            "mains power lost: UPS on battery",
        ),
        (
            "ups_on_battery",
            reasons.HIGH,
            {"value": 305.0, "limit": 300.0, "unit": "s"},
            "정전: UPS 배터리 운전 5분 5초 경과 (기준 5분)",
            "mains power lost: UPS on battery for 5 min 5 s (limit 5 min)",
        ),
        (
            "ups_runtime",
            reasons.LOW,
            {"value": 95.0, "limit": 180.0, "unit": "s"},
            "UPS 잔여 운전시간 1분 35초 (기준 3분)",
            "UPS runtime left 1 min 35 s (limit 3 min)",
        ),
        ("ups_battery_low", reasons.DETECTED, {}, "UPS 배터리 부족(곧 꺼짐)", "UPS battery low"),
        ("ups_bypass", reasons.DETECTED, {}, "UPS 바이패스", "UPS on bypass"),
        ("ups_output_off", reasons.DETECTED, {}, "UPS 출력 꺼짐", "UPS output off"),
        (
            "water_leak",
            reasons.LEAK_AT,
            {"distance": 12.4, "unit": "m"},
            "누수 감지 (위치 12.4 m)",
            "leak at 12.4 m",
        ),
    ],
)
def test_ups_wording(kind: str, cause: str, params: dict[str, object], ko: str, en: str) -> None:
    assert ko in (reasons.condition(cause, params, kind, KIND_LABELS["ko"], "ko") or "")
    assert en in (reasons.condition(cause, params, kind, KIND_LABELS["en"], "en") or "")
