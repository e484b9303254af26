"""What the Korean SMS gateways share: one URL form, SMS vs LMS by length, one HTTP POST.

Every gateway URL reads `scheme://ID:SECRET@SENDER/RECEIVER1/RECEIVER2?url=BASE`:
ID and SECRET are the provider's credential pair, SENDER the registered sender number
(발신번호), each path segment a receiver; `?to=` adds receivers too. `?url=` replaces the
provider's https base URL (a county's on-prem relay, or a loopback server in tests).

A subclass says how to build its request and how to read its answer (`request`, `verdict`);
anything but the provider's documented success is a failure, HTTP 200 included, and its
code and message go to the Apprise log as the last warning: the sender shows that line as
the channel's error and the outbox retries the message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from apprise.common import NotifyType
from apprise.exception import AppriseImproperlyConfigured
from apprise.plugins.base import NotifyBase
from apprise.url import PrivacyMode

from alerts.templates import sms_bytes

# A Korean SMS is 90 bytes of EUC-KR; longer text goes as LMS (2,000 bytes).
SMS_MAX_BYTES = 90
LMS_TITLE_MAX_BYTES = 40
_DIGITS = re.compile(r"\D")
_PHONE = re.compile(r"\+?[0-9][0-9-]*")


@dataclass(frozen=True)
class Outgoing:
    """One message as the gateway sends it."""

    kind: str  # "SMS" or "LMS"
    text: str
    title: str  # LMS subject; empty for SMS


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    data: dict[str, str] | None = None  # form-encoded body
    json: dict[str, Any] | None = None


def outgoing(body: str, title: str) -> Outgoing:
    """SMS when the whole text fits 90 EUC-KR bytes (as sms_bytes counts), LMS otherwise;
    an LMS keeps the title as its subject, an SMS carries it in the text. A character
    EUC-KR lacks (an emoji in a location name) becomes '?': the carriers' text is EUC-KR,
    and NHN refuses such a message outright, on every retry."""
    body, title = _euckr(body), _euckr(title)
    text = f"{title}\n{body}" if title else body
    if sms_bytes(text) <= SMS_MAX_BYTES:
        return Outgoing("SMS", text, "")
    if not title:
        return Outgoing("LMS", body, "")
    return Outgoing("LMS", body, _cut_bytes(title, LMS_TITLE_MAX_BYTES))


def _euckr(text: str) -> str:
    return text.encode("euc-kr", "replace").decode("euc-kr")


def _cut_bytes(text: str, limit: int) -> str:
    while sms_bytes(text) > limit:
        text = text[:-1]
    return text


def phone(number: str) -> str:
    return _DIGITS.sub("", number)


def _is_phone(text: str) -> bool:
    return bool(_PHONE.fullmatch(text)) and 8 <= len(phone(text)) <= 15


class GatewayError(Exception):
    """The gateway's answer is not its documented success: `str()` says code and message."""


