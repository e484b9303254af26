"""The AT dialogue with a modem (3GPP TS 27.005/27.007) over a serial line, synchronously:
Apprise runs a plugin's send in a worker thread, and one modem serves one send at a time.

The whole send has one deadline (the URL's `timeout`, below the sender's `send_timeout`):
Apprise cannot stop a plugin's thread, so a send the sender gave up on must end by itself,
or it would still go out after the retry had sent it again. A dropped line (the USB stick
pulled, the device node gone) and a reply that never comes become `ModemError`s whose text
says what happened (it is the channel's error in `sentinel status`), never what was sent
(no PIN).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Sequence

import serial

from alerts.modem.pdu import Pdu

log = logging.getLogger("sentinel.alerts.modem")

CTRL_Z = b"\x1a"
ESC = b"\x1b"
_FINAL_ERROR = re.compile(r"^(\+CMS ERROR|\+CME ERROR): *(.*)$|^ERROR$")
# +CREG/+CEREG <stat>: 1 registered (home), 5 registered (roaming)
_REGISTERED = frozenset({1, 5})
_REGISTRATION = {
    0: "not searching",
    2: "searching",
    3: "registration denied",
    4: "unknown",
}


class ModemError(Exception):
    """The modem refused, did not answer, or the line is gone; the text is safe to show."""


class Session:
    """One open serial line to the modem."""

    def __init__(self, line: serial.SerialBase, device: str, deadline: float, limit: float) -> None:
        self.line = line
        self.device = device
        self.deadline = deadline  # time.monotonic() by which the whole send must be done
        self.limit = limit  # the configured seconds, for messages
        self._buffer = b""

    @classmethod
    def open(cls, device: str, baud: int, deadline: float, limit: float) -> Session:
        try:
            line = serial.Serial(
                device,
                baudrate=baud,
                timeout=0.1,
                write_timeout=max(0.1, deadline - time.monotonic()),
            )
        except (OSError, serial.SerialException) as exc:
            raise ModemError(f"cannot open {device}: {_reason(exc)}") from None
        return cls(line, device, deadline, limit)

    def close(self) -> None:
        # the line may be gone already; the next send opens it afresh
        with contextlib.suppress(OSError, serial.SerialException):
            self.line.close()

    # -- the dialogue ------------------------------------------------------------------------

    def command(self, command: str, *, shown: str | None = None) -> list[str]:
        """Sends one command; its reply lines before OK. `shown` names it in errors (for
        a command that carries the PIN)."""
        self._write(command.encode("ascii") + b"\r")
        return self._until_final(shown or command)

    def _write(self, data: bytes) -> None:
        try:
            self.line.write(data)
            self.line.flush()
        except (OSError, serial.SerialException) as exc:
            raise ModemError(
                f"{self.device}: line dropped while writing ({_reason(exc)})"
            ) from None

    def _read(self, what: str) -> bytes:
        if time.monotonic() >= self.deadline:
            raise ModemError(
                f"{self.device}: no answer to {what} (the send may take {self.limit:g}s)"
            )
        try:
            chunk = self.line.read(self.line.in_waiting or 1)
        except (OSError, serial.SerialException) as exc:
            raise ModemError(
                f"{self.device}: line dropped during {what} ({_reason(exc)})"
            ) from None
        return bytes(chunk)

    def _until_final(self, what: str) -> list[str]:
        lines: list[str] = []
        while True:
            while b"\n" not in self._buffer:
                self._buffer += self._read(what)
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.decode("ascii", "replace").strip()
            if not line or line == what:  # a blank line, or the echo before ATE0 took
                continue
            if line == "OK":
                return lines
            failed = _FINAL_ERROR.match(line)
            if failed:
                raise ModemError(f"{self.device}: {what} answered {line}")
            lines.append(line)

    def _prompt(self, what: str) -> None:
        """Waits for AT+CMGS's "> " (it has no line end); an error instead raises."""
        while True:
            head, found, rest = self._buffer.partition(b">")
            if found and b"\n" not in head.strip():
                self._buffer = rest.lstrip(b" ")
                return
            if b"\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n", 1)
                line = raw.decode("ascii", "replace").strip()
                if _FINAL_ERROR.match(line):
                    raise ModemError(f"{self.device}: {what} answered {line}")
                continue
            self._buffer += self._read(what)

    # -- what sentinel asks ------------------------------------------------------------------

    def prepare(self, pin: str | None) -> int | None:
        """Echo off, SIM unlocked, registered on a network, PDU mode; returns the signal
        (CSQ 0-31, None if unknown) for the log. Raises ModemError with the reason."""
        self.command("AT")
        self.command("ATE0")
        state = _value(self.command("AT+CPIN?"), "+CPIN:")
        if state != "READY":
            if state == "SIM PIN" and pin:
                self.command(f"AT+CPIN={pin}", shown="AT+CPIN=<pin>")
            elif state == "SIM PIN":
                raise ModemError(f"{self.device}: the SIM wants a PIN (add pin= to the URL)")
            else:
                raise ModemError(f"{self.device}: SIM not ready ({state or 'no answer'})")
        signal = self.signal()
        registered, detail = self.registration()
        if not registered:
            shown = "unknown" if signal is None else str(signal)
            raise ModemError(f"{self.device}: no network ({detail}, signal CSQ {shown})")
        self.command("AT+CMGF=0")
        return signal

    def signal(self) -> int | None:
        try:
            rssi = _value(self.command("AT+CSQ"), "+CSQ:").split(",")[0]
            value = int(rssi)
        except (ModemError, ValueError):
            return None
        return None if value == 99 else value

    def registration(self) -> tuple[bool, str]:
        """Registered on the circuit-switched (CREG) or, for LTE-only modems, EPS (CEREG)
        network."""
        detail = "no answer"
        for query, prefix in (("AT+CREG?", "+CREG:"), ("AT+CEREG?", "+CEREG:")):
            try:
                fields = _value(self.command(query), prefix).split(",")
                stat = int(fields[1] if len(fields) > 1 else fields[0])
            except ModemError:
                continue  # a modem without +CEREG
            except ValueError:
                continue
            if stat in _REGISTERED:
                return True, "registered"
            detail = _REGISTRATION.get(stat, f"state {stat}")
        return False, detail

    def send(self, pdus: Sequence[Pdu]) -> list[int]:
        """Sends the parts in order; the modem's message references."""
        references = []
        for index, pdu in enumerate(pdus, start=1):
            what = f"AT+CMGS (part {index}/{len(pdus)})"
            self._write(f"AT+CMGS={pdu.tpdu_length}\r".encode("ascii"))
            self._prompt(what)
            self._write(pdu.hex.encode("ascii") + CTRL_Z)
            # the network's answer can take seconds; the send's one deadline applies
            answer = _value(self._until_final(what), "+CMGS:")
            references.append(int(answer) if answer.isdigit() else -1)
        return references


def _value(lines: list[str], prefix: str) -> str:
    for line in lines:
        if line.startswith(prefix):
            return line[len(prefix) :].strip().strip('"')
    return ""


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:200]
