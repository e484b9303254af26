"""The value the alarm engine hands to delivery: one alarm transition worth telling people."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# the severities are common/'s; every alerts module names them from here
from common.states import Severity as Severity


class EventType(StrEnum):
    FIRING = "firing"
    REPEAT = "repeat"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    TEST = "test"
    # safety actions, announced on the info route: who silenced what until when, and why
    SILENCED = "silenced"
    UNSILENCED = "unsilenced"


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One alarm transition. `alarm_id` is short (e.g. "A7F3") and appears in every message,
    so a person can `sentinel ack A7F3` and recognise a duplicate after an at-least-once retry.
    `tags` overrides routing (escalation to the next level's tag); empty means route by
    severity as the alerts config says. For an ack or a silence, `by` names who did it (the
    declared name, the real uid and sudo's), `who` the same in a few characters for an SMS
    ("kim(alice)": declared name, and the real person when different); `until` is when a
    silence ends. `safe_as_of` is the keeper's "data safe as of" (room clock) a critical
    page carries (sentinel/room_heartbeat.py fills it in just before sending, never in the
    outbox row); `safe_unconfirmed` when the keeper did not answer in time and it is the
    newest older receipt's; `safe_replicated` when there is no keeper and it is the room's
    own word that its replication had shipped every change it saw (no receipt).

    `cause` is the reason as a code (alerts/reasons.py) with its `params`, so each language
    words it itself; `reason` is the English text kept for logs and older outbox rows.
    `peak` is the highest severity the alarm reached and `since` when it fired: a resolved
    message names the worst it got and how long it lasted."""

    alarm_id: str
    event: str  # EventType
    severity: str  # Severity
    sensor_id: str
    location: str
    kind: str
    value: float | bool | str | None
    unit: str
    reason: str
    ts: float
    tags: tuple[str, ...] = field(default_factory=tuple)
    by: str = ""
    who: str = ""
    until: float | None = None
    safe_as_of: float | None = None
    safe_unconfirmed: bool = False
    safe_replicated: bool = False
    cause: str = ""
    # never hashed or compared by identity: a plain dict survives the outbox's JSON
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    peak: str = ""
    since: float | None = None
    # a signed, expiring acknowledge link (sentinel/web/ack_links.py), set when the event is
    # queued for a page that asks for an acknowledgement; "" when ack links are off
    link: str = ""


# Kinds of sentinel's own health alarms (its database, its components, its outbox, the
# replication it runs), as opposed to alarms on a configured sensor in the room.
SELF_KINDS = frozenset(
    {"state_db", "component", "outbox_undeliverable", "watch_limit", "mqtt_session_lost"}
)
SELF_KIND_PREFIXES = ("replication_", "keeper_")


def is_self_health(event: AlarmEvent) -> bool:
    """Whether the alarm is about sentinel itself rather than the room it watches."""
    return event.kind in SELF_KINDS or event.kind.startswith(SELF_KIND_PREFIXES)


def current_events(events: Sequence[AlarmEvent]) -> list[AlarmEvent]:
    """Each alarm's latest event (events in the order they happened), in the order the
    alarms first appear: what a message about several events must present as each alarm's
    current state, so a cleared alarm never reads as still firing."""
    latest: dict[str, AlarmEvent] = {}
    for event in events:
        latest[event.alarm_id] = event
    return list(latest.values())