class Gateway(NotifyBase):
    """An Apprise plugin for one Korean SMS gateway's HTTP API."""

    # subclasses set these (Apprise declares the first three as None)
    secure_protocol: Any = ""
    service_name: Any = ""
    service_url: Any = ""
    default_base: ClassVar[str] = ""
    id_name: ClassVar[str] = "ID"
    # whether the ID is shown in the masked URL (a login name) or hidden (a key)
    id_private: ClassVar[bool] = True

    category = "custom"
    # an LMS holds 2,000 bytes; Apprise cuts longer bodies
    body_maxlen = 2000
    title_maxlen = 250
    # one request per message: Apprise's pause between a plugin's requests only delays it
    request_rate_per_sec = 0

    def __init__(
        self,
        targets: list[str] | None = None,
        base: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        scheme = self.schema_name()
        # a typo is refused, not stripped: "010-1234-567O" would page 0101234567, someone
        # else; by position, as the path is masked in every display of the URL
        bad = [n for n, t in enumerate(targets or [], start=1) if not _is_phone(t)]
        if bad:
            raise AppriseImproperlyConfigured(
                f"{scheme}:// receiver {bad[0]} is not a phone number (8 to 15 digits, '-', "
                "a leading '+')"
            )
        if self.host and not _is_phone(self.host):
            raise AppriseImproperlyConfigured(f"{scheme}:// sender (host) is not a phone number")
        self.sender = phone(self.host or "")
        # once each: the providers count receivers, and a repeated one would read as refused
        self.targets = list(dict.fromkeys(phone(t) for t in targets or []))
        self.base = (base or self.default_base).rstrip("/")
        if not self.user or not self.password:
            raise AppriseImproperlyConfigured(
                f"{scheme}:// needs {self.id_name} and secret: {scheme}://{self.id_name}:SECRET@"
                "SENDER/RECEIVER"
            )
        if not self.sender:
            raise AppriseImproperlyConfigured(f"{scheme}:// needs the sender number as host")
        if not self.targets:
            raise AppriseImproperlyConfigured(f"{scheme}:// needs at least one receiver")
        if not re.match(r"^https?://", self.base):
            raise AppriseImproperlyConfigured(f"{scheme}:// ?url= must be an http(s) URL")

    @classmethod
    def schema_name(cls) -> str:
        protocol = cls.secure_protocol
        return protocol if isinstance(protocol, str) else protocol[0]

    # -- subclass API ----------------------------------------------------------------------

    def request(self, message: Outgoing) -> Request:
        raise NotImplementedError

    def verdict(self, status: int, answer: Any) -> None:
        """Raises GatewayError unless `answer` (the decoded JSON) is the documented success."""
        raise NotImplementedError

    def extra_params(self) -> dict[str, str]:
        return {}

    # -- Apprise ---------------------------------------------------------------------------

    def send(
        self, body: str, title: str = "", notify_type: NotifyType = NotifyType.INFO, **kwargs: Any
    ) -> bool:
        message = outgoing(body, title)
        req = self.request(message)
        self.throttle()
        try:
            answer = requests.post(
                req.url,
                headers=req.headers,
                data=req.data,
                json=req.json,
                verify=self.verify_certificate,
                timeout=self.request_timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            self.logger.warning(
                "%s did not answer in time (cto=%ss, rto=%ss): %s",
                self.service_name,
                self.socket_connect_timeout,
                self.socket_read_timeout,
                type(exc).__name__,
            )
            return False
        except requests.RequestException as exc:
            # the exception's text names the URL: the type alone says enough
            self.logger.warning("%s unreachable: %s", self.service_name, type(exc).__name__)
            return False
        try:
            decoded = answer.json()
        except ValueError:
            decoded = None
        try:
            if decoded is None:
                raise GatewayError(
                    f"HTTP {answer.status_code}, answer is not JSON: {self._quote(answer.text)}"
                )
            self.verdict(answer.status_code, decoded)
        except GatewayError as exc:
            self.logger.warning("%s refused the %s: %s", self.service_name, message.kind, exc)
            return False
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            # JSON of another shape than documented (a relay's, a changed API): not a
            # success, and said so instead of Apprise's bare "raised an exception"
            self.logger.warning(
                "%s answered HTTP %s in a form it does not document (%s): %s",
                self.service_name,
                answer.status_code,
                type(exc).__name__,
                self._quote(json.dumps(decoded, ensure_ascii=False)),
            )
            return False
        self.logger.info(
            "%s accepted the %s for %d receiver(s)",
            self.service_name,
            message.kind,
            len(self.targets),
        )
        return True

    def _quote(self, text: str) -> str:
        """The start of an answer for the error text, this URL's secrets masked *before* it
        is cut: masked after, a secret echoed across the cut would leave its first half."""
        for secret in sorted(filter(None, (self.password, self.user)), key=len, reverse=True):
            if self.id_private or secret != self.user:
                text = text.replace(secret, "****")
        return repr(text[:80])

    def url(self, privacy: bool = False, *args: Any, **kwargs: Any) -> str:
        params = self.extra_params()
        if self.base != self.default_base:
            params["url"] = self.base
        params.update(self.url_parameters(*args, privacy=privacy, **kwargs))
        user = (
            self.pprint(self.user, privacy, mode=PrivacyMode.Secret, safe="")
            if self.id_private
            else self.quote(self.user, safe="")
        )
        return "{schema}://{user}:{password}@{sender}/{targets}?{params}".format(
            schema=self.schema_name(),
            user=user,
            password=self.pprint(self.password, privacy, mode=PrivacyMode.Secret, safe=""),
            sender=self.sender,
            targets="/".join(self.targets),
            params=self.urlencode(params),
        )

    def __len__(self) -> int:
        return 1  # one request carries every receiver

    @staticmethod
    # Apprise's NotifyBase.parse_url already differs from URLBase's; ours follows NotifyBase
    def parse_url(  # type: ignore[override]
        url: str, verify_host: bool = False, plus_to_space: bool = False
    ) -> dict[str, Any] | None:
        results = NotifyBase.parse_url(url, verify_host=False, plus_to_space=plus_to_space)
        if not results:
            return results
        qsd = results["qsd"]
        results["targets"] = NotifyBase.split_path(results["fullpath"])
        if qsd.get("to"):
            results["targets"] += [t for t in re.split(r"[\s,;/]+", qsd["to"]) if t]
        if qsd.get("url"):
            results["base"] = qsd["url"]
        return results


def count(value: Any, name: str) -> int | None:
    """A count from an answer (a JSON number or a string of digits), None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not re.fullmatch(r"\s*\d+\s*", str(value)):
        raise GatewayError(f"{name} {value!r} is not a count")
    return int(value)


def answer_text(answer: Any, *path: str) -> Any:
    """The value at `path` in a decoded JSON answer, None when any step is missing."""
    for key in path:
        if not isinstance(answer, dict):
            return None
        answer = answer.get(key)
    return answer
