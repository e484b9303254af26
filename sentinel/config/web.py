"""[web]: the dashboard and /metrics the daemon serves (sentinel/web/). No section, no server."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from sentinel.config.types import ConfigPath, Duration, Model


class WebConfig(Model):
    # loopback unless someone decides otherwise: the page shows the room to whoever reaches it
    listen: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    language: Literal["ko", "en"] = "ko"
    # "open": whoever reaches the port may look (a trusted interface); acting always needs a
    # login. "login": looking needs one too.
    view: Literal["open", "login"] = "open"
    # default: <state_dir>/web-users (sentinel/web/users.py)
    users_file: ConfigPath | None = None
    tls_cert: ConfigPath | None = None
    tls_key: ConfigPath | None = None
    # addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed
    trusted_proxies: list[str] = []
    session_ttl: Duration = Field(12 * 3600.0, gt=0)
    metrics: bool = True
    # signed, expiring acknowledge links in pages (docs/web.md)
    ack_links: bool = False
    ack_link_ttl: Duration = Field(3600.0, gt=0)
    # what links in pages start with, e.g. "https://sentinel.county.local:8443"
    base_url: str = ""
    # names people's browsers reach the dashboard by, besides its addresses, localhost, this
    # machine's host name and base_url's (any other name is refused: DNS rebinding)
    hosts: list[str] = []

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"expected an IP address to bind, such as 127.0.0.1 or 0.0.0.0; found {value!r}"
            ) from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"expected addresses or networks such as 127.0.0.1 or 10.0.0.0/24; "
                    f"found {item!r}"
                ) from None
        return value

    @field_validator("hosts")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for item in value:
            # the Host header is compared without its port: "name:8443" would never match,
            # and the 421 would keep telling the person to add what they already added
            if not item.strip() or any(c in item for c in ":/ "):
                raise ValueError(
                    f"hosts: expected names such as sentinel.county.local, without a scheme "
                    f"or a port; found {item!r}"
                )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise ValueError(f"base_url: {exc}; found {value!r}") from None
        # without a scheme and a host, ack links would be dead text in the SMS and the page's
        # own name would be refused (sentinel/web/hosts.py)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "base_url: expected the address people's phones reach the dashboard at, "
                f'such as "https://sentinel.county.local:8443"; found {value!r}'
            )
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> WebConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(
                "tls_cert and tls_key go together: set both to serve HTTPS, or neither"
            )
        if self.ack_links and not self.base_url:
            raise ValueError(
                "ack_links needs base_url (the address people's phones reach the dashboard at, "
                'e.g. "https://sentinel.county.local:8443")'
            )
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None
