"""Which values are sensor faults rather than facts about the room.

A faulty probe must raise a sensor-fault alarm, never a fire or flood alarm: a DS18B20 that
lost power reads 85/-127, an unplugged Modbus probe answers 0xFFFF.
"""

from __future__ import annotations

from common.kinds import Kind

# Physical ranges of the probes used in server rooms (DHT22/SHT20/DS18B20 class).
TEMPERATURE_MIN = -40.0  # exclusive: -40.0 exactly is a DHT/DS18B20 error value
TEMPERATURE_MAX = 125.0
# Error values some probes send instead of a reading (DS18B20: -127 no device, 850 = 85.0 x10).
TEMPERATURE_SENTINELS = frozenset({-127.0, -40.0, 850.0})
# Raw 16-bit register values that Modbus probes answer when the sensing element is gone.
REGISTER_SENTINELS = frozenset({0xFFFF, 0x7FFF, 0x8000})
PERCENT_KINDS = frozenset({Kind.HUMIDITY, Kind.BATTERY})


def value_fault(kind: str, value: float) -> str | None:
    """Why `value` cannot be a real reading of `kind`, or None when it is plausible."""
    if kind == Kind.TEMPERATURE:
        if value in TEMPERATURE_SENTINELS:
            return f"temperature {value:g} °C is a probe error value"
        if not TEMPERATURE_MIN < value <= TEMPERATURE_MAX:
            return (
                f"temperature {value:g} °C outside the physical range "
                f"{TEMPERATURE_MIN:g}..{TEMPERATURE_MAX:g}"
            )
    elif kind in PERCENT_KINDS and not 0.0 <= value <= 100.0:
        return f"{kind} {value:g} % outside 0..100"
    return None


def register_fault(raw: int) -> str | None:
    """Why a raw unsigned 16-bit register is an error code, or None."""
    if raw in REGISTER_SENTINELS:
        return f"register error value 0x{raw:04X}"
    return None
