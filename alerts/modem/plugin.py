"""The `modem://` Apprise scheme: SMS through a USB cellular modem, one send at a time per
device.

    modem:///dev/ttyUSB0/01012345678/01098765432?baud=115200&pin=1234&timeout=10

The device path comes first, then one or more recipients (the trailing segments that are
phone numbers: digits, an optional leading +). Arguments: `baud` (default 115200), `pin`
(the SIM PIN, sent only when the SIM asks; never shown: the channel's display URL is built
without the query), `timeout` (seconds the whole send may take, default 8; keep it below
`[alerts] send_timeout`, which check-config enforces),
`parts` (the most parts one message may take, default 8; the rest is cut).

A NotifyBase subclass rather than the `@notify` decorator: the decorator's wrapper logs its
own generic warning after ours, and the sender shows a channel's last warning as its error,
so the modem's own reason (+CMS ERROR 500, no network) would never reach `sentinel status`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from apprise.common import NotifyType
from apprise.manager_plugins import NotificationManager
from apprise.plugins.base import NotifyBase

from alerts.modem import pdu
from alerts.modem.at import ModemError, Session

SCHEME = "modem"
DEFAULT_BAUD = 115200
# seconds the whole send may take: below [alerts] send_timeout's default 10 s (see at.py)
DEFAULT_TIMEOUT = 8.0
_PHONE = re.compile(r"^\+?[0-9][0-9-]{2,}$")

log = logging.getLogger("sentinel.alerts.modem")

# One lock per device node across all channels of the process: a modem has one AT line, and
# two dialogues interleaved on it would garble both.
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_references: dict[str, int] = {}


def device_lock(device: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(device, threading.Lock())


def _next_reference(device: str) -> int:
    """The concatenation reference for the next long message (1-255, per device)."""
    with _locks_guard:
        _references[device] = _references.get(device, 0) % 255 + 1
        return _references[device]


def split_target(host: str, fullpath: str) -> tuple[str, list[str]]:
    """`dev` + `/ttyUSB0/010.../010...` -> ("/dev/ttyUSB0", ["010...", "010..."])."""
    segments = [s for s in [host, *fullpath.split("/")] if s]
    numbers: list[str] = []
    while segments and _PHONE.match(segments[-1]):
        numbers.insert(0, segments.pop())
    return "/" + "/".join(segments), numbers


# Apprise's stubs type these class attributes as None on its base classes.
class NotifyModem(NotifyBase):
    service_name = "modem SMS"  # type: ignore[assignment]
    protocol = SCHEME  # type: ignore[assignment]
    secure_protocol = SCHEME  # type: ignore[assignment]
    service_url = "https://www.3gpp.org/dynareport/27005.htm"  # type: ignore[assignment]
    # the title is folded into the body; our own encoder splits long text into parts
    title_maxlen = 0
    body_maxlen = 10_000
    # one modem line, one message at a time: Apprise need not batch
    templates = ("{schema}://{device}/{targets}",)  # type: ignore[assignment]

    def __init__(
        self,
        device: str,
        targets: list[str],
        baud: int = DEFAULT_BAUD,
        pin: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        parts: int = pdu.MAX_PARTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.device = device
        self.targets = list(targets)
        self.baud = int(baud)
        self.pin = pin or None
        self.answer_timeout = float(timeout)
        self.max_parts = max(1, int(parts))
        if not self.targets:
            raise TypeError("modem:// needs at least one recipient number after the device")

    def url(self, privacy: bool = False, *args: Any, **kwargs: Any) -> str:
        # as Apprise's own custom plugins: only the scheme. sentinel shows the channel as
        # scheme + host + path (device and numbers), never the query, where the PIN is.
        return f"{SCHEME}://"

    def __len__(self) -> int:
        return len(self.targets)

    @staticmethod
    def parse_url(url: str) -> dict[str, Any] | None:  # type: ignore[override]
        results = NotifyBase.parse_url(url, verify_host=False)
        if not results:
            return None
        device, numbers = split_target(results.get("host") or "", results.get("fullpath") or "")
        query = results.get("qsd", {})
        if query.get("to"):
            numbers += [n for n in re.split(r"[\s,]+", query["to"]) if n]
        results["device"] = device
        results["targets"] = numbers
        results["baud"] = int(query.get("baud", DEFAULT_BAUD))
        results["pin"] = query.get("pin")
        results["timeout"] = float(query.get("timeout", DEFAULT_TIMEOUT))
        results["parts"] = int(query.get("parts", pdu.MAX_PARTS))
        return results

    def send(
        self, body: str, title: str = "", notify_type: NotifyType = NotifyType.INFO, **kwargs: Any
    ) -> bool:
        try:
            references = send_sms(
                self.device,
                self.targets,
                body,
                baud=self.baud,
                pin=self.pin,
                timeout=self.answer_timeout,
                max_parts=self.max_parts,
            )
        except (ModemError, pdu.PduError) as exc:
            # the sender shows a channel's last warning as its error; the text holds no PIN
            self.logger.warning("modem SMS not sent: %s", exc)
            return False
        self.logger.info("modem SMS sent by %s (message references %s)", self.device, references)
        return True


def send_sms(
    device: str,
    numbers: list[str],
    text: str,
    *,
    baud: int = DEFAULT_BAUD,
    pin: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_parts: int = pdu.MAX_PARTS,
) -> list[int]:
    """Sends `text` to every number through the modem at `device`; the modem's references.

    Opens the line for this send and closes it after: a modem that was unplugged and came
    back is simply opened again next time.
    """
    deadline = time.monotonic() + timeout
    encoded = [pdu.encode(n, text, _next_reference(device), max_parts) for n in numbers]
    lock = device_lock(device)
    if not lock.acquire(timeout=timeout):
        raise ModemError(f"{device}: busy with another message for {timeout:g}s")
    try:
        session = Session.open(device, baud, deadline, timeout)
        try:
            signal = session.prepare(pin)
            log.info(
                "modem %s: registered, signal CSQ %s",
                device,
                "unknown" if signal is None else signal,
            )
            references: list[int] = []
            for parts in encoded:
                references += session.send(parts)
            return references
        finally:
            session.close()
    finally:
        lock.release()


def register() -> None:
    """Adds the scheme to Apprise once per process (the registry is global)."""
    if SCHEME not in NotificationManager():
        NotificationManager().add(plugin=NotifyModem, schemas=SCHEME)
