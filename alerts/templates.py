"""Message wording: short SMS form and long (LMS) form, Korean by default, English selectable.

Templates are `str.format` strings over the fields listed in `FIELDS`. A deployment can
override any of them (`<form>.<event>` for the body, `long.<event>.title` for the long
form's title, `sms.group`/`long.group` for grouped messages).

A grouped message presents each alarm in its own current state (its latest event): the SMS
names the most urgent alarm in full and every other as `[state] #id`; the long form starts
with one line per alarm, then every event in full.

The SMS form aims at 90 bytes in EUC-KR (one Korean SMS): when a message is longer, the
location is shortened first (middle words dropped, then the tail cut with "…"), because
kind, value, time and alarm id are what the reader acts on.

`{safe}` is the keeper's confirmation on a critical leak, smoke or fire page (" 자료
14:32:05까지 안전"), empty when there is none, so a template can always carry it.

`{reason}` is worded in the message's language from the event's reason code
(alerts/reasons.py). On a resolved event `{severity}` is the highest severity the alarm
reached, `{duration}` how long it lasted ("12분 30초", "-" when unknown) and `{lasted}` the
same as " 지속 12분 30초" (empty when unknown). `{memo}` is what the person who
acknowledged wrote. `sentinel test-alert --preview` shows every template rendered.
"""

from __future__ import annotations

import functools
import string
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from alerts import reasons
from alerts.event import AlarmEvent, EventType, Severity, current_events, is_self_health

SMS_LIMIT_BYTES = 90
FORMS = ("sms", "long")
EVENTS = tuple(e.value for e in EventType)

FIELDS = (
    "site",
    "location",
    "sensor",
    "kind",
    "what",
    "value",
    "severity",
    "event",
    "reason",
    "time",
    "datetime",
    "id",
    "first",
    "others",
    "count",
    "ids",
    "more_ids",
    "body",
    "states",
    "by",
    "who",
    "until",
    "safe",
    "memo",
    "duration",
    "lasted",
)

# `{safe}`: up to when the keeper confirmed the room's data safe; marked when it is an older
# receipt (the keeper did not answer the page's own request in time).
SAFE = {"ko": " 자료 {t}까지 안전", "en": " data safe to {t}"}
# the long form's last line when the page carries a signed acknowledge link
ACK_LINK = {"ko": "웹에서 확인: {link}", "en": "Acknowledge on the web: {link}"}
SAFE_OLDER = {"ko": " 자료 {t}까지 안전(이전 확인)", "en": " data safe to {t} (older receipt)"}
# no keeper: the room's replication says it had shipped everything by then (no receipt)
SAFE_REPLICATED = {"ko": " 자료 {t}까지 복제", "en": " data copied to {t}"}

