"""Sirens and beacons ([[outputs]]): on while a critical alarm fires, off once each critical
alarm is acknowledged, resolved or silenced.

Silenced counts as off: a silence is a person saying "we know" (maintenance, a known leak
being mopped), and a siren that kept sounding through it would be switched off at the wall,
and then stay off for the next disaster. A warning never sounds it; `kinds` narrows which
critical alarms do (a replication or crash-loop page need not wake the building).

Each output is a supervised component. It follows the engine's active alarms (the same list
the status and the MQTT alarm topic show), writes only on change, and writes the same state
again every `reassert` seconds: a relay that lost power forgets it. It sets the right state
when it starts (off when nothing critical fires). A write that fails is tried again every
`retry` seconds and shown in `sentinel status` (the component's health); after
`alarm_after` failures in a row the pseudo-sensor `output:<name>` raises an alarm (kind
`output`, a warning by default) so a person knows the siren would not sound, resolved by
the next write that works.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from alerts import reasons
from common.kinds import OUTPUT_KIND
from sensors.reading import Reading
from sensors.source import RateLimitedLog
from sensors.switch import ModbusCoil, MqttSwitch, Switch, SwitchError
from sentinel.config import Config
from sentinel.config.outputs import OutputConfig

log = logging.getLogger("sentinel.outputs")

# How often the wanted state is compared with the engine's alarms; the engine ticks at 0.5 s.
FOLLOW_INTERVAL = 0.25
SENSOR_PREFIX = "output:"

ActiveAlarms = Callable[[], list[dict[str, Any]]]
Submit = Callable[[Reading], Awaitable[None]]


def sounding(alarms: list[dict[str, Any]], kinds: list[str] | None = None) -> bool:
    """Whether a siren should sound for these active alarms (see the module's text); `kinds`
    limits it to critical alarms of those kinds."""
    return any(
        a.get("severity") == "critical"
        and a.get("state") == "firing"
        and not a.get("silenced")
        and a.get("kind") != OUTPUT_KIND  # a failing siren cannot sound for itself
        and (kinds is None or a.get("kind") in kinds)
        for a in alarms
    )


class Output:
    """One siren or beacon following the alarms. A `sentinel.supervisor.Component`."""

    def __init__(
        self,
        config: OutputConfig,
        switch: Switch,
        active_alarms: ActiveAlarms,
        submit: Submit,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.switch = switch
        self.name = SENSOR_PREFIX + config.name
        self._alarms = active_alarms
        self._submit = submit
        self._clock = clock
        self._monotonic = monotonic
        self._written: bool | None = None  # what the device last took; None: unknown
        self._wanted: bool | None = None
        self._next_write = float("-inf")
        self._retry_at = float("-inf")
        self.failures = 0  # in a row
        self.last_error: str | None = None
        self.writes = 0
        self.last_write: float | None = None
        # the previous run may have left the alarm open: the first good write resolves it
        self._alarm_may_be_on = True
        # a dead relay is tried every `retry` seconds for as long as it is dead
        self._log = RateLimitedLog(log)

    async def run(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(FOLLOW_INTERVAL)

    async def step(self) -> None:
        """Compare and write once if due (the loop's body; tests call it directly)."""
        want = sounding(self._alarms(), self.config.kinds)
        self._wanted = want
        now = self._monotonic()
        changed = want != self._written and now >= self._retry_at
        if not changed and now < self._next_write:
            return
        try:
            await self.switch.set(want)
        except SwitchError as exc:
            await self._failed(want, str(exc), now)
            return
        if want != self._written:
            log.info(
                "%s switched %s (%s)", self.name, "on" if want else "off", self.switch.describe()
            )
        self._written = want
        self.writes += 1
        self.last_write = self._clock()
        self._next_write = now + self.config.reassert
        self._retry_at = float("-inf")
        self.failures = 0
        self.last_error = None
        if self._alarm_may_be_on:
            self._alarm_may_be_on = False
            await self._submit(self._reading(False))

    async def _failed(self, want: bool, error: str, now: float) -> None:
        self._written = None
        self.failures += 1
        self.last_error = error
        self._retry_at = self._next_write = now + self.config.retry
        self._log.warning(
            "write",
            f"{self.name}: cannot switch {'on' if want else 'off'} ({self.switch.describe()}), "
            f"failure {self.failures} in a row: {error}",
        )
        if self.failures >= self.config.alarm_after:
            self._alarm_may_be_on = True
            await self._submit(self._reading(True))

    def _reading(self, failing: bool) -> Reading:
        params = {"name": self.config.name, "failures": self.failures, "error": self.last_error}
        detail = (
            f"output {self.config.name} cannot be switched: {self.failures} failures in a row; "
            f"last error: {self.last_error}"
        )
        return Reading(
            self.name,
            str(OUTPUT_KIND),
            failing,
            "",
            self._clock(),
            source="outputs",
            detail=detail if failing else None,
            cause=reasons.OUTPUT_FAILING if failing else None,
            params=params if failing else None,
        )

    def health(self) -> dict[str, Any]:
        state = {True: "on", False: "off", None: "unknown"}
        return {
            "target": self.switch.describe(),
            "wanted": state[self._wanted],
            "state": state[self._written],
            "failures": self.failures,
            "last_error": self.last_error,
            "writes": self.writes,
            "last_write": self.last_write,
        }


def build_outputs(
    config: Config,
    sources: list[Any],
    active_alarms: ActiveAlarms,
    submit: Submit,
    *,
    clock: Callable[[], float] = time.time,
) -> list[Output]:
    """One Output per [[outputs]]; a Modbus coil writes through its bus's source (built for
    it by sentinel/sources.py even when no sensor is on that bus)."""
    from sentinel.sources import mqtt_settings

    buses = {s.name: s for s in sources}
    outputs: list[Output] = []
    for out in config.outputs:
        switch: Switch
        if out.kind == "mqtt":
            assert config.mqtt is not None and out.topic is not None  # the config checked
            switch = MqttSwitch(
                out.name,
                mqtt_settings(config.mqtt, config.site.name),
                out.topic,
                out.payload_on,
                out.payload_off,
                out.retain,
                out.timeout,
            )
        else:
            assert out.bus is not None and out.device is not None and out.coil is not None
            switch = ModbusCoil(
                out.name, buses[f"modbus:{out.bus}"], out.bus, out.device, out.coil, out.timeout
            )
        outputs.append(Output(out, switch, active_alarms, submit, clock=clock))
    return outputs
