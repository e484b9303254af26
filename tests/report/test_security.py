"""The security-review pack (`sentinel report security`): every section for the shipped
example configs in both languages, the files checked live on this host (a 0644 secret file
is a finding, a 0600 one is ok), the measured systemd-analyze score, no secret anywhere,
and the CLI writing the Markdown and the PDF. Real files, real systemd-analyze, real
chromium (one run in this module)."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from sentinel.cli.main import main
from sentinel.config.loader import load_config
from sentinel.report import pdf, security
from sentinel.report.context import Lang, ReportContext
from sentinel.report.fingerprint import config_hash

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "examples" / "sentinel.toml",
    ROOT / "systemd" / "sentinel.example.toml",
    ROOT / "systemd" / "sentinel-keeper.example.toml",
]
SECTIONS = {
    "ko": [
        "## 1. 네트워크 흐름",
        "## 2. 계정과 권한",
        "## 3. 파일",
        "## 4. 시스템 강화",
        "## 5. 데이터",
        "## 6. 로그",
        "## 7. 발견 사항과 조치",
    ],
    "en": [
        "## 1. Network flows",
        "## 2. Accounts and privileges",
        "## 3. Files",
        "## 4. Hardening",
        "## 5. Data",
        "## 6. Logging",
        "## 7. Findings and fixes",
    ],
}
MQTT_PASSWORD = "Mq7-Hunter2-zebra"
NUT_PASSWORD = "Nut9-Upsmon-walrus"
RSYNC_PASSWORD = "Rs5-Replica-otter"
BOT_TOKEN = "123456789:AAHf3kS3cretT0kenXyZ"


def render(path: Path, lang: Lang, state: sqlite3.Connection | None = None) -> str:
    config = load_config(path)
    ctx = ReportContext(
        config=config,
        config_path=path,
        config_hash=config_hash(config),
        generated=time.time(),
        lang=lang,
        state=state,
        restore_dir=Path("/srv/sentinel-restore"),
    )
    return security.render(ctx)


@pytest.fixture(scope="module")
def examples() -> dict[tuple[str, Lang], str]:
    return {(p.name, lang): render(p, lang) for p in EXAMPLES for lang in ("ko", "en")}


@pytest.mark.parametrize("lang", ["ko", "en"])
@pytest.mark.parametrize("name", [p.name for p in EXAMPLES])
def test_every_section_in_order(
    examples: dict[tuple[str, Lang], str], name: str, lang: Lang
) -> None:
    text = examples[(name, lang)]
    places = [text.find(heading) for heading in SECTIONS[lang]]
    assert -1 not in places, [h for h, at in zip(SECTIONS[lang], places, strict=True) if at < 0]
    assert places == sorted(places)
    # the header a reviewer files it by
    config = load_config(next(p for p in EXAMPLES if p.name == name))
    assert config_hash(config) in text
    assert config.site.name in text


def test_korean_by_default_english_on_request(examples: dict[tuple[str, Lang], str]) -> None:
    ko, en = examples[("sentinel.toml", "ko")], examples[("sentinel.toml", "en")]
    assert ko.startswith("# 보안성 검토 자료")
    assert en.startswith("# Security review")
    assert "설정 지문" in ko and "Config hash" not in ko
    # every sentence goes through ctx.t: no Korean left in the English pack
    site = load_config(EXAMPLES[0]).site.name  # the county's own words stay as written
    rest = en.replace(site, "")
    assert re.search("[가-힣]", rest) is None, re.findall(".*[가-힣].*", rest)[:3]
    assert "official documents" in en and "공문서" in ko


def test_documented_remote_restrictions(examples: dict[tuple[str, Lang], str]) -> None:
    text = examples[("sentinel.toml", "en")]
    # the forced command of the replica account and the write-only rsync module
    assert "/usr/bin/rrsync -wo /srv/replica/onnara" in text
    # the stream road's optional key: what the backup host runs for it once set up
    assert "/usr/local/bin/sentinel receive /srv/replica/onnara" in text
    assert re.search(r"\| main \|[^\n]*write only = true", text)
    assert "hosts allow = 192.0.2.10" in text
    # the keeper role reports its own unit and its capability
    keeper = examples[("sentinel-keeper.example.toml", "en")]
    assert "sentinel-keeper.service" in keeper
    assert "CAP_DAC_READ_SEARCH" in keeper


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_hardening_score_is_measured(examples: dict[tuple[str, Lang], str]) -> None:
    for name in ("sentinel.toml", "sentinel-keeper.example.toml"):
        text = examples[(name, "en")]
        m = re.search(
            r"Exposure score (\d+\.\d) (\w+)\*\* .*Measured with `(systemd-analyze [^`]+)`", text
        )
        assert m, text[text.find("## 4.") : text.find("## 5.")]
        assert 0.0 <= float(m.group(1)) <= 10.0
        # the shipped units are hardened: systemd rates them OK
        assert m.group(2) == "OK"
    ko = examples[("sentinel.toml", "ko")]
    assert re.search(r"노출 점수 \d+\.\d", ko)
    assert "NoNewPrivileges | yes" in ko


def test_data_and_logging_retention(examples: dict[tuple[str, Lang], str]) -> None:
    room = examples[("sentinel.toml", "en")]
    data = room[room.find("## 5.") : room.find("## 6.")]
    assert "`/srv/onnara`" in data and "old versions 30d" in data
    assert "does not encrypt" in data
    logging = room[room.find("## 6.") : room.find("## 7.")]
    assert "journald" in logging and "90d" in logging and "****" in logging
    keeper = examples[("sentinel-keeper.example.toml", "en")]
    assert "all 2d, hourly 30d, daily 365d" in keeper


SITE = """\
[site]
name = "OO군청 전산실"

