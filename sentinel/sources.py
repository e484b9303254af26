"""Turns the sensor sections of the config into leaf sources (sensors/).

One MQTT source for every MQTT-bound sensor, one line source per [[serial]] port, one
Modbus source per [[modbus]] bus, one NUT source per [[nut]] server. Ports, buses and
servers no sensor uses are not opened.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from common.kinds import SAFETY_KINDS
from sensors.binding import Binding
from sensors.line import LineSource
from sensors.modbus import ModbusBinding, ModbusSource, Register, modbus_binding
from sensors.mqtt import MqttBinding, MqttSettings, MqttSource, mqtt_binding
from sensors.nut import NutBinding, NutSource, nut_binding
from sensors.source import Source
from sentinel.config import Config
from sentinel.config.sensors import (
    MQTT_FORMATS,
    ModbusBusConfig,
    MqttConfig,
    NutConfig,
    SensorConfig,
    SerialPortConfig,
)


def default_client_id(site_name: str) -> str:
    """A client id that stays the same while the site's name does, and differs between
    sites sharing a broker (two clients with one id would keep disconnecting each other and
    share one queue): `sentinel-<ascii slug>-<6 hex digits of the name's hash>`."""
    slug = re.sub(r"[^a-z0-9]+", "-", site_name.lower()).strip("-")[:32].strip("-")
    digest = hashlib.blake2b(site_name.encode("utf-8"), digest_size=3).hexdigest()
    return f"sentinel-{slug or 'site'}-{digest}"


def mqtt_settings(mqtt: MqttConfig, site_name: str = "server room") -> MqttSettings:
    return MqttSettings(
        host=mqtt.host,
        port=mqtt.port,
        client_id=mqtt.client_id or default_client_id(site_name),
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password else None,
        tls=mqtt.tls,
        ca_file=str(mqtt.ca_file) if mqtt.ca_file else None,
        cert_file=str(mqtt.cert_file) if mqtt.cert_file else None,
        key_file=str(mqtt.key_file) if mqtt.key_file else None,
        keepalive=mqtt.keepalive,
        publish_prefix=mqtt.publish_prefix,
        reconnect_min=mqtt.reconnect_min,
        reconnect_max=mqtt.reconnect_max,
    )


def to_mqtt_binding(sensor: SensorConfig) -> MqttBinding:
    assert sensor.topic is not None  # the config model requires it for MQTT formats
    return mqtt_binding(
        sensor.id,
        sensor.kind,
        sensor.format,
        sensor.topic,
        field=sensor.field,
        availability_topic=sensor.availability_topic,
        offset=sensor.offset,
        value_map=dict(sensor.value_map),
    )


def to_line_binding(sensor: SensorConfig) -> Binding:
    return Binding(
        sensor.id,
        sensor.kind,
        (sensor.field or sensor.kind,),
        sensor.offset,
        dict(sensor.value_map),
    )


def to_modbus_binding(sensor: SensorConfig) -> ModbusBinding:
    assert sensor.device is not None  # the config model requires it for format "modbus"
    register = None
    if sensor.reg is not None:
        register = Register(sensor.reg, sensor.function, sensor.scale, sensor.signed)
    return modbus_binding(
        sensor.id,
        sensor.kind,
        sensor.device,
        preset=sensor.preset,
        field=sensor.field,
        register=register,
        offset=sensor.offset,
        leak_distance=sensor.leak_distance,
    )


def mqtt_sources(
    settings: MqttSettings, bindings: list[MqttBinding], kwargs: dict[str, Any]
) -> list[Source]:
    """Leak and smoke sensors get their own broker connection when other sensors share the
    broker: one connection is a FIFO, and the broker drops QoS 0 messages for a client that
    falls behind, so a flooding telemetry device must not sit in front of a leak.

    Each connection has a client id of its own (the safety one adds `-safety`), fixed across
    restarts, so each keeps its own persistent session on the broker."""
    safety = [b for b in bindings if b.binding.kind in SAFETY_KINDS]
    telemetry = [b for b in bindings if b.binding.kind not in SAFETY_KINDS]
    if not safety or not telemetry:
        return [MqttSource(settings, bindings, **kwargs)]
    return [
        MqttSource(settings, telemetry, **kwargs),
        MqttSource(
            replace(settings, client_id=f"{settings.client_id}-safety"),
            safety,
            name="mqtt-safety",
            announce=False,
            **kwargs,
        ),
    ]


def build_sources(config: Config, *, clock: Callable[[], float] | None = None) -> list[Source]:
    """The sources for every configured sensor. Config's validation has already refused a
    sensor naming a port or bus that is not configured, or MQTT sensors without [mqtt]."""
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    serial_ports: dict[str, SerialPortConfig] = {p.name: p for p in getattr(config, "serial", [])}
    buses: dict[str, ModbusBusConfig] = {b.name: b for b in getattr(config, "modbus", [])}
    mqtt_bindings: list[MqttBinding] = []
    line_bindings: dict[str, list[Binding]] = {}
    modbus_bindings: dict[str, list[ModbusBinding]] = {}
    nut_servers: dict[str, NutConfig] = {n.name: n for n in getattr(config, "nut", [])}
    nut_bindings: dict[str, list[NutBinding]] = {}
    for sensor in config.sensors:
        if sensor.format in MQTT_FORMATS:
            mqtt_bindings.append(to_mqtt_binding(sensor))
        elif sensor.format == "line":
            line_bindings.setdefault(sensor.source, []).append(to_line_binding(sensor))
        elif sensor.format == "modbus":
            modbus_bindings.setdefault(sensor.source, []).append(to_modbus_binding(sensor))
        elif sensor.format == "nut":
            assert sensor.ups is not None  # the config model requires it for format "nut"
            nut_bindings.setdefault(sensor.source, []).append(
                nut_binding(sensor.id, sensor.kind, sensor.ups, offset=sensor.offset)
            )

    for output in getattr(config, "outputs", []):
        if output.kind == "modbus":  # its coil writes go through the bus's poll loop
            modbus_bindings.setdefault(output.bus, [])
    sources: list[Source] = []
    if config.mqtt is not None:
        # Even with no MQTT sensors, sentinel publishes its availability and alarms.
        sources += mqtt_sources(mqtt_settings(config.mqtt, config.site.name), mqtt_bindings, kwargs)
    for name, bindings in line_bindings.items():
        port = serial_ports[name]
        sources.append(
            LineSource(
                f"serial:{name}",
                port.url,
                bindings,
                baudrate=port.baudrate,
                reconnect_min=port.reconnect_min,
                reconnect_max=port.reconnect_max,
                **kwargs,
            )
        )
    for name, mbs in modbus_bindings.items():
        bus = buses[name]
        sources.append(
            ModbusSource(
                f"modbus:{name}",
                bus.port,
                mbs,
                baudrate=bus.baudrate,
                parity=bus.parity,
                stopbits=bus.stopbits,
                bytesize=bus.bytesize,
                interval=bus.interval,
                timeout=bus.timeout,
                **kwargs,
            )
        )
    for name, nbs in nut_bindings.items():
        server = nut_servers[name]
        sources.append(
            NutSource(
                f"nut:{name}",
                server.host,
                server.port,
                nbs,
                username=server.username,
                password=server.password.get_secret_value() if server.password else None,
                interval=server.interval,
                timeout=server.timeout,
                **kwargs,
            )
        )
    return sources
