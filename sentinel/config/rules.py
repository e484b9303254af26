"""Config for alarm rules ([[rules]]) and alarm defaults ([alarms]). Owned by the alarm engine.

A rule names a sensor, a kind, or both. Every field left out inherits: a sensor rule
overrides a kind rule, which overrides the built-in defaults (sentinel/alarm/rules.py).
A rule with `all = [...]` is a combined rule (e.g. smoke AND heat = fire) and needs a name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sentinel.config.hours import Hours
from sentinel.config.types import Duration, Model, format_duration

SeverityName = Literal["warning", "critical"]


class EscalationStep(Model):
    """Unacknowledged after `after`: also notify `tags` (the next level of people)."""

    after: Duration = Field(gt=0)
    tags: list[str] = Field(min_length=1)


class RuleTerm(Model):
    """One condition of a combined rule: a boolean sensor is True, or a value is past a limit."""

    sensor: str
    kind: str | None = None
    above: float | None = None
    below: float | None = None


class RuleConfig(Model):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]+$")
    sensor: str | None = None
    kind: str | None = None
    enabled: bool | None = None
    # boolean triggers (leak, smoke, ...) and combined rules fire at this severity
    severity: SeverityName | None = None
    warn_high: float | None = None
    crit_high: float | None = None
    warn_low: float | None = None
    crit_low: float | None = None
    hysteresis: float | None = Field(None, ge=0)
    trip_hold: Duration | None = None
    clear_hold: Duration | None = None
    rate_of_rise: float | None = Field(None, gt=0)  # units per minute, e.g. °C/min
    rate_window: Duration | None = Field(None, gt=0)
    rate_severity: SeverityName | None = None
    battery_below: float | None = Field(None, ge=0, le=100)
    latching: bool | None = None
    repeat: Duration | None = None  # 0 = no repeats
    escalation: list[EscalationStep] | None = None
    all: list[RuleTerm] | None = Field(None, min_length=1)
    # doors (issue 15): open outside these weekly hours (host local time), or open longer
    # than open_limit (0: no limit), is an alarm; e.g. allowed = ["Mon-Fri 08:00-19:00"]
    allowed: list[str] | None = None
    open_limit: Duration | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _selectors(self) -> RuleConfig:
        if self.all is not None:
            if self.name is None:
                raise ValueError('a combined rule (all = [...]) needs a name, e.g. name = "fire"')
            if self.sensor is not None or self.kind is not None:
                raise ValueError("a combined rule takes its sensors from `all`, not sensor/kind")
        elif self.sensor is None and self.kind is None:
            raise ValueError("a rule needs `sensor`, `kind` or `all`; found none of them")
        if self.allowed is not None:
            Hours.parse(self.allowed)  # a bad spec is a config error naming it
        if (self.allowed is not None or self.open_limit is not None) and self.kind not in (
            None,
            "door",
        ):
            raise ValueError(f'allowed and open_limit are for kind = "door", not {self.kind!r}')
        for low, high, what in (
            (self.warn_high, self.crit_high, "warn_high must be below crit_high"),
            (self.crit_low, self.warn_low, "crit_low must be below warn_low"),
        ):
            if low is not None and high is not None and low >= high:
                raise ValueError(f"{what}; found {low} and {high}")
        return self


class AlarmsConfig(Model):
    """[alarms]: notification timing and bookkeeping shared by every rule."""

    repeat_critical: Duration = 900.0
    repeat_warning: Duration = 3600.0
    escalation: list[EscalationStep] = []
    latching: bool = False
    # one garbled reading should not page anyone; a sensor that keeps failing should
    fault_hold: Duration = 60.0
    history_interval: Duration = 10.0
    history_keep: Duration = 90 * 86400.0
    flush_interval: Duration = Field(5.0, gt=0)
    # the longest `sentinel silence` accepts; a forgotten silence must end on its own
    max_silence: Duration = Field(24 * 3600.0, gt=0)
    max_silence_all: Duration = Field(4 * 3600.0, gt=0)  # `silence --all`: nothing pages

    @model_validator(mode="after")
    def _silence_limits(self) -> AlarmsConfig:
        if self.max_silence_all > self.max_silence:
            raise ValueError(
                "max_silence_all (silence --all) must not be longer than max_silence; found "
                f"{format_duration(self.max_silence_all)} and {format_duration(self.max_silence)}"
            )
        return self
