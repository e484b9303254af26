"""What check-config warns about without refusing: a setup that works but is unsafe or
will fail later (a broker anyone on the LAN can write to, records crossing the network in
the clear, documents the service account cannot read). `run` logs the same lines at start,
but for the walk of the documents.

Each check lives in its own module and returns plain sentences meant for a person."""

from __future__ import annotations

from sentinel.advice.broker import broker_advice
from sentinel.advice.readability import readability_advice
from sentinel.advice.transport import transport_advice
from sentinel.config import Config


def advisories(config: Config, *, user: str | None = None, readability: bool = True) -> list[str]:
    """Every warning for this config. `user`: check file access as this account (the
    service user) instead of the caller. `readability=False` leaves out the walk of the
    replication sources (`run`: the daemon names each unreadable file it meets, and a walk
    before the start would hold up READY and every sensor)."""
    out = broker_advice(config) + transport_advice(config)
    return out + readability_advice(config, user) if readability else out
