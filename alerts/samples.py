"""One sample alarm of each kind, in each event it can go through: what
`sentinel test-alert --preview` prints, and what the wording test renders in every language.

The names a sample carries (sensor ids, locations, rooms, paths, the quoted error) are listed
in `NAMES`: they are what an operator configured or what a system said, and stay as they are
in a Korean message; everything else in a Korean message is Korean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from alerts import reasons
from alerts.event import AlarmEvent, EventType, Severity
from alerts.templates import KIND_LABELS

# 2026-12-02 14:32:05 in Korea (05:32:05 UTC): the keeper texts below quote times near it
TS = 1_796_189_525.0
FIRED = TS - 750.0  # a resolved sample lasted 12 min 30 s
ERROR = "ConnectionRefusedError: [Errno 111] Connection refused"
DB_PATH = "/var/lib/sentinel/sentinel.db"
# the first document the service account may not read (sentinel/replication.py words it)
UNREADABLE = "/srv/onnara/2026/salary.hwp"
ROW_ERROR = "TypeError: unsupported format string passed to NoneType.__format__"


@dataclass(frozen=True, slots=True)
class Sample:
    """One alarm: its kind, where, what it measured, and why it fired."""

    kind: str
    sensor: str
    location: str
    value: float | bool | None
    unit: str
    severity: str
    cause: str
    params: dict[str, Any]
    # the keeper's page text per language (cause TEXT), else the English log text
    text: dict[str, str] | None = None


CRIT, WARN = str(Severity.CRITICAL), str(Severity.WARNING)

SAMPLES: tuple[Sample, ...] = (
    Sample("water_leak", "leak-ups", "전산실 UPS 하단", True, "", CRIT, reasons.DETECTED, {}),
    Sample("smoke", "smoke-1", "전산실 천장", True, "", CRIT, reasons.DETECTED, {}),
    Sample(
        "temperature",
        "temp-rack3",
        "전산실 랙3",
        36.2,
        "°C",
        CRIT,
        reasons.HIGH,
        {"value": 36.2, "limit": 35.0, "unit": "°C"},
    ),
    Sample(
        "temperature",
        "temp-rack1",
        "전산실 랙1",
        32.5,
        "°C",
        WARN,
        reasons.HIGH,
        {"value": 32.5, "limit": 30.0, "unit": "°C"},
    ),
    Sample(
        "humidity",
        "hum-1",
        "전산실 항온항습기 앞",
        85.0,
        "%",
        WARN,
        reasons.HIGH,
        {"value": 85.0, "limit": 80.0, "unit": "%"},
    ),
    Sample(
        "rate_of_rise",
        "temp-rack3",
        "전산실 랙3",
        31.0,
        "°C",
        WARN,
        reasons.RATE,
        {"rate": 2.5, "limit": 2.0, "unit": "°C"},
    ),
    Sample("tamper", "leak-ups", "전산실 UPS 하단", True, "", WARN, reasons.DETECTED, {}),
    Sample(
        "battery_low",
        "leak-ups",
        "전산실 UPS 하단",
        15.0,
        "%",
        WARN,
        reasons.BATTERY,
        {"value": 15.0, "below": 20.0},
    ),
    Sample("battery_low", "smoke-1", "전산실 천장", True, "", WARN, reasons.BATTERY_LOW, {}),
    Sample("sensor_lost", "temp-rack1", "전산실 랙1", None, "", WARN, reasons.OFFLINE, {}),
    Sample(
        "sensor_lost",
        "hum-1",
        "전산실 항온항습기 앞",
        None,
        "",
        WARN,
        reasons.SILENT,
        {"silent_for": 620, "max_age": 300.0},
    ),
    Sample(
        "sensor_fault",
        "temp-rack1",
        "전산실 랙1",
        None,
        "",
        WARN,
        reasons.FAULT,
        {"fault": "temperature 850 °C is a probe error value"},
    ),
    Sample(
        "combined",
        "fire",
        "전산실 랙3, 전산실 천장",
        None,
        "",
        CRIT,
        reasons.COMBINED,
        {
            "name": "fire",
            "parts": [
                {
                    "sensor": "temp-rack3",
                    "kind": "temperature",
                    "value": 58.0,
                    "unit": "°C",
                    "above": 50.0,
                },
                {"sensor": "smoke-1", "kind": "smoke", "value": True, "unit": ""},
            ],
        },
    ),
    Sample(
        "replication_lag",
        "replication:docs",
        "replication:docs",
        742.0,
        "s",
        CRIT,
        reasons.HIGH,
        {"value": 742.0, "limit": 300.0, "unit": "s"},
    ),
    Sample(
        "replication_failures",
        "replication:docs",
        "replication:docs",
        4.0,
        "",
        WARN,
        reasons.HIGH,
        {"value": 4.0, "limit": 3.0, "unit": ""},
    ),
    Sample(
        "replication_guard",
        "replication:docs",
        "replication:docs",
        True,
        "",
        CRIT,
        reasons.DETECTED,
        {},
    ),
    Sample(
        "replication_verify",
        "replication:docs",
        "replication:docs",
        True,
        "",
        CRIT,
        reasons.DETECTED,
        {},
    ),
    Sample(
        "watch_limit", "replication:docs", "replication:docs", True, "", WARN, reasons.DETECTED, {}
    ),
    Sample(
        "replication_source_missing",
        "replication:docs",
        "replication:docs",
        True,
        "",
        CRIT,
        reasons.DETECTED,
        {},
    ),
    Sample(
        "replication_target_missing",
        "replication:docs",
        "replication:docs",
        True,
        "",
        CRIT,
        reasons.DETECTED,
        {},
    ),
    Sample(
        "replication_quarantine",
        "replication:docs",
        "replication:docs",
        2.0,
        "",
        WARN,
        reasons.HIGH,
        {"value": 2.0, "limit": 1.0, "unit": ""},
    ),
    Sample(
        "replication_unreadable",
        "replication:docs",
        "replication:docs",
        True,
        "",
        WARN,
        reasons.TEXT,
        {},
        {"ko": f"{UNREADABLE} (+1)", "en": f"{UNREADABLE} (+1)"},
    ),
    Sample(
        "replication_log_gap",
        "replication:onnara-db",
        "replication:onnara-db",
        True,
        "",
        CRIT,
        reasons.LOG_GAP,
        {"missing": "41-43"},
    ),
    Sample(
        "database_drill_failed",
        "replication:onnara-db",
        "replication:onnara-db",
        True,
        "",
        CRIT,
        reasons.DETECTED,
        {},
    ),
    Sample(
        "database_drill_overdue",
        "replication:onnara-db",
        "replication:onnara-db",
        True,
        "",
        WARN,
        reasons.DETECTED,
        {},
    ),
    Sample(
        "replication_keeper",
        "replication:docs",
        "replication:docs",
        True,
        "",
        WARN,
        reasons.KEEPER_STALE,
        {"room": "main", "age": 620, "written": "14:21:45", "error": None},
    ),
    Sample(
        "replication_keeper",
        "replication:docs",
        "replication:docs",
        True,
        "",
        WARN,
        reasons.KEEPER_NO_RECEIPT,
        {"room": "main", "error": None},
    ),
    Sample(
        "component",
        "component:alerts",
        "component:alerts",
        True,
        "",
        CRIT,
        reasons.COMPONENT,
        {"name": "alerts", "count": 5, "window": 600.0, "error": ERROR},
    ),
    Sample(
        "component",
        "component:alarms",
        "component:alarms",
        True,
        "",
        CRIT,
        reasons.COMPONENT,
        {"name": "alarms", "count": 5, "window": 600.0, "error": ERROR, "direct": True},
    ),
    Sample(
        "mqtt_session_lost",
        "source:mqtt",
        "source:mqtt",
        True,
        "",
        WARN,
        reasons.SESSION_LOST,
        {"broker": "127.0.0.1:1883", "client_id": "sentinel-server-room-1a2b3c", "losses": 2},
    ),
    Sample(
        "state_db",
        "sentinel:state-db",
        "state database not writable",
        None,
        "",
        CRIT,
        reasons.STATE_DB_DOWN,
        {"path": DB_PATH, "problem": "no space left on device"},
    ),
    Sample(
        "state_db",
        "sentinel:state-db",
        "state database was corrupt",
        None,
        "",
        CRIT,
        reasons.STATE_DB_CORRUPT,
        {"problem": "file is not a database", "moved_to": f"{DB_PATH}.corrupt-20261202T053205"},
    ),
    Sample(
        "state_db",
        "sentinel:state-db",
        "restarted, not durable",
        None,
        "",
        CRIT,
        reasons.STATE_DB_LOST,
        {"since": "14:20", "alarms": [{"id": "EYDH", "location": "UPS 하단 바닥"}]},
    ),
    Sample(
        "outbox_undeliverable",
        "sentinel:outbox",
        "alert outbox",
        2,
        "",
        WARN,
        reasons.UNDELIVERABLE,
        {
            "count": 2,
            "items": [
                {
                    "row": 7,
                    "alarm": "ZZZZ",
                    "severity": "critical",
                    "event": "firing",
                    "error": ROW_ERROR,
                },
                {
                    "row": 8,
                    "alarm": "ZZZZ",
                    "severity": "critical",
                    "event": "repeat",
                    "error": ROW_ERROR,
                },
            ],
        },
    ),
    Sample(
        "room_silent",
        "room:main",
        "room:main",
        True,
        "",
        CRIT,
        reasons.TEXT,
        {},
        {
            "ko": "90초 무응답, 자료 14:32:05까지 안전, 누수(위험)",
            "en": "silent 90s, data safe to 14:32:05, alarms: leak(CRIT)",
        },
    ),
    Sample(
        "room_disaster",
        "room:main",
        "room:main",
        True,
        "",
        CRIT,
        reasons.TEXT,
        {},
        {
            "ko": "재난추정 90초 무응답, 자료 14:32:05까지 안전, 누수(위험)",
            "en": "LIKELY DISASTER: silent 90s during leak(CRIT); data safe to 14:32:05",
        },
    ),
    Sample(
        "landing_mass_change",
        "room:main",
        "room:main",
        True,
        "",
        CRIT,
        reasons.TEXT,
        {},
        {
            "ko": "백업 파일 1200개 중 900개 삭제, 30개 변경됨 (원본은 스냅숏 "
            "2026-12-02T1430에 보존)",
            "en": "900 of 1200 files deleted and 30 rewritten in the landing area "
            "(snapshots before 2026-12-02T1430 keep the originals)",
        },
    ),
    Sample(
        "keeper_snapshot_failures",
        "room:main",
        "room:main",
        4.0,
        "",
        CRIT,
        reasons.HIGH,
        {"value": 4.0, "limit": 3.0, "unit": ""},
    ),
    Sample(
        "keeper_disk_free",
        "keeper:disk:/srv/keeper",
        "keeper:disk:/srv/keeper",
        4.0,
        "%",
        CRIT,
        reasons.LOW,
        {"value": 4.0, "limit": 5.0, "unit": "%"},
    ),
)

# Names an operator configured or a system said, kept as they are in any language.
NAMES: frozenset[str] = frozenset(
    {s.sensor for s in SAMPLES}
    | {s.location for s in SAMPLES}
    | {
        ERROR,
        DB_PATH,
        ROW_ERROR,
        UNREADABLE,
        f"{DB_PATH}.corrupt-20261202T053205",
        "EYDH",
        "file is not a database",
        "UPS 하단 바닥",
        "ZZZZ",
        "main",
        "fire",
        "alerts",
        "alarms",
        "2026-12-02T1430",
        "kim(alice)",
        "sentinel-server-room-1a2b3c",
        "kim (uid 1000 alice)",
    }
)
ALARM_EVENTS = (
    EventType.FIRING,
    EventType.REPEAT,
    EventType.ESCALATED,
    EventType.ACKNOWLEDGED,
    EventType.RESOLVED,
)


def _alarm_id(index: int) -> str:
    return f"A{index + 1:03d}"


def alarm_event(sample: Sample, index: int, event: EventType, language: str) -> AlarmEvent:
    """The sample as the engine would hand `event` of it to delivery."""
    # what the engine writes in `reason`: the English words (or the keeper's own text)
    reason = (
        (sample.text or {}).get(language, "")
        or reasons.condition(sample.cause, sample.params, sample.kind, KIND_LABELS["en"], "en")
        or ""
    )
    value = sample.value
    params = dict(sample.params)
    cause = sample.cause
    severity = sample.severity
    by = who = ""
    if event == EventType.RESOLVED:
        cause, params, reason = reasons.CLEARED, {}, "condition cleared"
        value = False if isinstance(value, bool) else value
        # a critical alarm that eased to a warning before it cleared
        severity = WARN if severity == CRIT else severity
    if event == EventType.ACKNOWLEDGED:
        by, who, params = "kim (uid 1000 alice)", "kim(alice)", {**params, "memo": "현장 확인 중"}
    return AlarmEvent(
        alarm_id=_alarm_id(index),
        event=str(event),
        severity=severity,
        sensor_id=sample.sensor,
        location=sample.location,
        kind=sample.kind,
        value=value,
        unit=sample.unit,
        reason=reason,
        ts=TS,
        by=by,
        who=who,
        cause=cause,
        params=params,
        peak=sample.severity,
        since=FIRED,
        safe_as_of=TS - 5 if sample.kind == "water_leak" and event != EventType.RESOLVED else None,
    )


def action_events() -> list[AlarmEvent]:
    """A silence of one sensor and of everything, and their ends."""
    base = AlarmEvent(
        alarm_id="S1",
        event=str(EventType.SILENCED),
        severity=str(Severity.INFO),
        sensor_id="leak-ups",
        location="전산실 UPS 하단",
        kind="water_leak",
        value=None,
        unit="",
        reason="배관 수리 중",
        ts=TS,
        by="kim (uid 1000 alice)",
        who="kim(alice)",
        until=TS + 7200,
    )
    everything = replace(
        base, alarm_id="S2", sensor_id="", location="", kind="", reason="정전 작업"
    )
    return [
        base,
        replace(base, event=str(EventType.UNSILENCED), until=None),
        everything,
        replace(everything, event=str(EventType.UNSILENCED), until=None),
    ]


def sample_test_event() -> AlarmEvent:
    return AlarmEvent(
        alarm_id="T1A2",
        event=str(EventType.TEST),
        severity=str(Severity.INFO),
        sensor_id="sentinel",
        location="",
        kind="test",
        value=None,
        unit="",
        reason="sentinel test-alert",
        ts=TS,
        cause=reasons.TEST,
    )


def every_event(language: str) -> list[tuple[str, AlarmEvent]]:
    """(label, event) for each sample in each alarm event, then the actions and the test."""
    out: list[tuple[str, AlarmEvent]] = []
    for index, sample in enumerate(SAMPLES):
        for event in ALARM_EVENTS:
            label = f"{sample.kind}/{sample.cause} {event}"
            out.append((label, alarm_event(sample, index, event, language)))
    # a page about an alarm already on: its severity went up; its silence ended
    for note in (reasons.RAISED, reasons.AFTER_SILENCE):
        at = 2  # the critical temperature
        raised = alarm_event(SAMPLES[at], at, EventType.FIRING, language)
        out.append(
            (
                f"{SAMPLES[at].kind}/{note} firing",
                replace(raised, params={**raised.params, "note": note}),
            )
        )
    out += [(f"{e.event} {e.sensor_id or '--all'}", e) for e in action_events()]
    out.append(("test", sample_test_event()))
    return out


def groups(language: str) -> list[tuple[str, Sequence[AlarmEvent]]]:
    """Messages about several alarms at once: a grouping window, a backlog after an outage."""
    leak = alarm_event(SAMPLES[0], 0, EventType.FIRING, language)
    heat = alarm_event(SAMPLES[3], 3, EventType.FIRING, language)
    cleared = alarm_event(SAMPLES[2], 2, EventType.RESOLVED, language)
    at = next(i for i, s in enumerate(SAMPLES) if s.kind == "state_db")
    db = alarm_event(SAMPLES[at], at, EventType.FIRING, language)
    return [("grouped: leak, heat, cleared heat, state db", [leak, heat, cleared, db])]
