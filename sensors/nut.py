"""NUT source: polls the UPSes of one Network UPS Tools server (upsd) in turn.

Uses aionut (the asyncio NUT client Home Assistant's NUT integration is built on): one
persistent connection, `LIST VAR <ups>` per UPS per interval. A UPS upsd cannot speak for
(upsd down or refusing, `ERR DATA-STALE`, `ERR DRIVER-NOT-CONNECTED`, `ERR UNKNOWN-UPS`)
for `LOST_AFTER` polls in a row makes its sensors unavailable (the engine's "lost" alarm);
the other UPSes go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aionut import AIONUTClient, NUTError

from common.kinds import Kind
from sensors.binding import Binding, ConversionError
from sensors.reading import Reading, SourceHealth
from sensors.source import RateLimitedLog

log = logging.getLogger("sensors.nut")

# The ups.status flag each boolean kind is true on (NUT's docs/new-drivers.txt).
FLAGS: dict[str, str] = {
    Kind.UPS_BATTERY_LOW: "LB",
    Kind.UPS_REPLACE_BATTERY: "RB",
    Kind.UPS_OVERLOAD: "OVER",
    Kind.UPS_BYPASS: "BYPASS",
    # the UPS feeds nothing: the equipment on it is dark (a host elsewhere can still page)
    Kind.UPS_OUTPUT_OFF: "OFF",
}
# The NUT variable each measured kind is.
VARIABLES: dict[str, str] = {
    Kind.UPS_CHARGE: "battery.charge",
    Kind.UPS_RUNTIME: "battery.runtime",
    Kind.UPS_INPUT_VOLTAGE: "input.voltage",
    Kind.UPS_LOAD: "ups.load",
}
ON_BATTERY = "OB"
# upsmon's forced shutdown: the hosts on this UPS are going down now, whatever the charge
# says (an operator's `upsmon -c fsd`, or a primary's own shutdown timer); as urgent as LB
FORCED_SHUTDOWN = "FSD"
# upsd's ups.status while a driver starts and has no data yet
WAITING = "WAIT"
# Failed polls in a row before a UPS's sensors are lost: upsd restarting (a package upgrade,
# an edited upsd.conf) or a USB driver's moment of DATA-STALE is common and over by the next
# poll; one failure would page "sensor lost" and its all-clear for every sensor each time.
LOST_AFTER = 3


@dataclass(frozen=True, slots=True)
class NutBinding:
    """A sensor on a UPS: its kind says which flag or variable it reads."""

    binding: Binding
    ups: str

    def __post_init__(self) -> None:
        kind = self.binding.kind
        if kind != Kind.UPS_ON_BATTERY and kind not in FLAGS and kind not in VARIABLES:
            raise ValueError(f"a NUT sensor cannot read kind {kind!r}")


def nut_binding(sensor_id: str, kind: str, ups: str, *, offset: float = 0.0) -> NutBinding:
    return NutBinding(Binding(sensor_id, kind, (), offset), ups)


def nut_error(exc: BaseException) -> str:
    """upsd's own word for what is wrong (`DATA-STALE`), or the connection's error; aionut
    words a refusal as "Error running: LIST VAR ups: ERR <WORD>" and names no password."""
    text = str(exc) or type(exc).__name__
    _, err, word = text.rpartition("ERR ")
    return word.strip() if err else text


class NutSource:
    """One upsd and the UPSes it serves. Implements `sensors.source.Source`."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        bindings: Iterable[NutBinding],
        *,
        username: str | None = None,
        password: str | None = None,
        interval: float = 2.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        lost_after: int = LOST_AFTER,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.bindings = list(bindings)
        self.interval = interval
        self.timeout = timeout
        self._login = (username, password)
        self._clock = clock
        self._health = SourceHealth()
        self._log = RateLimitedLog(log)
        self._ups: dict[str, list[NutBinding]] = {}
        for nb in self.bindings:
            self._ups.setdefault(nb.ups, []).append(nb)
        self._online: dict[str, bool] = {}
        self._errors: dict[str, str] = {}
        self._lost_after = lost_after
        self._failures: dict[str, int] = {}  # failed polls in a row, per UPS
        # when each UPS was first seen on battery (this run's clock), for the seconds on it
        self._on_battery_since: dict[str, float] = {}
        self._polls = 0

    def health(self) -> dict[str, Any]:
        self._health.details = {
            "server": f"{self.host}:{self.port}",
            "ups": sorted(self._ups),
            "ups_down": {u: self._errors.get(u, "") for u, up in self._online.items() if not up},
            "on_battery": sorted(self._on_battery_since),
            "polls": self._polls,
        }
        return self._health.as_dict()

    async def readings(self) -> AsyncIterator[Reading]:
        username, password = self._login
        client = AIONUTClient(
            self.host, self.port, username, password, timeout=self.timeout, persistent=True
        )
        try:
            while True:
                started = time.monotonic()
                for ups in self._ups:
                    for reading in await self.poll_ups(client, ups):
                        yield reading
                self._polls += 1
                up = [self._online.get(u) for u in self._ups]
                self._health.state = "connected" if any(up) else "disconnected"
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            client.shutdown()

    async def poll_ups(self, client: AIONUTClient, ups: str) -> list[Reading]:
        """Reads one UPS; when upsd cannot speak for it, its sensors (only) become lost."""
        try:
            values = await client.list_vars(ups)
        except (NUTError, OSError, TimeoutError) as exc:
            self._health.rejected += 1
            reason = nut_error(exc)
            self._errors[ups] = reason
            self._health.last_error = f"UPS {ups}@{self.host}:{self.port}: {reason}"
            self._log.warning(f"ups:{ups}:{reason}", f"{self.name}: {self._health.last_error}")
            failures = self._failures[ups] = self._failures.get(ups, 0) + 1
            if failures < self._lost_after and self._online.get(ups) is not False:
                return []
            return self._set_online(ups, False)
        self._failures.pop(ups, None)
        now = self._clock()
        self._health.received += 1
        self._health.last_message_ts = now
        flags = values.get("ups.status", "").split()
        if flags == [WAITING]:
            # the driver has not read the UPS yet: nothing to say; a driver stuck here
            # leaves the sensors silent, and max_age makes them lost
            return []
        out = self._set_online(ups, True)
        if ON_BATTERY in flags:
            self._on_battery_since.setdefault(ups, now)
        else:
            self._on_battery_since.pop(ups, None)
        for nb in self._ups[ups]:
            reading = self._reading(nb, values, flags, now)
            if reading is not None:
                out.append(reading)
                self._health.decoded += 1
        if all(self._online.values()):
            self._health.last_error = None
        return out

    def _reading(
        self, nb: NutBinding, values: Mapping[str, str], flags: list[str], now: float
    ) -> Reading | None:
        b = nb.binding
        if b.kind == Kind.UPS_ON_BATTERY or b.kind in FLAGS:
            if "ups.status" not in values:
                return Reading(
                    b.sensor_id, b.kind, None, b.unit, now, self.name, "UPS reports no ups.status"
                )
            if b.kind == Kind.UPS_BATTERY_LOW:
                low = {FLAGS[Kind.UPS_BATTERY_LOW], FORCED_SHUTDOWN}
                return self._convert(b, bool(low & set(flags)), now)
            if b.kind in FLAGS:
                return self._convert(b, FLAGS[b.kind] in flags, now)
            since = self._on_battery_since.get(nb.ups)
            # counted from 1 on the first poll that sees OB: "on battery" is never 0 s, so
            # a threshold of 1 s warns at once and crit_high says how long is too long
            seconds = 0.0 if since is None else max(1.0, float(round(now - since)))
            return self._convert(b, seconds, now)
        variable = VARIABLES[b.kind]
        raw = values.get(variable)
        if raw is None:
            return Reading(
                b.sensor_id, b.kind, None, b.unit, now, self.name, f"UPS reports no {variable}"
            )
        try:
            return b.reading(raw, ts=now, source=self.name)
        except ConversionError as exc:
            # a fault now (a sensor-fault warning), not silence until max_age calls it lost
            # while its last good value, or its alarm, stands
            self._health.rejected += 1
            fault = f"UPS reports {variable} = {raw[:40]!r}: {exc}"
            return Reading(b.sensor_id, b.kind, None, b.unit, now, self.name, fault)

    def _convert(self, b: Binding, value: float | bool | str, now: float) -> Reading | None:
        try:
            return b.reading(value, ts=now, source=self.name)
        except ConversionError as exc:
            self._health.rejected += 1
            self._log.warning(f"conv:{b.sensor_id}", f"{self.name}: sensor {b.sensor_id}: {exc}")
            return None

    def _set_online(self, ups: str, online: bool) -> list[Reading]:
        if online:
            self._errors.pop(ups, None)
        if self._online.get(ups) == online:
            return []
        self._online[ups] = online
        now = self._clock()
        return [nb.binding.availability(online, ts=now, source=self.name) for nb in self._ups[ups]]