KIND_LABELS: dict[str, dict[str, str]] = {
    "ko": {
        "water_leak": "누수",
        "smoke": "연기",
        "temperature": "온도",
        "humidity": "습도",
        "battery": "배터리",
        "battery_low": "배터리 부족",
        "tamper": "케이스 열림",
        "availability": "통신두절",
        "lost": "응답없음",
        "fault": "센서 고장",
        "fire": "화재",
        "rate_of_rise": "급격한 온도상승",
        "replication_lag": "복제 지연",
        "replication_failures": "복제 실패",
        "replication_guard": "복제 중지(대량 변경)",
        "replication_verify": "복제 검증 실패",
        "watch_limit": "감시 한도 초과",
        "component": "구성요소 반복 장애",
        "test": "시험",
        "replication_source_missing": "복제 원본 없음(마운트 안 됨)",
        "replication_target_missing": "복제 대상 없음(마운트 안 됨)",
        "replication_quarantine": "복제 불가 파일",
        "replication_unreadable": "읽기 권한 없는 문서",
        "replication_log_gap": "DB 로그 누락",
        "outbox_undeliverable": "발송 불가 경보 메시지",
        "state_db": "상태 DB",
        "replication_keeper": "백업 보관 서버 응답 없음",
        "database_drill_failed": "DB 복구 훈련 실패",
        "database_drill_overdue": "DB 복구 훈련 기한 지남",
        "mqtt_session_lost": "브로커 세션 유실",
        "sensor_lost": "센서 응답 없음",
        "sensor_fault": "센서 고장",
        "combined": "복합 조건",
        "room_silent": "sentinel 응답 없음",
        "room_disaster": "재난 추정(경보 중 응답 끊김)",
        "landing_mass_change": "백업 대량 삭제·변경",
        "keeper_snapshot_failures": "스냅숏 실패",
        "keeper_disk_free": "백업 디스크 여유",
        "door": "출입문 열림",
        "output": "경보 출력 장애",
        "ups_on_battery": "정전(UPS 배터리)",
        "ups_battery_low": "UPS 배터리 부족",
        "ups_replace_battery": "UPS 배터리 교체",
        "ups_overload": "UPS 과부하",
        "ups_bypass": "UPS 바이패스",
        "ups_output_off": "UPS 출력 꺼짐",
        "ups_charge": "UPS 충전량",
        "ups_runtime": "UPS 잔여시간",
        "ups_input_voltage": "입력 전압",
        "ups_load": "UPS 부하",
        "database_switch_failing": "DB 로그 전환 실패",
        "database_base_backup_age": "DB 기본 백업 오래됨",
    },
    "en": {
        "water_leak": "leak",
        "smoke": "smoke",
        "temperature": "temperature",
        "humidity": "humidity",
        "battery": "battery",
        "battery_low": "battery low",
        "tamper": "tamper",
        "availability": "sensor offline",
        "lost": "sensor lost",
        "fault": "sensor fault",
        "fire": "fire",
        "rate_of_rise": "rapid heat rise",
        "replication_lag": "replication lag",
        "replication_failures": "replication failing",
        "replication_guard": "replication paused (mass change)",
        "replication_verify": "replica verify failed",
        "watch_limit": "watch limit",
        "component": "crash loop",
        "replication_source_missing": "replication source missing or not mounted",
        "replication_target_missing": "replication target missing or not mounted",
        "replication_quarantine": "files that cannot be replicated",
        "replication_unreadable": "unreadable documents",
        "replication_log_gap": "database log gap",
        "outbox_undeliverable": "undeliverable alert message",
        "state_db": "state database",
        "replication_keeper": "keeper not answering",
        "database_drill_failed": "database drill failed",
        "database_drill_overdue": "database drill overdue",
        "mqtt_session_lost": "MQTT session lost",
        "room_silent": "sentinel silent",
        "room_disaster": "likely disaster (silent during alarm)",
        "landing_mass_change": "mass deletion/rewrite at the backup",
        "keeper_snapshot_failures": "snapshots failing",
        "keeper_disk_free": "backup disk free",
        "door": "door open",
        "output": "output failing",
        "ups_on_battery": "on battery",
        "ups_battery_low": "UPS battery low",
        "ups_replace_battery": "UPS replace battery",
        "ups_overload": "UPS overload",
        "ups_bypass": "UPS bypass",
        "ups_output_off": "UPS output off",
        "ups_charge": "UPS charge",
        "ups_runtime": "UPS runtime",
        "ups_input_voltage": "input voltage",
        "ups_load": "UPS load",
        "database_switch_failing": "database log switch failing",
        "database_base_backup_age": "database base backup too old",
        "test": "test",
        "sensor_lost": "sensor lost",
        "sensor_fault": "sensor fault",
        "combined": "combined rule",
    },
}

SEVERITY_LABELS = {
    "ko": {Severity.CRITICAL: "위험", Severity.WARNING: "주의", Severity.INFO: "알림"},
    "en": {Severity.CRITICAL: "CRIT", Severity.WARNING: "WARN", Severity.INFO: "INFO"},
}

EVENT_LABELS = {
    "ko": {
        EventType.FIRING: "경보 발생",
        EventType.REPEAT: "경보 반복",
        EventType.ESCALATED: "경보 미확인(상향)",
        EventType.ACKNOWLEDGED: "경보 확인",
        EventType.RESOLVED: "경보 해제",
        EventType.TEST: "시험",
        EventType.SILENCED: "경보 무음 설정",
        EventType.UNSILENCED: "경보 무음 해제",
    },
    "en": {
        EventType.FIRING: "alarm",
        EventType.REPEAT: "alarm (repeat)",
        EventType.ESCALATED: "alarm unacknowledged (escalated)",
        EventType.ACKNOWLEDGED: "alarm acknowledged",
        EventType.RESOLVED: "alarm cleared",
        EventType.TEST: "test",
        EventType.SILENCED: "alarms silenced",
        EventType.UNSILENCED: "silence ended",
    },
}

