"""The settings that weaken the security posture, each with its fix (the pack's last
section): a plain rsync daemon over the network, a broker without login, a dashboard bound
beyond loopback without TLS, ..."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sentinel.report.context import ReportContext
from sentinel.report.flows import Flow


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Literal["high", "medium", "low"]
    config_key: str  # where to change it: "[mqtt]", "replication[0].target", "[web] bind"
    problem: str  # in ctx.lang
    fix: str  # in ctx.lang


def findings(ctx: ReportContext, flows: list[Flow]) -> list[Finding]:
    """What weakens the posture of `ctx.config`, worst first."""
    return []
