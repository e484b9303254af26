"""Why an alarm fired or cleared, worded per language from a code and its parameters.

The alarm engine gives each event a `cause` (one of the codes below) and `params`; this
module turns them into "온도 상한 초과 (32.5°C > 30°C)" or "temperature above its limit
(32.5°C > 30°C)". An event without a cause (an outbox row written before causes existed, a
template test) falls back to its English `reason` in English and to a wording built from its
kind in Korean, so a Korean message never quotes sentinel's English.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# condition causes (why the alarm is on)
HIGH = "high"  # value, limit, unit
LOW = "low"  # value, limit, unit
RATE = "rate"  # rate, limit, unit (per minute)
DETECTED = "detected"  # a boolean kind is true
BATTERY = "battery"  # value, below
BATTERY_LOW = "battery_low"
OFFLINE = "offline"  # the sensor's gateway says it is offline
SILENT = "silent"  # silent_for, max_age (seconds)
FAULT = "fault"  # fault: the decoder's text
COMBINED = "combined"  # name, parts: [{sensor, kind, value, unit, above|below}]
COMPONENT = "component"  # name, count, window, error; direct: sent around the outbox
KEEPER_NO_RECEIPT = "keeper_no_receipt"  # room, error
KEEPER_STALE = "keeper_stale"  # room, age, written ("HH:MM:SS"), error
TEXT = "text"  # `reason` is already in the alerts' language (the keeper words it)
STATE_DB_DOWN = "state_db_down"  # path, problem
STATE_DB_BACK = "state_db_back"  # path
STATE_DB_CORRUPT = "state_db_corrupt"  # problem (sqlite's words), moved_to (the damaged file)
# the run before ended while not durable: since ("HH:MM"), alarms [{id, location}]
STATE_DB_LOST = "state_db_lost"
UNDELIVERABLE = "undeliverable"  # count
SESSION_LOST = "mqtt_session_lost"  # broker, client_id, losses (sensors/mqtt.py)
TEST = "test"
# how an alarm ended or was handled
CLEARED = "cleared"
ACKED_CLEARED = "acked_cleared"  # acknowledged after its condition had cleared (latching)
REMOVED = "removed"  # its sensor or rule left the config
# `params["note"]` on a page about an alarm already firing
RAISED = "raised"  # its severity went up
AFTER_SILENCE = "after_silence"  # still firing when the silence over it ended
# issue 15: doors and outputs
DOOR_OUTSIDE_HOURS = "door_outside_hours"  # since ("HH:MM"), allowed (the specs)
DOOR_OPEN_TOO_LONG = "door_open_too_long"  # since ("HH:MM"), limit (seconds)
OUTPUT_FAILING = "output_failing"  # name, failures, error
# issue 16: a database's archive-log replication
DATABASE_SWITCH_FAILING = "database_switch_failing"  # name, error
DATABASE_BASE_BACKUP = "database_base_backup"  # name, max_age, age (None: none), error
# a leak controller that says where along its sensing cable (sensors/modbus.py): distance, unit
LEAK_AT = "leak_at"
# issue 16: an archive-log replication's missing logs: missing ("41-43, 45")
LOG_GAP = "log_gap"

# The parameters a cause cannot be worded without.
_NEEDS = {
    HIGH: ("value", "limit"),
    LOW: ("value", "limit"),
    RATE: ("rate", "limit"),
    BATTERY: ("value", "below"),
    SILENT: ("silent_for", "max_age"),
    COMBINED: ("name",),
    COMPONENT: ("name",),
    KEEPER_STALE: ("room", "age"),
    KEEPER_NO_RECEIPT: ("room",),
    SESSION_LOST: ("broker",),
    DOOR_OUTSIDE_HOURS: ("since",),
    DOOR_OPEN_TOO_LONG: ("since", "limit"),
    OUTPUT_FAILING: ("name",),
    DATABASE_SWITCH_FAILING: ("name",),
    DATABASE_BASE_BACKUP: ("name", "max_age"),
    LEAK_AT: ("distance",),
    LOG_GAP: ("missing",),
}

# Boolean kinds whose "detected" reads wrong in Korean: the state itself is the reason.
_DETECTED_KO = {
    "water_leak": "누수 감지",
    "smoke": "연기 감지",
    "tamper": "케이스 열림 감지",
    "replication_guard": "대량 변경 감지로 복제 중지",
    "replication_verify": "복제본 검증 불일치",
    "watch_limit": "파일 변경 감시 한도 초과",
    "replication_source_missing": "복제 원본 없음(마운트 안 됨)",
    "replication_target_missing": "복제 대상 없음(마운트 안 됨)",
    "component": "구성요소 반복 장애",
    "replication_keeper": "백업 보관 서버 응답 없음",
    "database_drill_failed": "DB 복구 훈련 실패",
    "database_drill_overdue": "DB 복구 훈련 기한 지남",
    "room_silent": "sentinel 응답 없음",
    "room_disaster": "재난 추정(경보 중 응답 끊김)",
    "landing_mass_change": "백업 대량 삭제·변경",
    "ups_battery_low": "UPS 배터리 부족(곧 꺼짐)",
    "ups_replace_battery": "UPS 배터리 교체 필요",
    "ups_overload": "UPS 과부하",
    "ups_bypass": "UPS 바이패스 운전(정전 보호 없음)",
    "ups_output_off": "UPS 출력 꺼짐(장비 전원 없음)",
}
_DETECTED_EN = {
    "replication_source_missing": "source missing or not mounted",
    "replication_target_missing": "target missing or not mounted",
    "replication_guard": "mass change detected, replication paused",
    "replication_verify": "replica does not match the source",
    "database_drill_failed": "database drill failed",
    "database_drill_overdue": "database drill overdue",
    "ups_battery_low": "UPS battery low (it will shut down soon)",
    "ups_replace_battery": "UPS battery needs replacing",
    "ups_overload": "UPS overloaded",
    "ups_bypass": "UPS on bypass (no protection from a power cut)",
    "ups_output_off": "UPS output off (the equipment on it has no power)",
}

# severities and events named inside a reason (the templates name the message's own)
_SEVERITY_KO = {"critical": "위험", "warning": "주의", "info": "알림"}
_EVENT_KO = {
    "firing": "발생",
    "repeat": "반복",
    "escalated": "미확인",
    "acknowledged": "확인",
    "resolved": "해제",
    "test": "시험",
    "silenced": "무음",
    "unsilenced": "무음 해제",
}

# The decoder's fault texts (sensors/fault.py), worded in Korean.
_FAULTS_KO = (
    (re.compile(r"temperature (\S+) °C is a probe error value"), "온도 {0}°C는 프로브 오류값"),
    (
        re.compile(r"temperature (\S+) °C outside the physical range (\S+)\.\.(\S+)"),
        "온도 {0}°C가 물리적 범위({1}~{2}°C)를 벗어남",
    ),
    (re.compile(r"(\w+) (\S+) % outside 0\.\.100"), "{1}%가 0~100% 범위를 벗어남"),
    (re.compile(r"register error value (0x[0-9A-F]+)"), "레지스터 오류값 {0}"),
)


# What the state database's problem (sentinel/store.py, SQLite's own words) says in Korean.
_DB_PROBLEMS_KO = {
    "read-only file system": "읽기 전용 파일 시스템",
    "no space left on device": "디스크 공간 없음",
    "database or disk is full": "디스크 공간 없음",
    "disk I/O error": "디스크 입출력 오류",
    "unable to open database file": "DB 파일을 열 수 없음",
    "attempt to write a readonly database": "읽기 전용 DB",
    "file deleted while running": "실행 중 DB 파일 삭제됨",
    "file replaced by another while running": "실행 중 DB 파일이 다른 파일로 바뀜",
    "Permission denied": "권한 없음",
    "Read-only file system": "읽기 전용 파일 시스템",
    "No space left on device": "디스크 공간 없음",
}


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{float(value):g}"


def duration(seconds: float, language: str) -> str:
    """12분 30초 / 12 min 30 s: the two largest units, as a person says it."""
    total = max(0, round(seconds))
    units = (("일", "d", 86400), ("시간", "h", 3600), ("분", "min", 60), ("초", "s", 1))
    parts: list[str] = []
    for ko, en, size in units:
        count, total = divmod(total, size)
        if count and len(parts) < 2:
            parts.append(f"{count}{ko}" if language == "ko" else f"{count} {en}")
        elif parts:
            break  # "1시간 5초" would hide that minutes were skipped
    if not parts:
        return "0초" if language == "ko" else "0 s"
    return " ".join(parts)


def measure(value: Any, unit: str, language: str) -> str:
    """A value with its unit; seconds read as a duration."""
    if unit == "s" and isinstance(value, int | float):
        return duration(float(value), language)
    return f"{number(value)}{unit}"


def _compare(params: Mapping[str, Any], op: str, language: str) -> str:
    value, limit, unit = params.get("value"), params.get("limit"), params.get("unit", "")
    shown, bound = measure(value, unit, language), measure(limit, unit, language)
    strict = (
        isinstance(value, int | float)
        and isinstance(limit, int | float)
        and (value > limit if op == ">" else value < limit)
    )
    if strict:
        return f"({shown} {op} {bound})"
    # held by hysteresis, back on the good side of the limit but not yet by enough
    return f"({shown}, 기준 {bound})" if language == "ko" else f"({shown}, limit {bound})"


def condition(
    cause: str, params: Mapping[str, Any], kind: str, labels: Mapping[str, str], language: str
) -> str | None:
    """The condition's wording, or None for a cause this module does not know. `labels` are
    the kinds' names in the language."""
    ko = language == "ko"
    p = params
    if any(p.get(key) is None for key in _NEEDS.get(cause, ())):
        return None  # a damaged or foreign row: the caller words it from the event itself
    kind_label = labels.get(kind, kind)
    power = _power(cause, p, kind, language)
    if power is not None:
        return power
    if cause == HIGH:
        head = f"{kind_label} 상한 초과" if ko else f"{kind_label} above its limit"
        return f"{head} {_compare(p, '>', language)}"
    if cause == LOW:
        head = f"{kind_label} 하한 미달" if ko else f"{kind_label} below its lower limit"
        return f"{head} {_compare(p, '<', language)}"
    if cause == RATE:
        unit = p.get("unit", "")
        rate, limit = number(p.get("rate")), number(p.get("limit"))
        return (
            f"온도 급상승 (분당 {rate}{unit}, 기준 분당 {limit}{unit})"
            if ko
            else f"rising {rate}{unit}/min (limit {limit}{unit}/min)"
        )
    if cause == LOG_GAP:
        missing = p.get("missing")
        return f"로그 순번 누락: {missing} 없음" if ko else f"log sequence gap: {missing} missing"
    if cause == DETECTED:
        if ko:
            return _DETECTED_KO.get(kind, f"{kind_label} 감지")
        return _DETECTED_EN.get(kind, f"{kind_label} detected")
    if cause == BATTERY:
        value, below = number(p.get("value")), number(p.get("below"))
        return (
            f"배터리 {value}% (기준 {below}% 미만)" if ko else f"battery {value}% (below {below}%)"
        )
    if cause == BATTERY_LOW:
        return "배터리 부족" if ko else "battery low"
    if cause == OFFLINE:
        return "센서 통신 두절(게이트웨이 통보)" if ko else "sensor offline (its gateway says so)"
    if cause == SILENT:
        silent, limit = (duration(float(p.get(k, 0)), language) for k in ("silent_for", "max_age"))
        return (
            f"{silent} 동안 수신 없음 (허용 {limit})"
            if ko
            else f"no reading for {silent} (allowed {limit})"
        )
    if cause == FAULT:
        return (
            f"센서 고장: {_fault_ko(str(p.get('fault', '')))}"
            if ko
            else (f"sensor fault: {p.get('fault', '')}")
        )
    if cause == COMBINED:
        parts = [_part(part, labels, language) for part in p.get("parts", ())]
        return f"{p.get('name', '')}: " + (" 및 " if ko else " and ").join(parts)
    if cause == COMPONENT:
        name, count = p.get("name", ""), p.get("count", 0)
        window = duration(float(p.get("window", 0)), language)
        error = p.get("error") or ("-" if ko else "none")
        if ko:
            text = (
                f"구성요소 {name} 반복 장애: {window} 동안 {count}회 재시작, 마지막 오류: {error}"
            )
            if p.get("direct"):
                text += " (경보 엔진 장애로 대기열을 거치지 않고 직접 발송)"
            return text
        text = f"component {name} keeps failing: {count} restarts in {window}; last error: {error}"
        if p.get("direct"):
            road = "alarm engine" if name == "alarms" else "alert sender"
            text += (
                f" (sent directly: the {road} is failing, this page did not go through the outbox)"
            )
        return text
    if cause == KEEPER_NO_RECEIPT:
        error = p.get("error")
        if ko:
            return f"백업 보관 서버 {p.get('room', '')} 응답 없음: 수신 확인 없음" + (
                f" ({error})" if error else ""
            )
        return f"keeper {p.get('room', '')} not answering: no receipt" + (
            f": {error}" if error else ""
        )
    if cause == KEEPER_STALE:
        age = duration(float(p.get("age", 0)), language)
        written, error = p.get("written", ""), p.get("error")
        if ko:
            return (
                f"백업 보관 서버 {p.get('room', '')} 응답 없음: 마지막 수신 확인 {age} 전"
                f"({written} 작성)" + (f", 확인 파일 읽기 실패: {error}" if error else "")
            )
        return (
            f"keeper {p.get('room', '')} not answering: newest receipt {age} old "
            f"(written {written})" + (f"; reading it fails: {error}" if error else "")
        )
    if cause == STATE_DB_DOWN:
        problem = str(p.get("problem", ""))
        return (
            f"상태 DB 기록 불가: {_DB_PROBLEMS_KO.get(problem, problem)}. 경보는 "
            "메모리에서 계속 발송되나 sentinel 재시작 시 기록이 사라짐"
            if ko
            else f"state database not writable: {p.get('problem', '')}; alarms still page from "
            "memory, but nothing is durable (lost if sentinel restarts)"
        )
    if cause == STATE_DB_CORRUPT:
        return (
            f"상태 DB 손상으로 새 DB에서 시작함({p.get('problem', '')}). 손상된 파일은 "
            f"{p.get('moved_to', '')}에 보관: 이전 경보 기록, 무음 설정, 미발송 메시지는 "
            "새 DB에 없음"
            if ko
            else f"state database was corrupt, started fresh ({p.get('problem', '')}); the "
            f"damaged file was kept as {p.get('moved_to', '')}: alarm history, silences "
            "and pending pages from before are not in the new one"
        )
    if cause == STATE_DB_LOST:
        alarms = _lost_alarms(p, ko)
        return (
            f"sentinel 재시작: {p.get('since', '?')}부터 상태 DB 없이(메모리에서) 실행 "
            f"중이었음. 당시 경보: {alarms}. 이 경보는 다시 발송되지 않을 수 있음"
            if ko
            else f"sentinel restarted after running without a durable state database since "
            f"{p.get('since', '?')}: alarms active then: {alarms}; they may not page again"
        )
    if cause == STATE_DB_BACK:
        return (
            "상태 DB 기록 재개: 경보 기록이 다시 보존됨"
            if ko
            else "state database writable again: pages are durable again"
        )
    if cause == UNDELIVERABLE:
        count = p.get("count", 0)
        rows = "; ".join(_row(item, ko) for item in p.get("items", ()))
        if ko:
            return (
                f"발송할 수 없는 경보 메시지 {count}건을 따로 보관함. 누락된 경보가 있을 "
                "수 있으니 현장과 sentinel status를 확인 바람"
                + (f". 보관된 메시지: {rows}" if rows else "")
            )
        return (
            f"{count} outbox message(s) cannot be sent and were set aside; a page may be "
            "missing, check the room and `sentinel status`" + (f": {rows}" if rows else "")
        )
    if cause == SESSION_LOST:
        broker, client_id, losses = p.get("broker"), p.get("client_id", ""), p.get("losses", 1)
        if ko:
            return (
                f"브로커 {broker}에 sentinel 세션({client_id})이 없어짐(시작 후 {losses}회): "
                "연결이 끊긴 동안 온 메시지가 유실되었을 수 있음, 보존 상태는 다시 읽음"
            )
        return (
            f"MQTT session lost: broker {broker} no longer held sentinel's session "
            f"(client id {client_id}, lost {losses} time(s) since start); messages sent "
            "while sentinel was disconnected may be lost, retained states were read again"
        )
    if cause == LEAK_AT:
        where = f"{number(p.get('distance'))} {p.get('unit') or 'm'}"
        return f"누수 감지 (위치 {where})" if ko else f"leak at {where}"
    if cause == TEST:
        return "시험 발송(sentinel test-alert)" if ko else "sentinel test-alert"
    if cause == CLEARED:
        return "정상 복귀" if ko else "back to normal"
    if cause == ACKED_CLEARED:
        return (
            f"{p.get('by', '')} 확인 후 해제(조건은 이미 해소)"
            if ko
            else f"acknowledged by {p.get('by', '')} after the condition cleared"
        )
    if cause == DOOR_OUTSIDE_HOURS:
        since, allowed = p.get("since", ""), p.get("allowed", "")
        return (
            f"출입문 {since}부터 열림, 허용 시간 외 (허용: {allowed})"
            if ko
            else f"door open since {since} outside hours (allowed {allowed})"
        )
    if cause == DOOR_OPEN_TOO_LONG:
        since, limit = p.get("since", ""), duration(float(p.get("limit", 0)), language)
        return (
            f"출입문 {since}부터 열림, {limit} 초과"
            if ko
            else f"door open since {since}, longer than {limit}"
        )
    if cause == OUTPUT_FAILING:
        name, error = p.get("name", ""), p.get("error") or ("-" if ko else "none")
        count = p.get("failures", 0)
        return (
            f"경보 출력 {name} 제어 불가: {count}회 연속 실패, 마지막 오류: {error}"
            if ko
            else f"output {name} cannot be switched: {count} failures in a row; last error: {error}"
        )
    if cause in (DATABASE_SWITCH_FAILING, DATABASE_BASE_BACKUP):
        return _database(cause, p, language)
    if cause == REMOVED:
        return (
            "센서 또는 규칙이 설정에서 제거됨"
            if ko
            else "its sensor or rule was removed from the config"
        )
    return None


