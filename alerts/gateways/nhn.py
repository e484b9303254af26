"""NHN Cloud SMS (API v3.0): `nhnsms://APP_KEY:SECRET_KEY@SENDER/RECEIVER1/RECEIVER2`.

POST https://api-sms.cloud.toast.com/sms/v3.0/appKeys/{appKey}/sender/sms (or .../mms for
an LMS, with `title`), header X-Secret-Key, JSON {body, sendNo, recipientList:[{recipientNo}]}.
Success is `header.isSuccessful` true *and* every `body.data.sendResultList[].resultCode` 0:
the request as a whole can succeed while a receiver was refused (e.g. -2008 for an invalid
number); either is a failure here, with the code and `resultMessage`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from alerts.gateways.base import Gateway, GatewayError, Outgoing, Request, answer_text


class NhnCloudSms(Gateway):
    secure_protocol = ("nhnsms", "toastsms")
    service_name = "NHN Cloud SMS"
    service_url = "https://docs.nhncloud.com/ko/Notification/SMS/ko/api-guide/"
    default_base: ClassVar[str] = "https://api-sms.cloud.toast.com"
    id_name: ClassVar[str] = "APP_KEY"

    def request(self, message: Outgoing) -> Request:
        kind = "sms" if message.kind == "SMS" else "mms"  # NHN sends an LMS as MMS sans file
        payload: dict[str, Any] = {
            "body": message.text,
            "sendNo": self.sender,
            "recipientList": [{"recipientNo": t} for t in self.targets],
        }
        if message.title:
            payload["title"] = message.title
        return Request(
            f"{self.base}/sms/v3.0/appKeys/{self.quote(self.user, safe='')}/sender/{kind}",
            {"X-Secret-Key": self.password, "Content-Type": "application/json;charset=UTF-8"},
            json=payload,
        )

    def verdict(self, status: int, answer: Any) -> None:
        header = answer_text(answer, "header")
        if not isinstance(header, dict):
            header = {}
        if status != 200 or header.get("isSuccessful") is not True:
            raise GatewayError(
                f"HTTP {status}, resultCode {header.get('resultCode')}: "
                f"{header.get('resultMessage') or ''}"
            )
        results = answer_text(answer, "body", "data", "sendResultList")
        if not isinstance(results, list) or not results:
            raise GatewayError("isSuccessful true but no sendResultList in the answer")
        refused = [r for r in results if not isinstance(r, dict) or r.get("resultCode") != 0]
        # one result per receiver: a receiver the list leaves out was not taken either
        missing = max(0, len(self.targets) - len(results))
        if refused or missing:
            first = refused[0] if refused and isinstance(refused[0], dict) else {}
            raise GatewayError(
                f"{len(refused) + missing} of {len(self.targets)} receiver(s) refused, resultCode "
                f"{first.get('resultCode')}: {first.get('resultMessage') or ''}"
            )