[daemon]
state_dir = "{tmp}/state"

[mqtt]
host = "127.0.0.1"
username = "sentinel"
password = "{mqtt}"

[[nut]]
name = "ups"
host = "127.0.0.1"
username = "upsmon"
password = "{nut}"

[alerts]
apprise_config = "{tmp}/apprise.yml"

[[replication]]
name = "docs"
source = "{tmp}/source"
target = "rsync://sentinel@127.0.0.1:8873/docs/"
password_file = "{tmp}/rsync.secret"

[web]
users_file = "{tmp}/web-users"
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "source").mkdir()
    (tmp_path / "state").mkdir(mode=0o750)
    apprise = tmp_path / "apprise.yml"
    apprise.write_text(f"urls:\n  - tgram://{BOT_TOKEN}/-100123\n")
    secret = tmp_path / "rsync.secret"
    secret.write_text(RSYNC_PASSWORD + "\n")
    (tmp_path / "web-users").write_text("")
    config = tmp_path / "sentinel.toml"
    config.write_text(SITE.format(tmp=tmp_path, mqtt=MQTT_PASSWORD, nut=NUT_PASSWORD))
    for path in (apprise, secret, tmp_path / "web-users", config):
        path.chmod(0o600)
    return config


def _row(text: str, path: Path) -> str:
    return next(
        line for line in text.splitlines() if line.startswith("|") and f"| {path} |" in line
    )


def test_secret_file_modes_checked_live(site: Path) -> None:
    tmp = site.parent
    text = render(site, "en")
    files = text[text.find("## 3.") : text.find("## 4.")]
    for path in (site, tmp / "apprise.yml", tmp / "rsync.secret", tmp / "web-users"):
        row = _row(files, path)
        assert row.endswith("| 0600 | ok |"), row
    assert "| 0750 | ok |" in _row(files, tmp / "state")
    assert "apprise.yml" not in text[text.find("## 7.") :]

    (tmp / "apprise.yml").chmod(0o644)
    (tmp / "state").chmod(0o755)
    (tmp / "rsync.secret").unlink()
    text = render(site, "en")
    files = text[text.find("## 3.") : text.find("## 4.")]
    assert _row(files, tmp / "apprise.yml").endswith("| 0644 | too open |")
    assert _row(files, tmp / "rsync.secret").endswith("| missing |")
    assert _row(files, tmp / "state").endswith("| 0755 | too open |")
    found = text[text.find("## 7.") :]
    apprise_row = next(line for line in found.splitlines() if "apprise.yml" in line)
    assert apprise_row.startswith("| high | [alerts] apprise_config |")
    assert f"chmod 640 {tmp / 'apprise.yml'}" in apprise_row
    assert f"chmod 750 {tmp / 'state'}" in found
    assert "rsync.secret: the file is missing" in found


def test_no_secret_in_the_pack(site: Path) -> None:
    (site.parent / "apprise.yml").chmod(0o644)  # a finding quotes the file, not its contents
    for lang in ("ko", "en"):
        text = render(site, lang)
        for secret in (MQTT_PASSWORD, NUT_PASSWORD, RSYNC_PASSWORD, BOT_TOKEN, "AAHf3kS3cret"):
            assert secret not in text, (lang, secret)