def _power(cause: str, p: Mapping[str, Any], kind: str, language: str) -> str | None:
    """A UPS's time on battery and runtime left, worded as a person says them (issue 15);
    None for every other kind."""
    ko = language == "ko"
    if kind == "ups_on_battery" and cause == HIGH:
        value, limit = float(p.get("value", 0)), float(p.get("limit", 0))
        # the warning's limit is the first second on battery: say only that mains is gone
        if limit <= 1.0 or value < limit:
            return "정전: UPS 배터리로 운전 중" if ko else "mains power lost: UPS on battery"
        spent, bound = duration(value, language), duration(limit, language)
        return (
            f"정전: UPS 배터리 운전 {spent} 경과 (기준 {bound})"
            if ko
            else f"mains power lost: UPS on battery for {spent} (limit {bound})"
        )
    if kind == "ups_runtime" and cause == LOW:
        left = duration(float(p.get("value", 0)), language)
        bound = duration(float(p.get("limit", 0)), language)
        return (
            f"UPS 잔여 운전시간 {left} (기준 {bound})"
            if ko
            else f"UPS runtime left {left} (limit {bound})"
        )
    return None


def _database(cause: str, p: Mapping[str, Any], language: str) -> str:
    """A database's log switch and base backup (issue 16). The error is the command's or
    the file system's own words (masked), in English in both languages."""
    ko = language == "ko"
    name, error = p.get("name", ""), p.get("error")
    if cause == DATABASE_SWITCH_FAILING:
        error = error or ("-" if ko else "none")
        return (
            f"DB {name} 로그 전환 실패(조용한 DB의 RPO가 늘어남): {error}"
            if ko
            else f"log switch of {name} failing (a quiet database's RPO grows): {error}"
        )
    if error:
        return (
            f"DB {name} 기본 백업 확인 불가: {error}"
            if ko
            else f"base backup of {name} cannot be told: {error}"
        )
    bound = duration(float(p.get("max_age", 0)), language)
    if p.get("age") is None:
        return (
            f"DB {name} 기본 백업 없음: 전송된 로그만으로는 복구 불가"
            if ko
            else f"no base backup of {name}: the shipped logs alone restore nothing"
        )
    age = duration(float(p.get("age", 0)), language)
    return (
        f"DB {name} 최신 기본 백업이 {age} 전 것 (허용 {bound})"
        if ko
        else f"newest base backup of {name} is {age} old (allowed {bound})"
    )