# The tag an alarm carries beside its id in a group SMS: the word its own SMS starts with.
STATE_TAGS = {
    "ko": {
        EventType.FIRING: "{severity}",
        EventType.REPEAT: "{severity}·반복",
        EventType.ESCALATED: "{severity}·미확인",
        EventType.ACKNOWLEDGED: "확인",
        EventType.RESOLVED: "해제",
        EventType.TEST: "시험",
        EventType.SILENCED: "무음",
        EventType.UNSILENCED: "무음해제",
    },
    "en": {
        EventType.FIRING: "{severity}",
        EventType.REPEAT: "{severity} repeat",
        EventType.ESCALATED: "{severity} unacked",
        EventType.ACKNOWLEDGED: "ACK",
        EventType.RESOLVED: "OK",
        EventType.TEST: "TEST",
        EventType.SILENCED: "SILENCED",
        EventType.UNSILENCED: "UNSILENCED",
    },
}
# Shown after the listed alarms when not all of them fit in one SMS.
MORE = "…"

BOOL_LABELS = {"ko": {True: "감지", False: "정상"}, "en": {True: "detected", False: "normal"}}
# sentinel's own pseudo-sensors, whose `location` is a sentence in English (the log's words)
OWN_LOCATIONS = {
    "ko": {"sentinel:state-db": "sentinel", "sentinel:outbox": "sentinel"},
    "en": {"sentinel:state-db": "sentinel", "sentinel:outbox": "sentinel"},
}
LASTED = {"ko": " 지속 {d}", "en": " lasted {d}"}
UNACKED_FOR = {"ko": "{d} 동안 미확인: ", "en": "unacknowledged for {d}: "}
DETECTED = {"ko": "감지", "en": "detected"}
ALARM = {"ko": "경보", "en": "alarm"}
# what a silence of every alarm (`silence --all`) names instead of a location
EVERYTHING = {"ko": "전체 경보", "en": "all alarms"}
ACTIONS = (EventType.SILENCED, EventType.UNSILENCED)
# Kinds whose alarm reason is the whole story and is written to be read in an SMS (the
# keeper's "silent 90s, data safe to 14:32:05, alarms: leak(CRIT)"): the
# message states the reason instead of "<kind> detected".
REASON_KINDS = frozenset(
    {"room_silent", "room_disaster", "landing_mass_change", "replication_keeper", "state_db"}
)
REASON_KINDS |= {"door", "output"}  # issue 15: "since 21:14 outside hours" is the news
REASON_KINDS |= {"database_switch_failing", "database_base_backup_age"}  # issue 16

# The long form's title says what happened, where (site) and how bad; the body adds what
# the title does not, so nothing is said twice (a channel without titles gets the title
# prepended by Apprise).
_LONG_BODY = {
    "ko": (
        "사유: {reason}{safe}\n위치: {location} ({sensor})\n값: {value}\n시각: {datetime}\n"
        "경보번호: #{id} (확인: sentinel ack {id})"
    ),
    "ko.resolved": (
        "사유: {reason}\n지속 시간: {duration}\n위치: {location} ({sensor})\n"
        "마지막 값: {value}\n시각: {datetime}\n경보번호: #{id}"
    ),
    "ko.acknowledged": (
        "확인자: {by}\n메모: {memo}\n경보 사유: {reason}\n위치: {location} ({sensor})\n"
        "시각: {datetime}\n경보번호: #{id}"
    ),
    "ko.silenced": (
        "대상: {location} ({sensor})\n기한: {until}까지\n설정자: {by}\n사유: {reason}\n"
        "시각: {datetime}\n무음번호: #{id} (해제: sentinel unsilence {id})"
    ),
    "ko.unsilenced": (
        "대상: {location} ({sensor})\n해제자: {by}\n사유: {reason}\n시각: {datetime}\n"
        "무음번호: #{id}"
    ),
    "en": (
        "Reason: {reason}{safe}\nLocation: {location} ({sensor})\nValue: {value}\n"
        "Time: {datetime}\nAlarm: #{id} (acknowledge: sentinel ack {id})"
    ),
    "en.resolved": (
        "Reason: {reason}\nLasted: {duration}\nLocation: {location} ({sensor})\n"
        "Last value: {value}\nTime: {datetime}\nAlarm: #{id}"
    ),
    "en.acknowledged": (
        "By: {by}\nNote: {memo}\nAlarm reason: {reason}\nLocation: {location} ({sensor})\n"
        "Time: {datetime}\nAlarm: #{id}"
    ),
    "en.silenced": (
        "Target: {location} ({sensor})\nUntil: {until}\nBy: {by}\nReason: {reason}\n"
        "Time: {datetime}\nSilence: #{id} (end it: sentinel unsilence {id})"
    ),
    "en.unsilenced": (
        "Target: {location} ({sensor})\nBy: {by}\nReason: {reason}\nTime: {datetime}\n"
        "Silence: #{id}"
    ),
}
# the long forms an event has of its own; the others use the firing one
_OWN_BODIES = ("resolved", "acknowledged", "silenced", "unsilenced")

