"""Every message of every sample alarm, in every event and both languages, as a person
receives it: a Korean message is Korean outside the names, ids and units it quotes, an
English one is English, the title and the body never say the same thing twice, and an SMS
fits."""

from __future__ import annotations

import re

import pytest

from alerts.event import EventType
from alerts.outbox import decode_event
from alerts.samples import NAMES, SAMPLES, every_event, groups
from alerts.templates import EVENT_LABELS, SMS_LIMIT_BYTES, Templates, sms_bytes

SITE = "데모 군청 전산실"
# What may stay Latin in a Korean message beside the samples' NAMES: units, the program's
# name and the commands a reader types, and "DB" (how Korean IT writing says database).
KO_ALLOWED = (
    *sorted(NAMES, key=len, reverse=True),
    "°C",
    "sentinel ack",
    "sentinel unsilence",
    "sentinel status",
    "sentinel test-alert",
    "sentinel",
    "DB",
    "--all",
)
# Words a person typed (a memo, a silence's reason) stay in their own language.
EN_ALLOWED = (
    *sorted(NAMES, key=len, reverse=True),
    "현장 확인 중",
    "배관 수리 중",
    "정전 작업",
    SITE,
)
IDS = re.compile(r"#?\b(?:A\d{3}|S\d|T1A2)\b")
LATIN_WORD = re.compile(r"[A-Za-z]+")
HANGUL = re.compile(r"[\uac00-\ud7a3]+")
CODE = re.compile(r"\b[a-z]+_[a-z_]+\b")  # a kind or cause code that was never worded


def messages(language: str) -> list[tuple[str, str, str]]:
    """(what, title, body) for each form of each sample event and group."""
    templates = Templates(language=language, site=SITE)
    out = []
    for label, event in every_event(language):
        sms = templates.render(event, "sms")
        long = templates.render(event, "long")
        out += [(f"{label} sms", "", sms.body), (f"{label} long", long.title, long.body)]
    for label, group in groups(language):
        for form in ("sms", "long"):
            m = templates.render_group(group, form)
            out.append((f"{label} {form}", m.title, m.body))
    return out


def without(text: str, allowed: tuple[str, ...]) -> str:
    for name in allowed:
        text = text.replace(name, " ")
    return IDS.sub(" ", text)


def foreign(text: str, script: re.Pattern[str], allowed: tuple[str, ...]) -> list[str]:
    """Words in `script` left once the allowed names are taken out; a name the SMS shortened
    ("본관 … 하단", "replic…", or cut at the very end) still counts as the name."""
    words = {w for name in allowed for w in script.findall(name)}
    rest = without(text, allowed)
    left = []
    for found in script.finditer(rest):
        word, tail = found.group(), rest[found.end() : found.end() + 1]
        cut = tail in ("", "…")
        if word in words or (cut and any(w.startswith(word) for w in words)):
            continue
        left.append(word)
    return left


def test_every_korean_message_is_korean_outside_names_ids_and_units() -> None:
    left = {}
    for what, title, body in messages("ko"):
        words = foreign(f"{title}\n{body}", LATIN_WORD, KO_ALLOWED)
        if words:
            left[what] = (words, f"{title}\n{body}")
    assert not left, "\n\n".join(f"{k}: {w}\n{t}" for k, (w, t) in list(left.items())[:8])


def test_every_english_message_is_english() -> None:
    for what, title, body in messages("en"):
        assert not foreign(f"{title}\n{body}", HANGUL, EN_ALLOWED), (what, title, body)
        assert not CODE.findall(without(f"{title}\n{body}", EN_ALLOWED)), (what, title, body)


@pytest.mark.parametrize("language", ["ko", "en"])
def test_title_and_body_never_repeat_each_other(language: str) -> None:
    labels = EVENT_LABELS[language]
    templates = Templates(language=language, site=SITE)
    for label, event in every_event(language):
        long = templates.render(event, "long")
        assert SITE in long.title and SITE not in long.body, (label, long)
        # today's defect: "경보 발생: 누수 감지" under the title "... 누수 경보 발생"
        said = labels[EventType(event.event)]
        assert not long.body.startswith(said) and f"{said}:" not in long.body, (label, long)


@pytest.mark.parametrize("language", ["ko", "en"])
def test_every_sms_fits_one_message(language: str) -> None:
    for what, _, body in messages(language):
        if what.endswith("sms"):
            assert sms_bytes(body) <= SMS_LIMIT_BYTES, (what, body)


def test_a_resolved_alarm_names_its_peak_and_how_long_it_lasted() -> None:
    """Every sample resolves after easing from critical to warning: the message still says
    critical, and for how long the alarm was on."""
    for language, peak, lasted in (("ko", "위험", "12분 30초"), ("en", "CRIT", "12 min 30 s")):
        templates = Templates(language=language, site=SITE)
        for label, event in every_event(language):
            if event.event != EventType.RESOLVED or event.peak != "critical":
                continue
            long = templates.render(event, "long")
            assert f"] {peak} " in long.title and lasted in long.body, (label, long)
            assert peak in templates.render(event, "sms").body, label
    assert any(s.severity == "critical" for s in SAMPLES)


def test_an_outbox_row_from_before_reason_codes_still_reads_as_korean() -> None:
    """A row queued by the previous release (no cause, peak or since) during an upgrade."""
    old = (
        '{"alarm_id": "EYDH", "event": "%s", "severity": "critical", "sensor_id": '
        '"leak-ups", "location": "전산실 UPS 하단", "kind": "water_leak", "value": %s, '
        '"unit": "", "reason": "%s", "ts": 1796189525.0, "tags": [], "by": "", "who": "", '
        '"until": null, "safe_as_of": null, "safe_unconfirmed": false}'
    )
    templates = Templates(site=SITE)
    for event, value, reason, said in (
        ("firing", "true", "water leak detected", "누수 감지"),
        ("resolved", "false", "condition cleared", "정상 복귀"),
    ):
        message = templates.render(decode_event(old % (event, value, reason)), "long")
        assert f"사유: {said}" in message.body, message
        text = f"{message.title}\n{message.body}".replace("EYDH", "")
        assert not foreign(text, LATIN_WORD, KO_ALLOWED), message


def test_a_reason_code_without_its_parameters_still_reads_as_korean() -> None:
    """A damaged row, or a code with parameters this release does not know, is worded from
    the event's own kind and value instead of printing "None"."""
    event = decode_event(
        '{"alarm_id": "EYDH", "event": "firing", "severity": "warning", "sensor_id": "t1", '
        '"location": "전산실", "kind": "temperature", "value": 32.5, "unit": "°C", '
        '"reason": "32.5°C (limit 30°C)", "ts": 1796189525.0, "cause": "high", '
        '"params": {"value": "x", "limit": null}}'
    )
    body = Templates(site=SITE).render(event, "long").body
    assert "사유: 온도 32.5°C" in body and "None" not in body, body