def test_cli_without_pdf(site: Path) -> None:
    out = site.parent / "plain.md"
    assert main(["-c", str(site), "report", "security", "-o", str(out), "--no-pdf"]) == 0
    assert "## 7. 발견 사항과 조치" in out.read_text(encoding="utf-8")
    assert not out.with_suffix(".pdf").exists()


@pytest.mark.skipif(pdf.converter() is None, reason="no chromium here")
def test_cli_writes_markdown_and_pdf(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = site.parent / "out" / "security.md"
    assert main(["-c", str(site), "report", "security", "-o", str(out), "--pdf"]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# 보안성 검토 자료: OO군청 전산실")
    assert oct(os.stat(out).st_mode & 0o777) == "0o640"
    made = out.with_suffix(".pdf")
    assert made.read_bytes()[:5] == b"%PDF-"
    said = capsys.readouterr().out
    assert f"pdf: {made} (chromium " in said
    for secret in (MQTT_PASSWORD, NUT_PASSWORD, RSYNC_PASSWORD, BOT_TOKEN):
        assert secret not in text
        assert secret.encode() not in made.read_bytes()


def test_flows_table_prints_every_field(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever flows() returns (tests/report/test_flows.py checks what it finds), each field
    is on paper, a `|` in a name does not break the table, and findings() are listed."""
    from sentinel.report.findings import Finding
    from sentinel.report.flows import Flow

    flow = Flow(
        part="replication",
        name="docs|main",
        source="this host",
        destination="backup.health-center.example",
        port=8873,
        protocol="rsync daemon",
        encrypted=False,
        encryption="none",
        auth="rsync password (file)",
    )
    monkeypatch.setattr(security, "flows", lambda ctx: [flow])
    monkeypatch.setattr(
        security,
        "findings",
        lambda ctx, flows: [Finding("high", "replication[0].target", "plain rsync", "use ssh")],
    )
    text = render(site, "en")
    flows = text[text.find("## 1.") : text.find("## 2.")]
    row = next(line for line in flows.splitlines() if "backup.health-center" in line)
    assert row == (
        "| replication | docs\\|main | this host | backup.health-center.example | 8873 | "
        "rsync daemon | no | rsync password (file) |"
    )
    found = text[text.find("## 7.") :]
    assert "| high | replication[0].target | plain rsync | use ssh |" in found


@pytest.mark.parametrize("name", [p.name for p in EXAMPLES])
def test_every_flow_is_a_row(examples: dict[tuple[str, Lang], str], name: str) -> None:
    from sentinel.report.flows import flows
    from sentinel.report.table import cell

    path = next(p for p in EXAMPLES if p.name == name)
    config = load_config(path)
    ctx = ReportContext(config, path, config_hash(config), time.time(), "en", None, Path("/x"))
    text = examples[(name, "en")]
    section = text[text.find("## 1.") : text.find("## 2.")].splitlines()
    found = flows(ctx)
    assert found or name == "sentinel.example.toml"  # the minimal example makes none
    for flow in found:
        assert any(
            f"| {flow.part} | {cell(flow.name)} | {cell(flow.source)} | "
            f"{cell(flow.destination)} | {'' if flow.port is None else flow.port} |" in line
            for line in section
        ), flow


def test_without_systemd_analyze_it_says_so(
    site: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    text = render(site, "en")
    hard = text[text.find("## 4.") : text.find("## 5.")]
    assert "Exposure score: not measured (systemd-analyze is not installed)." in hard
    assert "NoNewPrivileges | yes" in hard  # the directives are still read from the unit


def test_a_drop_in_counts_as_systemd_reads_it(tmp_path: Path) -> None:
    from sentinel.report.units import unit_settings

    unit = tmp_path / "sentinel.service"
    shutil.copyfile(ROOT / "systemd" / "sentinel.service", unit)
    (tmp_path / "sentinel.service.d").mkdir()
    (tmp_path / "sentinel.service.d" / "local.conf").write_text(
        "[Service]\nReadOnlyPaths=\nReadOnlyPaths=-/data/onnara\nReadWritePaths=/mnt/replica\n"
    )
    settings = unit_settings(unit)
    assert settings["ReadOnlyPaths"] == ["-/data/onnara"]  # the empty line reset /srv/onnara
    assert settings["ReadWritePaths"] == ["/mnt/replica"]
    assert settings["NoNewPrivileges"] == ["yes"]
