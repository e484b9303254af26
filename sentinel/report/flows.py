"""Every network flow the configuration makes: who talks to whom, on which port, with which
protocol, whether it is encrypted and how it authenticates (the security pack's first
table, and what findings.py judges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sentinel.report.context import ReportContext


@dataclass(frozen=True, slots=True)
class Flow:
    part: str  # "mqtt", "alert", "replication", "keeper", "web", "nut", ...
    name: str  # the config's name for it (a replication's name, a channel's masked URL)
    source: str  # "this host" or the peer that connects in
    destination: str  # host name or address (never a secret)
    port: int | None  # None: a local path or device, no network
    protocol: str  # "MQTT over TCP", "HTTPS", "rsync over ssh", ...
    encrypted: bool | None  # None: not a network flow (a local path)
    encryption: str  # "TLS", "ssh", "none", ...
    auth: str  # how it authenticates, never the secret itself
    direction: Literal["out", "in", "local"] = "out"
    config_key: str = ""  # where in sentinel.toml it is set: "[mqtt]", "replication[0].target"


def flows(ctx: ReportContext) -> list[Flow]:
    """The flows of `ctx.config`, texts in `ctx.lang`."""
    return []
