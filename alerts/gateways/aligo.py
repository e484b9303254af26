"""Aligo (알리고) SMS: `aligo://USER_ID:API_KEY@SENDER/RECEIVER1/RECEIVER2`.

POST https://apis.aligo.in/send/ as a form (key, user_id, sender, receiver comma-separated,
msg, msg_type SMS/LMS, title for LMS; testmode_yn=Y with `?testmode=yes`). The answer is
JSON whose `result_code` is 1 when the request was taken; anything else (e.g. -101 for a
wrong key or user id) is a failure with `message` saying why, even with HTTP 200. A taken
request also counts its receivers (`success_cnt`, `error_cnt`): any refused receiver is a
failure too, as NHN's and Solapi's per-receiver refusals are.
"""

from __future__ import annotations

from typing import Any, ClassVar

from apprise.utils.parse import parse_bool

from alerts.gateways.base import Gateway, GatewayError, Outgoing, Request, answer_text, count


class Aligo(Gateway):
    secure_protocol = "aligo"
    service_name = "Aligo SMS"
    service_url = "https://smartsms.aligo.in/smsapi.html"
    default_base: ClassVar[str] = "https://apis.aligo.in"
    id_name: ClassVar[str] = "USER_ID"
    id_private: ClassVar[bool] = False  # the account's login name tells channels apart

    def __init__(self, testmode: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.testmode = testmode

    def request(self, message: Outgoing) -> Request:
        data = {
            "key": self.password,
            "user_id": self.user,
            "sender": self.sender,
            "receiver": ",".join(self.targets),
            "msg": message.text,
            "msg_type": message.kind,
        }
        if message.title:
            data["title"] = message.title
        if self.testmode:
            data["testmode_yn"] = "Y"
        return Request(f"{self.base}/send/", {"Accept": "application/json"}, data=data)

    def verdict(self, status: int, answer: Any) -> None:
        code = answer_text(answer, "result_code")
        message = answer_text(answer, "message") or ""
        if status != 200 or str(code).strip() != "1":
            raise GatewayError(f"HTTP {status}, result_code {code}: {message}")
        refused = count(answer_text(answer, "error_cnt"), "error_cnt") or 0
        accepted = count(answer_text(answer, "success_cnt"), "success_cnt")
        if accepted is not None:
            refused = max(refused, len(self.targets) - accepted)
        if refused > 0:
            raise GatewayError(
                f"result_code 1 but {refused} of {len(self.targets)} receiver(s) refused "
                f"(success_cnt {accepted}, error_cnt {answer_text(answer, 'error_cnt')})"
            )

    def extra_params(self) -> dict[str, str]:
        return {"testmode": "yes"} if self.testmode else {}

    @staticmethod
    # Apprise's NotifyBase.parse_url already differs from URLBase's; ours follows NotifyBase
    def parse_url(  # type: ignore[override]
        url: str, verify_host: bool = False, plus_to_space: bool = False
    ) -> dict[str, Any] | None:
        results = Gateway.parse_url(url, plus_to_space=plus_to_space)
        if results:
            results["testmode"] = parse_bool(results["qsd"].get("testmode", False))
        return results