def short(cause: str, params: Mapping[str, Any], language: str) -> str | None:
    """The SMS form of a cause whose full wording does not fit one (sentinel's notices about
    its own state database), or None: the SMS keeps its time and alarm id."""
    ko = language == "ko"
    p = params
    if cause == STATE_DB_DOWN:
        problem = str(p.get("problem", ""))
        return (
            f"상태 DB 기록 불가({_DB_PROBLEMS_KO.get(problem, problem)})"
            if ko
            else f"state database not writable ({problem})"
        )
    if cause == DOOR_OUTSIDE_HOURS:
        since = p.get("since", "")
        return (
            f"출입문 {since}부터 열림(허용 시간 외)"
            if ko
            else f"door open since {since} outside hours"
        )
    if cause == OUTPUT_FAILING:
        name = p.get("name", "")
        return f"경보 출력 {name} 제어 불가" if ko else f"output {name} cannot be switched"
    if cause == DATABASE_SWITCH_FAILING:
        name = p.get("name", "")
        return f"DB {name} 로그 전환 실패" if ko else f"log switch of {name} failing"
    if cause == DATABASE_BASE_BACKUP:
        name = p.get("name", "")
        if p.get("error"):
            return f"DB {name} 기본 백업 확인 불가" if ko else f"base backup of {name} unknown"
        if p.get("age") is None:
            return f"DB {name} 기본 백업 없음" if ko else f"no base backup of {name}"
        age = duration(float(p.get("age") or 0), language)
        return f"DB {name} 기본 백업 {age} 경과" if ko else f"base backup of {name} {age} old"
    if cause == STATE_DB_BACK:
        return "상태 DB 기록 재개" if ko else "state database writable again"
    if cause == STATE_DB_CORRUPT:
        return "상태 DB 손상, 새 DB로 시작" if ko else "state database was corrupt, started fresh"
    if cause == STATE_DB_LOST:
        ids = " ".join(
            f"{a.get('location', '?')} #{a.get('id', '?')}" for a in p.get("alarms") or ()
        ) or ("경보 없음" if ko else "no alarms")
        return (
            f"재시작, {p.get('since', '?')}부터 비보존 실행: {ids}"
            if ko
            else f"restarted, not durable since {p.get('since', '?')}: {ids}"
        )
    return None