DEFAULTS: dict[str, dict[str, str]] = {
    "ko": {
        "sms.firing": "[{severity}] {location} {what} {time} #{id}{safe}",
        "sms.repeat": "[{severity}·반복] {location} {what} {time} #{id}{safe}",
        "sms.escalated": "[{severity}·미확인] {location} {what} {time} #{id}{safe}",
        "sms.acknowledged": "[확인] {location} {kind} 경보 확인 {who} {time} #{id}",
        "sms.resolved": "[해제] {location} {kind} {severity}경보 정상 복귀 {time}{lasted} #{id}",
        "sms.test": "[시험] {site} 경보 시험 메시지 {time}",
        "sms.silenced": "[무음] {location} {until}까지 {who} {time} #{id}",
        "sms.unsilenced": "[무음해제] {location} {who} {time} #{id}",
        "sms.group": "{first} 외 {others}건: {more_ids}",
        "long.group": "{states}\n\n{body}",
        "long.group.title": "[{site}] 경보 {count}건",
        **{f"long.{e}": _LONG_BODY["ko"] for e in EVENTS if e != "test"},
        **{f"long.{e}": _LONG_BODY[f"ko.{e}"] for e in _OWN_BODIES},
        "long.test": (
            "sentinel 경보 발송 시험입니다. 이 메시지가 보이면 이 채널로 경보가 "
            "전달됩니다.\n시각: {datetime}"
        ),
        **{f"long.{e}.title": "[{site}] {severity} {kind} {event}" for e in EVENTS},
        **{f"long.{e}.title": "[{site}] {event}: {location}" for e in ACTIONS},
        "long.test.title": "[{site}] 경보 시험 메시지",
    },
    "en": {
        "sms.firing": "[{severity}] {location} {what} {time} #{id}{safe}",
        "sms.repeat": "[{severity} repeat] {location} {what} {time} #{id}{safe}",
        "sms.escalated": "[{severity} unacked] {location} {what} {time} #{id}{safe}",
        "sms.acknowledged": "[ACK] {location} {kind} acknowledged by {who} {time} #{id}",
        "sms.resolved": (
            "[OK] {location} {severity} {kind} alarm back to normal {time}{lasted} #{id}"
        ),
        "sms.test": "[TEST] {site} alert test {time}",
        "sms.silenced": "[SILENCED] {location} until {until} by {who} {time} #{id}",
        "sms.unsilenced": "[UNSILENCED] {location} by {who} {time} #{id}",
        "sms.group": "{first} +{others} more: {more_ids}",
        "long.group": "{states}\n\n{body}",
        "long.group.title": "[{site}] {count} alarms",
        **{f"long.{e}": _LONG_BODY["en"] for e in EVENTS if e != "test"},
        **{f"long.{e}": _LONG_BODY[f"en.{e}"] for e in _OWN_BODIES},
        "long.test": (
            "sentinel alert test. If you can read this, alarms reach you on this "
            "channel.\nTime: {datetime}"
        ),
        **{f"long.{e}.title": "[{site}] {severity} {kind} {event}" for e in EVENTS},
        **{f"long.{e}.title": "[{site}] {event}: {location}" for e in ACTIONS},
        "long.test.title": "[{site}] alert test",
    },
}


