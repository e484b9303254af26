"""Plays a scenario to a real MQTT broker as Zigbee2MQTT or Tasmota devices would."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import aiomqtt

from sensors.sim.scenario import Event, build_scenario

FORMATS = ("zigbee2mqtt", "tasmota")
Z2M_BASE = "zigbee2mqtt"


def messages(event: Event, fmt: str) -> list[tuple[str, bytes, bool]]:
    """(topic, payload, retain) for one event in the given device shape."""
    if fmt == "zigbee2mqtt":
        if event.online is not None:
            state = "online" if event.online else "offline"
            topic = f"{Z2M_BASE}/{event.device}/availability"
            return [(topic, json.dumps({"state": state}).encode(), True)]
        payload = {**event.fields, "linkquality": 120}
        return [(f"{Z2M_BASE}/{event.device}", json.dumps(payload).encode(), False)]
    if fmt == "tasmota":
        if event.online is not None:
            word = b"Online" if event.online else b"Offline"
            return [(f"tele/{event.device}/LWT", word, True)]
        body: dict[str, object] = {"Time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")}
        climate = {
            key.capitalize(): value
            for key, value in event.fields.items()
            if key in ("temperature", "humidity")
        }
        if climate:
            body["AM2301"] = climate
            body["TempUnit"] = "C"
        for key in ("water_leak", "smoke"):
            if key in event.fields:
                body["Switch1"] = "ON" if event.fields[key] else "OFF"
        return [(f"tele/{event.device}/SENSOR", json.dumps(body).encode(), False)]
    raise ValueError(f"unknown device format {fmt!r}; expected one of {FORMATS}")


async def play(
    events: Iterable[Event], client: aiomqtt.Client, *, fmt: str, speed: float = 1.0
) -> None:
    """Publishes events at their times divided by `speed` on a connected client."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    start = time.monotonic()
    for event in sorted(events, key=lambda e: e.at):
        delay = event.at / speed - (time.monotonic() - start)
        if delay > 0:
            await asyncio.sleep(delay)
        for topic, payload, retain in messages(event, fmt):
            await client.publish(topic, payload, qos=1, retain=retain)


async def run_scenario(
    name: str,
    host: str,
    port: int,
    *,
    speed: float = 1.0,
    fmt: str = "zigbee2mqtt",
    **params: float,
) -> None:
    """Connects to the broker and plays scenario `name` to the end (for `sentinel demo`)."""
    events = build_scenario(name, **params)
    if fmt not in FORMATS:
        raise ValueError(f"unknown device format {fmt!r}; expected one of {FORMATS}")
    async with aiomqtt.Client(host, port, identifier=f"sentinel-sim-{name}") as client:
        await play(events, client, fmt=fmt, speed=speed)