def _lost_alarms(params: Mapping[str, Any], ko: bool) -> str:
    alarms = [a for a in params.get("alarms") or () if isinstance(a, Mapping)]
    if not alarms:
        return "없음" if ko else "none"
    return ", ".join(
        f"{a.get('location') or a.get('sensor', '?')} #{a.get('id', '?')}" for a in alarms
    )


def note(params: Mapping[str, Any], language: str) -> str:
    """What a page about an alarm already on says before its condition ("등급 상향: ")."""
    ko = language == "ko"
    which = params.get("note")
    if which == RAISED:
        return "등급 상향: " if ko else "severity raised: "
    if which == AFTER_SILENCE:
        return "무음 종료 후에도 계속: " if ko else "still firing after its silence ended: "
    return ""


def _part(part: Mapping[str, Any], labels: Mapping[str, str], language: str) -> str:
    ko = language == "ko"
    sensor, unit = part.get("sensor", ""), part.get("unit", "")
    if "above" in part:
        return f"{sensor} {number(part.get('value'))}{unit} > {number(part['above'])}"
    if "below" in part:
        return f"{sensor} {number(part.get('value'))}{unit} < {number(part['below'])}"
    kind = str(part.get("kind", ""))
    if ko:
        return f"{sensor} {_DETECTED_KO.get(kind, labels.get(kind, kind) + ' 감지')}"
    return f"{sensor} {kind.replace('_', ' ')}"


def _row(item: Mapping[str, Any], ko: bool) -> str:
    """One set-aside outbox row: "#7 (경보 ZZZZ, critical firing): TypeError: …"."""
    row, alarm, error = item.get("row"), item.get("alarm"), item.get("error", "")
    severity, event = str(item.get("severity", "")), str(item.get("event", ""))
    if ko:
        words = f"{_SEVERITY_KO.get(severity, severity)} {_EVENT_KO.get(event, event)}"
        return f"#{row} (경보 {alarm}, {words}): {error}"
    return f"#{row} (alarm {alarm}, {severity} {event}): {error}"


def _fault_ko(text: str) -> str:
    for pattern, words in _FAULTS_KO:
        found = pattern.fullmatch(text)
        if found:
            return words.format(*found.groups())
    return "측정할 수 없는 값"
