"""Serial text-line source: Arduino-style boards writing JSON or `key=value` lines.

Opens the port with pyserial-asyncio-fast (any pyserial URL: a device path, `socket://`,
`rfc2217://`). An unplugged device (open fails, EOF, I/O error) makes the port's sensors
unavailable at once and is retried with backoff until it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import serial
import serial_asyncio_fast

from sensors.binding import Binding, ConversionError
from sensors.decode import decode_line
from sensors.reading import Reading, SourceHealth
from sensors.source import Backoff, RateLimitedLog

log = logging.getLogger("sensors.line")

# Longer lines than this are garbage (a stuck board), not data.
MAX_LINE = 4096


class LineSource:
    """One serial port carrying text lines; each sensor binds to a field of the lines."""

    def __init__(
        self,
        name: str,
        url: str,
        bindings: Iterable[Binding],
        *,
        baudrate: int = 9600,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.url = url
        self.baudrate = baudrate
        self.bindings = list(bindings)
        self._reconnect = (reconnect_min, reconnect_max)
        self._clock = clock
        self._health = SourceHealth()
        self._log = RateLimitedLog(log)
        self._online: bool | None = None
        self._unbound: set[str] = set()
        self._last_reject: str | None = None
        self._opens = 0

    def health(self) -> dict[str, Any]:
        self._health.details = {
            "port": self.url,
            "opens": self._opens,
            "last_reject": self._last_reject,
            "unbound_fields": sorted(self._unbound)[:20],
        }
        return self._health.as_dict()

    async def readings(self) -> AsyncIterator[Reading]:
        backoff = Backoff(*self._reconnect)
        while True:
            writer: asyncio.StreamWriter | None = None
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self.url, baudrate=self.baudrate, limit=MAX_LINE
                )
                self._opens += 1
                backoff.reset()
                self._health.state = "connected"
                self._health.last_error = None
                log.info("%s: opened %s", self.name, self.url)
                while True:
                    try:
                        line = await reader.readline()
                    except ValueError:
                        # StreamReader drops an over-long line and raises; the next one is fine.
                        self._reject(f"line longer than {MAX_LINE} bytes")
                        continue
                    if not line:
                        raise EOFError("end of file")
                    if not line.endswith(b"\n"):
                        self._reject("half line before the port closed")
                        raise EOFError("end of file")
                    for reading in self.handle(line):
                        yield reading
            except (OSError, serial.SerialException, EOFError) as exc:
                reason = str(exc) or type(exc).__name__
                self._health.state = "disconnected"
                self._health.last_error = f"port {self.url} unavailable: {reason}"
                self._log.warning("down", f"{self.name}: {self._health.last_error}; retrying")
                for reading in self._set_online(False):
                    yield reading
            finally:
                if writer is not None:
                    writer.close()
            await asyncio.sleep(backoff.next())

    def handle(self, line: bytes) -> list[Reading]:
        """Decodes one line into readings of the bound sensors (skipped and counted if garbled)."""
        now = self._clock()
        self._health.received += 1
        self._health.last_message_ts = now
        decoded = decode_line(self.url, line)
        if decoded.error:
            self._reject(decoded.error)
            return []
        points = {p.field: p.value for p in decoded.points}
        out = self._set_online(True)
        matched: set[str] = set()
        for binding in self.bindings:
            picked = binding.pick(points)
            if picked is None:
                continue
            matched.add(picked[0])
            try:
                out.append(binding.reading(picked[1], ts=now, source=self.name))
            except ConversionError as exc:
                self._reject(f"sensor {binding.sensor_id} field {picked[0]!r}: {exc}")
        if len(self._unbound) < 100:
            self._unbound.update(set(points) - matched)
        self._health.decoded += sum(1 for r in out if r.kind != "availability")
        return out

    def _set_online(self, online: bool) -> list[Reading]:
        if self._online == online:
            return []
        self._online = online
        now = self._clock()
        return [b.availability(online, ts=now, source=self.name) for b in self.bindings]

    def _reject(self, reason: str) -> None:
        self._health.rejected += 1
        self._last_reject = reason
        self._log.warning(f"reject:{reason[:30]}", f"{self.name}: skipped a line: {reason}")
