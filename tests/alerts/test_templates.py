"""Message wording: SMS length in EUC-KR, the facts every message names, overrides."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.event import AlarmEvent, EventType
from alerts.templates import SMS_LIMIT_BYTES, TemplateError, Templates, sms_bytes

TS = 1_700_000_000.0
HHMM = time.strftime("%H:%M", time.localtime(TS))

LOCATIONS = [
    "전산실",
    "전산실 UPS 하단",
    "본관 3층 전산실 항온항습기 앞 이중마루 아래",
    "별관 지하1층 통합전산센터 서버랙 B-07 후면 하단 누수감지선 3번 구간",
    "보건소 2층 네트워크실 분전반 옆 천장 스프링클러 배관 아래 누수 감지 센서",
    "Building A, 3rd floor server room, under UPS #2",
]
KINDS = [
    ("water_leak", True, ""),
    ("smoke", True, ""),
    ("temperature", 36.24, "°C"),
    ("humidity", 81.0, "%"),
    ("replication_lag", 742.0, "s"),
    ("availability", False, ""),
    ("temperature", None, "°C"),
]


SECONDS_742 = {"ko": "12분 22초", "en": "12 min 22 s"}


def _event(
    location: str,
    kind: str,
    value,
    unit: str,
    event: str = "firing",
    alarm_id: str = "A7F3",
    severity: str = "critical",
) -> AlarmEvent:
    return AlarmEvent(
        alarm_id,
        event,
        severity,
        "sensor-1",
        location,
        kind,
        value,
        unit,
        "above 35 °C for 30s",
        TS,
    )


@pytest.mark.parametrize("language", ["ko", "en"])
@pytest.mark.parametrize("location", LOCATIONS)
def test_sms_fits_and_names_what_matters(language: str, location: str):
    templates = Templates(language=language, site="○○군청 본청")
    for kind, value, unit in KINDS:
        for event in EventType:
            body = templates.render(_event(location, kind, value, unit, event), "sms").body
            assert sms_bytes(body) <= SMS_LIMIT_BYTES, body
            if event != EventType.TEST:
                assert "#A7F3" in body and HHMM in body, body
                # the location may be shortened, but its first word always survives
                assert location.split()[0].rstrip(",") in body, body
            if event in (EventType.FIRING, EventType.REPEAT) and isinstance(value, float):
                if unit == "s":  # seconds read as a duration, in the message's language
                    assert SECONDS_742[language] in body, body
                    continue
                assert f"{value:.1f}".rstrip("0").rstrip(".") in body and unit in body, body


def test_korean_sms_reads_naturally():
    templates = Templates(site="본청")
    leak = templates.render(_event("전산실 UPS 하단", "water_leak", True, ""), "sms").body
    assert leak == f"[위험] 전산실 UPS 하단 누수 감지 {HHMM} #A7F3"
    heat = _event("전산실 랙3", "temperature", 31.25, "°C", severity="warning")
    assert templates.render(heat, "sms").body == f"[주의] 전산실 랙3 온도 31.2°C {HHMM} #A7F3"
    cleared = _event("전산실 UPS 하단", "water_leak", False, "", event="resolved")
    assert templates.render(cleared, "sms").body.startswith(
        "[해제] 전산실 UPS 하단 누수 위험경보 정상 복귀"
    )


def test_long_location_is_shortened_keeping_its_ends():
    location = "별관 지하1층 통합전산센터 서버랙 B-07 후면 하단 누수감지선 3번 구간"
    body = Templates().render(_event(location, "water_leak", True, ""), "sms").body
    assert "별관 …" in body and "구간" in body and "#A7F3" in body


def test_english_is_selectable():
    body = (
        Templates(language="en").render(_event("server room", "water_leak", True, ""), "sms").body
    )
    assert body == f"[CRIT] server room leak detected {HHMM} #A7F3"


@pytest.mark.parametrize("language", ["ko", "en"])
def test_long_form_names_site_location_value_time_and_id(language: str):
    message = Templates(language=language, site="○○군청 본청").render(
        _event("전산실 랙3", "temperature", 36.2, "°C"), "long"
    )
    assert "○○군청 본청" in message.title
    assert "○○군청 본청" not in message.body  # the title says it; the body adds, not repeats
    for fact in ("전산실 랙3", "36.2°C", HHMM, "#A7F3", "sensor-1"):
        assert fact in message.body
    assert sms_bytes(message.body) > SMS_LIMIT_BYTES  # the long form is not squeezed


@pytest.mark.parametrize("language", ["ko", "en"])
def test_group_sms_fits_and_lists_ids_while_they_fit(language: str):
    templates = Templates(language=language)
    events = [
        _event(LOCATIONS[i % len(LOCATIONS)], "water_leak", True, "", alarm_id=f"B{i:03d}")
        for i in range(6)
    ]
    two = templates.render_group(events[:2], "sms").body
    assert sms_bytes(two) <= SMS_LIMIT_BYTES
    assert "#B000" in two and "#B001" in two
    many = templates.render_group(events, "sms").body
    assert sms_bytes(many) <= SMS_LIMIT_BYTES and "#B000" in many and "5" in many


def test_group_leads_with_the_most_urgent():
    warn = _event("전산실 랙1", "temperature", 31.0, "°C", alarm_id="W001", severity="warning")
    crit = _event("전산실 UPS 하단", "water_leak", True, "", alarm_id="C001")
    body = Templates().render_group([warn, crit], "sms").body
    assert body.startswith("[위험] 전산실 UPS 하단 누수 감지") and "외 1건" in body


def state_of(body: str, alarm_id: str) -> str:
    """The state word a reader sees for an alarm: the last `[...]` before its id."""
    before = body[: body.index(f"#{alarm_id}")]
    return before[before.rindex("[") + 1 : before.rindex("]")]


@pytest.mark.parametrize(
    ("language", "crit", "cleared"), [("en", "CRIT", "OK"), ("ko", "위험", "해제")]
)
def test_group_states_each_alarms_own_state(language: str, crit: str, cleared: str):
    """After a channel outage a resolved alarm must not read as part of another alarm's
    firing message (`[CRIT] floor leak detected #8X9P +1 more #SYW5`)."""
    templates = Templates(language=language)
    firing = _event("floor", "water_leak", True, "", alarm_id="8X9P")
    resolved = _event("rack 2", "water_leak", False, "", event="resolved", alarm_id="SYW5")
    sms = templates.render_group([firing, resolved], "sms").body
    assert sms_bytes(sms) <= SMS_LIMIT_BYTES
    assert state_of(sms, "8X9P") == crit and state_of(sms, "SYW5") == cleared, sms
    long = templates.render_group([firing, resolved], "long").body
    lines = long.splitlines()
    assert any("#8X9P" in line and f"[{crit}]" in line for line in lines), long
    assert any("#SYW5" in line and f"[{cleared}]" in line for line in lines), long
    assert not any("#SYW5" in line and f"[{crit}]" in line for line in lines), long


def test_group_shows_an_alarm_that_fired_and_cleared_as_cleared():
    fired = _event("전산실 UPS 하단", "water_leak", True, "", alarm_id="X001")
    cleared = _event("전산실 UPS 하단", "water_leak", False, "", event="resolved", alarm_id="X001")
    warn = _event("전산실 랙1", "temperature", 31.0, "°C", alarm_id="W001", severity="warning")
    body = Templates().render_group([fired, cleared, warn], "sms").body
    assert body.startswith("[주의] 전산실 랙1 온도 31°C"), body  # the one still active leads
    assert state_of(body, "X001") == "해제" and state_of(body, "W001") == "주의", body
    assert "외 1건" in body  # one other alarm, not two events


EVENT_TYPES = [e for e in EventType if e != EventType.TEST]


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(
        st.tuples(
            st.text(
                st.characters(
                    codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="[]#"
                ),
                max_size=60,
            ),
            st.sampled_from(EVENT_TYPES),
            st.sampled_from(["critical", "warning", "info"]),
            st.integers(0, 30),
        ),
        min_size=2,
        max_size=25,
    ),
    language=st.sampled_from(["ko", "en"]),
)
def test_any_group_gives_a_valid_sms_with_each_alarms_own_state(items, language):
    events = [
        _event(location, "water_leak", event != "resolved", "", event, f"G{n:03d}", severity)
        for location, event, severity, n in items
    ]
    templates = Templates(language=language)
    body = templates.render_group(events, "sms").body
    assert sms_bytes(body) <= SMS_LIMIT_BYTES, body
    latest = {e.alarm_id: e for e in events}
    for alarm_id, e in latest.items():
        if f"#{alarm_id}" in body:
            # the id a reader sees carries the tag of that alarm's own latest event
            own = templates.render(e, "sms").body
            assert state_of(body, alarm_id) == own[1 : own.index("]")], body


@settings(max_examples=200, deadline=None)
@given(
    location=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=120),
    value=st.one_of(st.none(), st.booleans(), st.floats(-1e6, 1e6, allow_nan=False)),
    event=st.sampled_from(list(EventType)),
    language=st.sampled_from(["ko", "en"]),
)
def test_any_location_gives_a_valid_sms(location, value, event, language):
    body = (
        Templates(language=language)
        .render(_event(location, "temperature", value, "°C", event), "sms")
        .body
    )
    assert sms_bytes(body) <= SMS_LIMIT_BYTES
    if event != EventType.TEST:
        assert body.endswith("#A7F3")


def test_overrides_from_config_and_directory(tmp_path: Path):
    (tmp_path / "sms.firing.txt").write_text("{site}: {location} {what} #{id}\n", "utf-8")
    templates = Templates(
        site="군청", template_dir=tmp_path, overrides={"long.firing.title": "경보 {id}"}
    )
    event = _event("전산실", "water_leak", True, "")
    assert templates.render(event, "sms").body == "군청: 전산실 누수 감지 #A7F3"
    assert templates.render(event, "long").title == "경보 A7F3"


def test_bad_override_is_a_clear_error():
    with pytest.raises(TemplateError, match=r"unknown field.*locaton"):
        Templates(overrides={"sms.firing": "{locaton} #{id}"})
    with pytest.raises(TemplateError, match=r"sms\.firing"):
        Templates(overrides={"sms.firing": "{location"})


@pytest.mark.parametrize("language", ["ko", "en"])
def test_safety_actions_name_who_what_until_when_and_why(language: str):
    templates = Templates(language=language, site="본청")
    until = TS + 7200
    silenced = AlarmEvent(
        "S3",
        "silenced",
        "info",
        "leak-1",
        "전산실 UPS 하단",
        "water_leak",
        None,
        "",
        "배관 공사",
        TS,
        by="kim (uid 0 root, sudo from uid 1000 lee)",
        who="kim(lee)",
        until=until,
    )
    long = templates.render(silenced, "long").body
    for fact in (
        "전산실 UPS 하단",
        "leak-1",
        "kim (uid 0 root, sudo from uid 1000 lee)",
        "배관 공사",
        time.strftime("%m-%d %H:%M", time.localtime(until)),
        "#S3",
        "unsilence S3",
    ):
        assert fact in long, (fact, long)
    sms = templates.render(silenced, "sms").body
    assert "kim(lee)" in sms and "전산실 UPS 하단" in sms and sms_bytes(sms) <= SMS_LIMIT_BYTES
    everything = AlarmEvent(
        "S4",
        "silenced",
        "info",
        "",
        "",
        "",
        None,
        "",
        "랙 이동",
        TS,
        by="lee (uid 1000 lee)",
        who="lee",
        until=until,
    )
    assert ("전체 경보" if language == "ko" else "all alarms") in templates.render(
        everything, "sms"
    ).body
