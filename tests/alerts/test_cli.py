"""`sentinel test-alert` against real loopback channels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from alerts.samples import SAMPLES
from sentinel.cli.main import main
from tests.alerts.helpers import write_apprise
from tests.fixtures.http_sink import HttpSink

SAMPLE_KINDS = sorted({s.kind for s in SAMPLES})


def _config(tmp_path: Path, apprise_yml: Path | str, extra: str = "") -> Path:
    path = tmp_path / "sentinel.toml"
    path.write_text(
        f'[site]\nname = "본청"\n[alerts]\napprise_config = "{apprise_yml}"\n'
        f'send_timeout = "3s"\n{extra}',
        encoding="utf-8",
    )
    return path


def test_all_channels_ok(tmp_path: Path, http_sink: HttpSink, capsys: pytest.CaptureFixture):
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (http_sink.json_url("/a"), ["critical", "sms"]),
            (http_sink.json_url("/b"), ["warning"]),
        ],
    )
    assert main(["-c", str(_config(tmp_path, yml)), "test-alert"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 2
    assert {r.path for r in http_sink.delivered()} == {"/a", "/b"}
    assert all("시험" in r.message for r in http_sink.delivered())


def test_a_failing_channel_exits_1_with_its_reason(
    tmp_path: Path, http_sink_factory: Callable[[], HttpSink], capsys: pytest.CaptureFixture
):
    good, bad = http_sink_factory(), http_sink_factory()
    bad.fail("/b", times=5)
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (good.json_url("/a"), []),
            (bad.json_url("/b"), []),
        ],
    )
    assert main(["-c", str(_config(tmp_path, yml)), "test-alert"]) == 1
    lines = capsys.readouterr().out.splitlines()
    by_url = {line.split()[0]: line for line in lines}
    # shown with the path masked: the sinks' ports tell them apart
    good_url, bad_url = good.json_url("/****"), bad.json_url("/****")
    assert by_url[good_url].endswith(" ok")
    assert "FAILED" in by_url[bad_url] and "500" in by_url[bad_url]
    assert len(good.delivered("/a")) == 1


def test_tag_selects_channels(tmp_path: Path, http_sink: HttpSink, capsys):
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (http_sink.json_url("/a"), ["critical"]),
            (http_sink.json_url("/b"), ["warning"]),
        ],
    )
    config = _config(tmp_path, yml)
    assert main(["-c", str(config), "test-alert", "--tag", "warning"]) == 0
    assert [r.path for r in http_sink.delivered()] == ["/b"]
    assert main(["-c", str(config), "test-alert", "--tag", "nobody"]) == 1


def test_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture):
    missing = _config(tmp_path, tmp_path / "nope.yml")
    assert main(["-c", str(missing), "test-alert"]) == 2
    assert "not found" in capsys.readouterr().err
    empty = write_apprise(tmp_path / "empty.yml", [("notascheme://x", [])])
    assert main(["-c", str(_config(tmp_path, empty)), "test-alert"]) == 2
    assert "no valid notification URL" in capsys.readouterr().err
    good = write_apprise(tmp_path / "good.yml", [("console://", [])])
    bad_field = _config(tmp_path, good, '[alerts.templates]\n"sms.firing" = "{nope}"\n')
    assert main(["-c", str(bad_field), "test-alert"]) == 2
    assert "unknown field(s) nope" in capsys.readouterr().err
    bad_name = _config(tmp_path, good, '[alerts.templates]\n"sms.fire" = "x"\n')
    with pytest.raises(SystemExit) as exc:  # rejected while loading the config
        main(["-c", str(bad_name), "test-alert"])
    assert exc.value.code == 2
    assert "unknown template name" in capsys.readouterr().err
    none = tmp_path / "bare.toml"
    none.write_text("[site]\nname = 'x'\n")
    assert main(["-c", str(none), "test-alert"]) == 2


def test_preview_prints_every_template_and_sends_nothing(
    tmp_path: Path, http_sink: HttpSink, capsys: pytest.CaptureFixture
):
    yml = write_apprise(tmp_path / "apprise.yml", [(http_sink.json_url("/a"), [])])
    config = _config(
        tmp_path,
        yml,
        '[alerts.templates]\n"sms.firing" = "[{severity}] 맞춤 {location} {what} #{id}"\n',
    )
    assert main(["-c", str(config), "test-alert", "--preview"]) == 0
    out = capsys.readouterr().out
    ko, en = out.split("##### en #####")
    for kind in SAMPLE_KINDS:
        assert f"=== {kind}/" in ko and f"=== {kind}/" in en, kind
    for event in ("firing", "escalated", "acknowledged", "resolved", "silenced", "grouped"):
        assert event in ko and event in en, event
    assert "SMS (" in out and "/90 bytes): " in out and "TOO LONG" not in out
    # the site's own override is Korean (its configured language); English keeps the default
    assert "[위험] 맞춤 전산실 UPS 하단 누수 감지 #A001" in ko and "맞춤" not in en
    assert "LMS title: [본청] 위험 누수 경보 발생" in ko
    assert http_sink.delivered() == []


def test_preview_without_a_config_uses_the_demo_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.delenv("SENTINEL_CONFIG", raising=False)
    monkeypatch.setattr("sentinel.config.loader.DEFAULT_PATH", tmp_path / "none.toml")
    assert main(["test-alert", "--preview", "--language", "en"]) == 0
    captured = capsys.readouterr()
    assert "LMS title: [데모 군청 전산실] CRIT leak alarm" in captured.out
    assert "##### ko" not in captured.out and "demo's defaults" in captured.err
