"""Solapi (CoolSMS) messages API v4: `solapi://API_KEY:API_SECRET@SENDER/RECEIVER1/...`.

POST https://api.solapi.com/messages/v4/send-many/detail, JSON {messages:[{to, from, text,
type SMS/LMS, subject}]}, authenticated by the header
`Authorization: HMAC-SHA256 apiKey=K, date=ISO8601, salt=S, signature=hex(HMAC-SHA256(
API_SECRET, date + salt))`. A refused request answers 4xx with {errorCode, errorMessage};
an accepted one can still hold refused messages: `failedMessageList` entries (statusCode,
statusMessage), `groupInfo.count.registeredFailed`, or fewer `registeredSuccess` than
messages sent. Any of these is a failure here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from alerts.gateways.base import Gateway, GatewayError, Outgoing, Request, answer_text, count


def signature(secret: str, date: str, salt: str) -> str:
    return hmac.new(secret.encode(), (date + salt).encode(), hashlib.sha256).hexdigest()


def authorization(key: str, secret: str) -> str:
    date = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    salt = secrets.token_hex(16)
    return (
        f"HMAC-SHA256 apiKey={key}, date={date}, salt={salt}, "
        f"signature={signature(secret, date, salt)}"
    )


class Solapi(Gateway):
    secure_protocol = ("solapi", "coolsms")
    service_name = "Solapi SMS"
    service_url = "https://developers.solapi.com/references/messages/sendManyDetail"
    default_base: ClassVar[str] = "https://api.solapi.com"
    id_name: ClassVar[str] = "API_KEY"

    def request(self, message: Outgoing) -> Request:
        one: dict[str, str] = {"from": self.sender, "text": message.text, "type": message.kind}
        if message.title:
            one["subject"] = message.title
        return Request(
            f"{self.base}/messages/v4/send-many/detail",
            {
                "Authorization": authorization(self.user, self.password),
                "Content-Type": "application/json",
            },
            json={"messages": [{**one, "to": t} for t in self.targets]},
        )

    def verdict(self, status: int, answer: Any) -> None:
        if status != 200:
            raise GatewayError(
                f"HTTP {status}, {answer_text(answer, 'errorCode')}: "
                f"{answer_text(answer, 'errorMessage') or ''}"
            )
        group = answer_text(answer, "groupInfo")
        failed = answer_text(answer, "failedMessageList") or []
        counts = answer_text(group, "count") or {}
        if not isinstance(group, dict) or not isinstance(failed, list):
            raise GatewayError("HTTP 200 but no groupInfo or failedMessageList in the answer")
        refused = count(answer_text(counts, "registeredFailed"), "registeredFailed") or 0
        registered = count(answer_text(counts, "registeredSuccess"), "registeredSuccess")
        if registered is not None:
            # one message per receiver: fewer registered than sent is a refusal too
            refused = max(refused, len(self.targets) - registered)
        if failed or refused > 0:
            first = failed[0] if failed and isinstance(failed[0], dict) else {}
            raise GatewayError(
                f"{max(len(failed), refused)} message(s) refused, statusCode "
                f"{first.get('statusCode')}: {first.get('statusMessage') or ''}"
            )
