"""What a person may ask of the alarm engine (ack, silence, unsilence): checked the same way
whether the CLI or the web dashboard asks, and carried by the same command-row arguments.

The engine applies the rows (sentinel/alarm/actions.py) and checks the silence limits again,
since anyone who can write the database could leave a row; checking here first tells the
person why at once, and writes nothing.
"""

from __future__ import annotations

from typing import Any

from sentinel.alarm.actor import Actor
from sentinel.alarm.silence import silence_limit, silence_number
from sentinel.component_watch import SENSOR_PREFIX as COMPONENT_PREFIX
from sentinel.config import Config, format_duration, parse_duration
from sentinel.replication import sensor_id

# the engine's results (sentinel/alarm/actions.py) that mean the command changed nothing;
# "already acknowledged by ..." is not one: the alarm is acknowledged, as asked
REFUSALS = (
    "no such active alarm",
    "not firing",
    "rejected",
    "expired before",
    "unknown command",
    "no active silence matched",
)

EXIT_FAILURE = 1
EXIT_USAGE = 2


class Refused(ValueError):
    """A request refused before any row is written: one sentence for the person, and the
    CLI's exit code for it (2: bad arguments, 1: nothing by that name)."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def refusal(result: str) -> bool:
    """True when the engine's result says the command changed nothing."""
    return result.startswith(REFUSALS)


def ack_args(alarm_id: str, reason: str, actor: Actor) -> dict[str, Any]:
    return {"alarm": alarm_id, "reason": reason, **actor.as_args()}


def silence_duration(config: Config, text: Any, *, everything: bool) -> float:
    """`text` ("2h") in seconds, within [alarms] max_silence (max_silence_all for every
    alarm); raises Refused."""
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if duration <= 0:
        raise Refused("a silence needs a duration above zero")
    limit, key = silence_limit(config.alarms, everything=everything)
    if duration > limit:
        what = "a silence of every alarm" if everything else "a silence"
        raise Refused(
            f"{what} may last at most {format_duration(limit)} (set by [alarms] {key} in "
            "the config); silence again when it ends if the work takes longer"
        )
    return duration


def known_subjects(config: Config) -> set[str]:
    """What a silence may name: sensors, replications and named combined rules."""
    known = {s.id for s in config.sensors}
    known |= {sensor_id(r.name) for r in config.replication}
    known |= {r.name for r in config.rules if r.all is not None and r.name}
    return known


def check_subject(config: Config, sensor: str | None) -> None:
    """Raises Refused (exit 1) for a sensor the config does not name (None: every alarm)."""
    # component:<name> ids come from the supervisor at run time, not from the config
    if (
        sensor is not None
        and sensor not in known_subjects(config)
        and not sensor.startswith(COMPONENT_PREFIX)
    ):
        raise Refused(f"no such sensor {sensor!r} in the config", EXIT_FAILURE)


def silence_args(
    config: Config, sensor: str | None, duration: float, reason: str, actor: Actor
) -> dict[str, Any]:
    """The row's arguments; raises Refused as check_subject does."""
    check_subject(config, sensor)
    return {"sensor": sensor, "duration": duration, "reason": reason, **actor.as_args()}


def unsilence_target(config: Config, target: str | int | None) -> str | int | None:
    """A sensor id, a silence number ("3", "#3", "S3" as messages show it) or None (all)."""
    if isinstance(target, str) and target not in known_subjects(config):
        return silence_number(target) or target
    return target


def unsilence_args(target: str | int | None, reason: str, actor: Actor) -> dict[str, Any]:
    return {"target": target, "reason": reason, **actor.as_args()}
