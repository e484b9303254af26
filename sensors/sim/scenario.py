"""Scripted scenarios: what each simulated device reports, and when (seconds from start)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The simulated room: a leak cable under the UPS, a rack temperature/humidity probe and a
# ceiling smoke detector. Device names are the Zigbee2MQTT friendly names / Tasmota topics.
LEAK_DEVICE = "leak-ups"
CLIMATE_DEVICE = "climate-rack1"
SMOKE_DEVICE = "smoke-ceiling"
DEVICES = (LEAK_DEVICE, CLIMATE_DEVICE, SMOKE_DEVICE)

BASE_TEMPERATURE = 23.5
BASE_HUMIDITY = 45.0


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a device says at `at` seconds: state fields, or its availability."""

    at: float
    device: str
    fields: dict[str, Any] = field(default_factory=dict)
    online: bool | None = None


def _baseline(at: float = 0.0) -> list[Event]:
    return [
        *(Event(at, device, online=True) for device in DEVICES),
        Event(at, LEAK_DEVICE, {"water_leak": False, "battery": 98.0, "battery_low": False}),
        Event(at, CLIMATE_DEVICE, {"temperature": BASE_TEMPERATURE, "humidity": BASE_HUMIDITY}),
        Event(at, SMOKE_DEVICE, {"smoke": False, "battery": 95.0, "battery_low": False}),
    ]


def leak(at: float = 5.0, dry_after: float = 30.0) -> list[Event]:
    """Normal room; water under the UPS at `at` s; dry again `dry_after` s later."""
    return [
        *_baseline(),
        Event(at, LEAK_DEVICE, {"water_leak": True, "battery": 98.0, "battery_low": False}),
        Event(at + dry_after, LEAK_DEVICE, {"water_leak": False, "battery": 98.0}),
    ]


def heat(
    at: float = 5.0, rate: float = 2.0, duration: float = 600.0, step: float = 10.0
) -> list[Event]:
    """The rack temperature rises `rate` °C per minute from `at` s for `duration` s."""
    events = _baseline()
    t = 0.0
    while t <= duration:
        temperature = round(BASE_TEMPERATURE + rate * t / 60.0, 2)
        events.append(
            Event(at + t, CLIMATE_DEVICE, {"temperature": temperature, "humidity": BASE_HUMIDITY})
        )
        t += step
    return events


def smoke(at: float = 5.0) -> list[Event]:
    """Smoke at the ceiling detector at `at` s."""
    return [*_baseline(), Event(at, SMOKE_DEVICE, {"smoke": True, "battery": 95.0})]


def silent(at: float = 5.0, step: float = 10.0, duration: float = 60.0) -> list[Event]:
    """The climate probe reports every `step` s, then says nothing more after `at` s."""
    events = _baseline()
    t = step
    while t < at:
        events.append(
            Event(t, CLIMATE_DEVICE, {"temperature": BASE_TEMPERATURE, "humidity": BASE_HUMIDITY})
        )
        t += step
    # The others keep talking, so only the silent sensor goes stale.
    t = step
    while t <= at + duration:
        events.append(Event(t, LEAK_DEVICE, {"water_leak": False, "battery": 98.0}))
        t += step
    return events


def offline(at: float = 5.0) -> list[Event]:
    """The leak sensor's availability goes offline at `at` s (retained, like Zigbee2MQTT)."""
    return [*_baseline(), Event(at, LEAK_DEVICE, online=False)]


SCENARIOS: dict[str, Callable[..., list[Event]]] = {
    "leak": leak,
    "heat": heat,
    "smoke": smoke,
    "silent": silent,
    "offline": offline,
}


def build_scenario(name: str, **params: float) -> list[Event]:
    """The events of scenario `name`, sorted by time; unknown names raise ValueError."""
    try:
        factory = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    return sorted(factory(**params), key=lambda e: e.at)
