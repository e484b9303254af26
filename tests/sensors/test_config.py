"""The sensor config models and their wiring into sources."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sensors.line import LineSource
from sensors.modbus import ModbusSource
from sensors.mqtt import MqttSource
from sentinel.config import Config
from sentinel.config.root import SiteConfig
from sentinel.config.sensors import ModbusBusConfig, MqttConfig, SensorConfig, SerialPortConfig
from sentinel.sources import build_sources


def test_unknown_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        SensorConfig(id="a", kind="water_leak", topic="zigbee2mqtt/a", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        MqttConfig(hostname="x")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": "zigbee2mqtt"}, "needs a topic"),
        ({"format": "line", "source": "mqtt"}, "[[serial]] port"),
        ({"format": "modbus", "source": "bus1"}, "needs device"),
        ({"format": "modbus", "source": "bus1", "device": 1}, "exactly one of preset"),
        ({"format": "json", "topic": "a/#"}, "wildcards"),
        ({"format": "json", "topic": "a", "preset": "xy-md02"}, "only for format"),
        ({"id": "has space", "format": "json", "topic": "a"}, "pattern"),
        ({"kind": "leak", "topic": "zigbee2mqtt/a"}, "kind 'leak' is not one of water_leak"),
    ],
)
def test_bad_bindings_have_clear_errors(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        SensorConfig(**{"id": "s1", "kind": "temperature", **fields})  # type: ignore[arg-type]


def test_mqtt_password_is_secret_and_checks() -> None:
    cfg = MqttConfig(username="u", password="hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.model_dump())
    with pytest.raises(ValidationError, match="password needs username"):
        MqttConfig(password="x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="key_file needs cert_file"):
        MqttConfig(key_file="/k.pem")  # type: ignore[arg-type]


def test_generic_register_binding() -> None:
    sensor = SensorConfig.model_validate(
        {
            "id": "r",
            "kind": "humidity",
            "format": "modbus",
            "source": "b",
            "device": 3,
            "register": 6,
            "function": 3,
            "scale": 0.1,
        }
    )
    assert sensor.reg == 6
    with pytest.raises(ValidationError):
        SensorConfig.model_validate({**sensor.model_dump(by_alias=True), "register": 70000})


def test_durations_and_enums() -> None:
    bus = ModbusBusConfig(name="bus1", port="/dev/ttyUSB0", interval="250ms", timeout="2s")  # type: ignore[arg-type]
    assert (bus.interval, bus.timeout) == (0.25, 2.0)
    with pytest.raises(ValidationError):
        ModbusBusConfig(name="bus1", port="/dev/x", parity="X")  # type: ignore[arg-type]
    assert SerialPortConfig(name="b", url="socket://10.0.0.5:4001").baudrate == 9600


def sensors() -> list[SensorConfig]:
    return [
        SensorConfig(id="leak", kind="water_leak", topic="zigbee2mqtt/leak1"),
        SensorConfig(id="t", kind="temperature", format="tasmota", topic="rack1"),
        SensorConfig(id="line-leak", kind="water_leak", format="line", source="board", field="l"),
        SensorConfig(
            id="probe",
            kind="temperature",
            format="modbus",
            source="bus1",
            device=1,
            preset="xy-md02",
        ),
    ]


def test_build_sources_one_per_transport() -> None:
    config = Config(
        mqtt=MqttConfig(),
        serial=[SerialPortConfig(name="board", url="/dev/ttyACM0")],
        modbus=[ModbusBusConfig(name="bus1", port="/dev/ttyUSB0")],
        sensors=sensors(),
    )
    sources = build_sources(config)
    assert [type(s) for s in sources] == [MqttSource, MqttSource, LineSource, ModbusSource]
    assert [s.name for s in sources] == ["mqtt", "mqtt-safety", "serial:board", "modbus:bus1"]
    telemetry, safety = sources[0], sources[1]
    assert isinstance(telemetry, MqttSource) and isinstance(safety, MqttSource)
    # the leak sensor has a connection of its own, which does not announce sentinel
    assert telemetry.topics == ["tele/rack1/LWT", "tele/rack1/SENSOR"]
    assert safety.topics == ["zigbee2mqtt/leak1", "zigbee2mqtt/leak1/availability"]
    assert telemetry.announce and not safety.announce
    assert safety.settings.client_id == telemetry.settings.client_id + "-safety"


def test_one_mqtt_connection_when_all_sensors_are_of_one_group() -> None:
    only_leak = Config(mqtt=MqttConfig(), sensors=sensors()[:1])
    [source] = build_sources(only_leak)
    assert source.name == "mqtt" and source.announce


def test_dangling_source_names_are_config_errors() -> None:
    with pytest.raises(ValidationError, match=r"sensors\[0\]\.source: 'board' is not a \[\[serial"):
        Config(sensors=sensors()[2:3])
    with pytest.raises(ValidationError, match=r"sensors\[0\]\.source: 'bus1' is not a \[\[modbus"):
        Config(sensors=sensors()[3:4])
    with pytest.raises(ValidationError, match=r"needs an \[mqtt\] section"):
        Config(sensors=sensors()[:1])
    assert build_sources(Config()) == []


def test_each_mqtt_connection_has_a_client_id_fixed_by_the_site() -> None:
    """The broker keeps sentinel's sessions under these ids: they must not change between
    restarts, and must differ between connections and between sites sharing a broker."""

    def ids(site: str, **mqtt: str) -> list[str]:
        config = Config(site=SiteConfig(name=site), mqtt=MqttConfig(**mqtt), sensors=sensors()[:2])
        return [s.settings.client_id for s in build_sources(config) if isinstance(s, MqttSource)]

    first = ids("전산실")
    assert first == ids("전산실")  # the same config gives the same ids at every start
    assert len(set(first)) == 2 and all(i.startswith("sentinel-") for i in first)
    assert set(first).isdisjoint(ids("보건소 전산실"))
    assert ids("x", client_id="room-1") == ["room-1", "room-1-safety"]
