"""Building blocks every config section uses: strict models and human durations."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
# No timer, retention or silence in sentinel means anything beyond ten years: a longer
# value is a typo (an extra zero, "d" for "s") that would quietly disable what it times.
MAX_DURATION = 10 * 365 * 86400.0
_EXPECTED = 'expected a duration such as "30s", "5m" or "2h"'


def parse_duration(value: Any) -> float:
    """`"30s"`, `"5m"`, `"2h"`, `"1d"`, `"250ms"` or a bare number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{_EXPECTED}, found {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"a duration must be a finite number of seconds, found {value!r}")
        if seconds < 0:
            raise ValueError(f"a duration cannot be negative, found {value!r}")
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"{_EXPECTED}, found {value!r}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration must be at most 10 years (3650d), found {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The inverse for display: 3600 -> "1h", 90 -> "1m30s", 0.25 -> "250ms"."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts) or "0s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
# The models are strict (below), and strict pydantic takes a Path only as a Path object; a
# file path is the one string a TOML file may give for a non-string type.
ConfigPath = Annotated[Path, Field(strict=False)]


class Model(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable, and
    nothing is guessed. Strict types: `port = "1883"` or `enabled = "yes"` is an error, not
    silently converted. No NaN or infinity in any float (`offset = nan` would turn every
    reading into NaN, which compares false with every threshold: an alarm that never fires).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        strict=True,
        allow_inf_nan=False,
    )