class TemplateError(ValueError):
    """A template a deployment supplied cannot be used (unknown field, bad syntax)."""


@dataclass(frozen=True, slots=True)
class Message:
    """What one channel receives: an optional title and the body."""

    title: str
    body: str


def sms_bytes(text: str) -> int:
    """Length as a Korean SMS gateway counts it (EUC-KR; unknown characters count 2)."""
    return len(text.encode("euc-kr", "replace"))


def format_value(value: float | bool | str | None, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        number = float(value)
        text = str(int(number)) if number.is_integer() else f"{number:.1f}"
        return f"{text}{unit}"
    return f"{value}{unit}"


class Templates:
    """Renders `AlarmEvent`s into messages for one language and site."""

    def __init__(
        self,
        *,
        language: str = "ko",
        site: str = "",
        overrides: Mapping[str, str] | None = None,
        template_dir: Path | None = None,
        localtime: Callable[[float], time.struct_time] = time.localtime,
    ) -> None:
        if language not in DEFAULTS:
            raise TemplateError(f"unknown language {language!r} (use ko or en)")
        self.language = language
        self.site = site
        self._localtime = localtime
        merged = dict(DEFAULTS[language])
        if template_dir is not None:
            merged.update(_load_dir(template_dir))
        merged.update(overrides or {})
        for name, text in merged.items():
            _check(name, text)
        self._templates = merged

    # -- one event -------------------------------------------------------------------------

    def render(self, event: AlarmEvent, form: str) -> Message:
        fields = self._fields(event)
        if form == "sms":
            return Message("", self._fit_sms(self._template("sms", event.event), fields))
        body = self._template("long", event.event).format_map(fields)
        title = self._templates.get(f"long.{event.event}.title", "").format_map(fields)
        if event.link:
            # after the template, a site's own included: an SMS has no room for it
            body += "\n" + ACK_LINK[self.language].format(link=event.link)
        return Message(title, body)

    def render_group(self, events: Sequence[AlarmEvent], form: str) -> Message:
        """Several events for one channel as one message (grouping window, or a backlog).

        Each alarm is presented by its latest event: after a channel outage, an alarm that
        cleared meanwhile must read as cleared, not as part of another alarm's firing."""
        current = current_events(events)
        if len(events) == 1 or (form == "sms" and len(current) == 1):
            return self.render(current[-1], form)
        lead = _most_urgent(current)
        extra = {
            "count": str(len(current)),
            "others": str(len(current) - 1),
            "ids": " ".join(f"#{e.alarm_id}" for e in current),
        }
        if form == "sms":
            fields = {**self._fields(lead), **extra}
            group = self._templates["sms.group"]
            single = self._template("sms", lead.event)
            # room alarms listed before sentinel's own, so a cut list drops those first
            rest = sorted((e for e in current if e is not lead), key=is_self_health)
            others = [f"[{self._state_tag(e)}] #{e.alarm_id}" for e in rest]

            def whole(location: str, listed: int) -> str:
                first = single.format_map({**fields, "location": location})
                more = " ".join([*others[:listed], *([MORE] if listed < len(others) else [])])
                return group.format_map({**fields, "first": first, "more_ids": more}).strip()

            # list as many other alarms as fit while the location keeps its words
            for listed in range(len(others), 0, -1):
                text = _fit(functools.partial(whole, listed=listed), fields["location"], cut=False)
                if text is not None:
                    return Message("", text)
            text = _fit(lambda loc: whole(loc, 0), fields["location"])
            assert text is not None
            return Message("", text)
        states = [self._template("sms", e.event).format_map(self._fields(e)) for e in current]
        # each event under its own title, less the site the group's title already names
        site_tag = f"[{self.site}] "
        bodies = [
            f"{m.title.removeprefix(site_tag)}\n{m.body}".strip()
            for m in (self.render(e, "long") for e in events)
        ]
        fields = {
            **self._fields(lead),
            **extra,
            "states": "\n".join(states),
            "body": "\n\n".join(bodies),
        }
        return Message(
            self._templates["long.group.title"].format_map(fields),
            self._templates["long.group"].format_map(fields),
        )

    # -- helpers ---------------------------------------------------------------------------

    def _template(self, form: str, event: str) -> str:
        return self._templates.get(f"{form}.{event}") or self._templates[f"{form}.firing"]

    def _state_tag(self, event: AlarmEvent) -> str:
        severity = SEVERITY_LABELS[self.language].get(event.severity, event.severity)  # type: ignore[call-overload]
        tag = STATE_TAGS[self.language].get(event.event, "{severity}")  # type: ignore[call-overload]
        return str(tag).format(severity=severity)

    def _fields(self, event: AlarmEvent) -> dict[str, str]:
        lang = self.language
        labels = KIND_LABELS[lang]
        kind = labels.get(event.kind, event.kind)
        value = format_value(event.value, event.unit)
        if isinstance(event.value, bool):
            value = BOOL_LABELS[lang][event.value]
        elif isinstance(event.value, int | float) and event.unit == "s":
            value = reasons.measure(event.value, event.unit, lang)
        if isinstance(event.value, int | float) and not isinstance(event.value, bool):
            what = value
        elif event.value is True:
            what = DETECTED[lang]
        else:
            what = ALARM[lang]
        if event.event == EventType.TEST:
            kind = labels["test"]
        what = f"{kind} {what}"
        condition = self._condition(event, labels)
        if event.value is True and event.cause in (reasons.DETECTED, reasons.LEAK_AT):
            what = condition  # "복제 원본 없음(마운트 안 됨)", not "... 감지"
        if event.kind in REASON_KINDS and (event.value is True or event.cause) and event.reason:
            what = reasons.short(event.cause, event.params, lang) or condition
        reason = self._reason(event, condition)
        local = self._localtime(event.ts)
        location, sensor = event.location or event.sensor_id, event.sensor_id
        location = OWN_LOCATIONS[lang].get(sensor, location)
        if event.event in ACTIONS and not event.sensor_id:
            location, sensor = EVERYTHING[lang], "--all"
        severity = event.severity
        if event.event == EventType.RESOLVED and event.peak:
            severity = event.peak  # the worst it got, not where it eased off before clearing
        lasted = "" if event.since is None else reasons.duration(event.ts - event.since, lang)
        return {
            "site": self.site,
            "location": location,
            "sensor": sensor,
            "kind": kind,
            "what": what,
            "value": value,
            "severity": SEVERITY_LABELS[lang].get(severity, severity),  # type: ignore[call-overload]
            "event": EVENT_LABELS[lang].get(event.event, event.event),  # type: ignore[call-overload]
            "reason": reason,
            "time": time.strftime("%H:%M", local),
            "datetime": time.strftime("%Y-%m-%d %H:%M:%S", local),
            "id": event.alarm_id,
            "first": "",
            "others": "0",
            "count": "1",
            "ids": f"#{event.alarm_id}",
            "more_ids": "",
            "body": "",
            "states": "",
            "by": event.by or "-",
            "who": event.who or event.by or "-",
            "until": "-"
            if event.until is None
            else time.strftime("%m-%d %H:%M", self._localtime(event.until)),
            "safe": self._safe(event, local),
            "memo": str(event.params.get("memo") or "-"),
            "duration": lasted or "-",
            "lasted": LASTED[lang].format(d=lasted) if lasted else "",
        }

    def _condition(self, event: AlarmEvent, labels: Mapping[str, str]) -> str:
        """Why, in this language: from the event's cause; without one, the English text in
        English and, in Korean, what the event's own fields say."""
        lang = self.language
        if event.event in ACTIONS or event.cause == reasons.TEXT:
            return event.reason or "-"  # a person's words, or the keeper's in this language
        try:
            text = reasons.condition(event.cause, event.params, event.kind, labels, lang)
        except (TypeError, ValueError):
            text = None  # parameters of the wrong type (a damaged row): still page
        if text is None:
            text = event.reason if lang == "en" and event.reason else self._fallback(event)
        return text or "-"

    def _reason(self, event: AlarmEvent, condition: str) -> str:
        """The condition, with what this page adds to it (raised, unacknowledged for ...)."""
        lang = self.language
        if event.event in ACTIONS:
            return condition
        text = reasons.note(event.params, lang) + condition
        if event.event == EventType.ESCALATED and event.since is not None:
            text = UNACKED_FOR[lang].format(d=reasons.duration(event.ts - event.since, lang)) + text
        return text

    def _fallback(self, event: AlarmEvent) -> str:
        if event.event == EventType.RESOLVED:
            return reasons.condition(reasons.CLEARED, {}, "", {}, self.language) or "-"
        if event.event == EventType.TEST:
            return reasons.condition(reasons.TEST, {}, "", {}, self.language) or "-"
        labels = KIND_LABELS[self.language]
        kind = labels.get(event.kind, event.kind)
        if event.value is True:
            return reasons.condition(reasons.DETECTED, {}, event.kind, labels, self.language) or "-"
        if isinstance(event.value, int | float) and not isinstance(event.value, bool):
            return f"{kind} {reasons.measure(event.value, event.unit, self.language)}"
        return f"{kind} {ALARM[self.language]}"

    def _safe(self, event: AlarmEvent, local: time.struct_time) -> str:
        if event.safe_as_of is None:
            return ""
        safe = self._localtime(event.safe_as_of)
        # a confirmation from another day says so (a page never hides how old it is)
        same_day = (safe.tm_year, safe.tm_yday) == (local.tm_year, local.tm_yday)
        fmt = (
            "%H:%M:%S"
            if same_day
            else "%m-%d %H:%M"
            if safe.tm_year == local.tm_year
            else "%Y-%m-%d"
        )
        when = time.strftime(fmt, safe)
        words = (
            SAFE_REPLICATED
            if event.safe_replicated
            else SAFE_OLDER
            if event.safe_unconfirmed
            else SAFE
        )
        return words[self.language].format(t=when)

    def _fit_sms(self, template: str, fields: dict[str, str]) -> str:
        text = _fit(
            lambda loc: template.format_map({**fields, "location": loc}), fields["location"]
        )
        assert text is not None  # with cutting allowed, _fit always returns text
        return text


def _fit(render: Callable[[str], str], location: str, *, cut: bool = True) -> str | None:
    """Shortens the location until the SMS fits; cuts the text only as a last resort.

    With `cut=False` the location may only lose middle words, and None means "does not fit".
    """
    for candidate in _shorter_locations(location, cut=cut):
        text = render(candidate)
        if sms_bytes(text) <= SMS_LIMIT_BYTES:
            return text
    if not cut:
        return None
    text = render("")
    while sms_bytes(text) > SMS_LIMIT_BYTES:
        text = text[:-1]
    return text


def _shorter_locations(location: str, *, cut: bool = True) -> list[str]:
    """The location, then forms that keep its first and last words, then cut tails."""
    out = [location]
    words = location.split()
    # "본관 3층 전산실 UPS 하단" -> "본관 … UPS 하단" -> "본관 … 하단": the room and the
    # exact spot are what a person walks to; middle words are the least useful.
    for keep_tail in range(len(words) - 2, 0, -1):
        out.append(" ".join([words[0], "…", *words[-keep_tail:]]))
    if not cut:
        return out
    for end in range(len(location) - 1, 0, -1):
        out.append(location[:end].rstrip() + "…")
    return out


def _most_urgent(events: Sequence[AlarmEvent]) -> AlarmEvent:
    """The alarm a group SMS names in full: the most severe active one; at equal severity
    an alarm in the room (a leak) before one about sentinel itself (its database, a crash
    loop), which the reader can look up later but which must not hide where the water is."""
    rank = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
    active = [e for e in events if e.event not in (EventType.RESOLVED, EventType.ACKNOWLEDGED)]
    pool = active or list(events)
    return min(pool, key=lambda e: (rank.get(e.severity, 3), is_self_health(e)))  # type: ignore[call-overload]


def _check(name: str, text: str) -> None:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise TemplateError(f"template {name!r}: {exc}") from None
    unknown = sorted(n for n in names if n not in FIELDS)
    if unknown:
        raise TemplateError(
            f"template {name!r} uses unknown field(s) {', '.join(unknown)} "
            f"(known: {', '.join(FIELDS)})"
        )


def _load_dir(directory: Path) -> dict[str, str]:
    """`sms.firing.txt`, `long.resolved.txt`, `long.firing.title.txt`, ... in the directory."""
    if not directory.is_dir():
        raise TemplateError(f"template directory {directory} does not exist")
    out: dict[str, str] = {}
    for path in sorted(directory.glob("*.txt")):
        out[path.stem] = path.read_text(encoding="utf-8").rstrip("\n")
    return out
