"""Status says when the paperwork is out of date (issue 17, part 3): a security pack or
runbook generated from another config, a last successful restore drill older than
`[reports] drill_max_age`, or a failed last drill. Real CLI, real state database."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from backup.drill_record import FileDrill, save_drill
from sentinel import migrations
from sentinel.cli.main import main
from sentinel.heartbeat import beat
from sentinel.store import Store

CONFIG = """\
[site]
name = "{site}"

[daemon]
state_dir = "{state}"

[alerts]
apprise_config = "{apprise}"

[reports]
drill_max_age = "{max_age}"

[[replication]]
name = "docs"
source = "{source}"
target = "{target}"
"""


class Site:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.source = tmp / "source"
        self.target = tmp / "replica"
        self.apprise = tmp / "apprise.yml"
        self.path = tmp / "sentinel.toml"
        self.source.mkdir()
        (self.source / "공문서.txt").write_text("결재 완료\n", encoding="utf-8")
        self.apprise.write_text("urls:\n  - json://127.0.0.1:9/hook\n", encoding="utf-8")
        self.write()

    def write(self, site: str = "OO군청 전산실", max_age: str = "90d", extra: str = "") -> None:
        self.path.write_text(
            CONFIG.format(
                site=site,
                state=self.state,
                apprise=self.apprise,
                max_age=max_age,
                source=self.source,
                target=self.target,
            )
            + extra,
            encoding="utf-8",
        )

    def cli(self, *args: str) -> int:
        return main(["-c", str(self.path), *args])

    def status(self, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
        capsys.readouterr()
        self.cli("status", "--json")
        return json.loads(capsys.readouterr().out)

    def alive(self) -> None:
        """A heartbeat from this process: status judges a running daemon's site."""

        async def write() -> None:
            store = await Store.open(self.state)
            try:
                await migrations.migrate(store)
                now = time.time()
                await beat(store.write, now=now, started=now, status="ok", components={}, config={})
            finally:
                await store.close()

        asyncio.run(write())

    def drilled(self, age: float, ok: bool = True, error: str = "") -> None:
        async def write() -> None:
            store = await Store.open(self.state)
            try:
                await migrations.migrate(store)
                drill = FileDrill("docs", "files", time.time() - age, ok, 3.5, 1, error)
                await save_drill(store.write, drill)
            finally:
                await store.close()

        asyncio.run(write())


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site(tmp_path)
    assert s.cli("backup", "sync", "--full") == 0  # before the heartbeat: no daemon to wait for
    s.alive()
    return s


def reasons(report: dict[str, Any]) -> list[str]:
    return list(report["overall"]["reasons"])


def test_a_report_goes_stale_when_the_config_changes_and_fresh_when_regenerated(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    before = site.status(capsys)
    assert before["reports"]["security"] is None and before["reports"]["runbook"] is None
    assert before["overall"]["state"] == "OK", reasons(before)

    out = site.tmp / "pack.md"
    assert site.cli("report", "security", "-o", str(out), "--no-pdf") == 0
    assert site.cli("report", "runbook", "-o", str(site.tmp / "runbook.md"), "--no-pdf") == 0
    fresh = site.status(capsys)
    digest = fresh["reports"]["config_hash"]
    assert fresh["reports"]["security"]["config_hash"] == digest
    assert fresh["reports"]["security"]["paths"] == [str(out)]
    assert not fresh["reports"]["security"]["stale"]
    assert fresh["overall"]["state"] == "OK", reasons(fresh)

    # a comment is not a change of the site: the printed copy stays true
    site.path.write_text(site.path.read_text(encoding="utf-8") + "# reviewed\n", encoding="utf-8")
    assert site.status(capsys)["overall"]["state"] == "OK"

    site.write(site="OO군청 제2전산실")
    stale = site.status(capsys)
    assert stale["overall"]["state"] == "WARNING"
    assert stale["reports"]["security"]["stale"] and stale["reports"]["runbook"]["stale"]
    [security] = [r for r in reasons(stale) if "security report" in r]
    assert f"config {digest}" in security and "`sentinel report security`" in security
    assert any("`sentinel report runbook`" in r for r in reasons(stale))
    capsys.readouterr()
    site.cli("status")
    assert "STALE" in capsys.readouterr().out

    assert site.cli("report", "security", "-o", str(out), "--no-pdf") == 0
    again = site.status(capsys)
    assert not again["reports"]["security"]["stale"]
    assert [r for r in reasons(again) if "report" in r] == [
        next(r for r in reasons(stale) if "runbook report" in r)
    ]


def test_a_changed_alert_channel_file_makes_the_reports_stale(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.cli("report", "runbook", "-o", str(site.tmp / "r.md"), "--no-pdf") == 0
    assert not site.status(capsys)["reports"]["runbook"]["stale"]
    site.apprise.write_text("urls:\n  - json://127.0.0.1:9/other\n", encoding="utf-8")
    assert site.status(capsys)["reports"]["runbook"]["stale"]


def test_status_warns_when_the_last_successful_drill_is_too_old_or_the_last_failed(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    never = site.status(capsys)
    [row] = never["replication"]
    assert row["drill"]["problem"] is None  # a new install is not a fault ...
    assert "never" in row["drill"]["summary"]  # ... but status says so
    assert never["overall"]["state"] == "OK"

    site.drilled(age=100 * 86400)
    old = site.status(capsys)
    assert old["overall"]["state"] == "WARNING"
    assert any(
        r.startswith("docs: the last successful restore drill is 100 days old")
        for r in reasons(old)
    ), reasons(old)

    site.write(max_age="200d")
    assert site.status(capsys)["overall"]["state"] == "OK"

    site.drilled(age=60, ok=False, error="3 differences")
    failed = site.status(capsys)
    assert failed["overall"]["state"] == "WARNING"
    assert any("failed: 3 differences" in r for r in reasons(failed)), reasons(failed)
    site.drilled(age=10)
    assert site.status(capsys)["overall"]["state"] == "OK"


def test_a_report_that_cannot_be_recorded_says_so_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Site(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    s.state = blocker / "state"
    s.write()
    out = tmp_path / "pack.md"
    assert s.cli("report", "security", "-o", str(out), "--no-pdf") == 1
    assert out.exists()
    err = capsys.readouterr().err
    assert "written but not recorded" in err and "status will not know" in err


def test_an_output_named_pdf_is_refused_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Site(tmp_path)
    out = tmp_path / "pack.pdf"
    assert s.cli("report", "security", "-o", str(out)) == 2
    assert not out.exists()
    assert "--output names the Markdown file" in capsys.readouterr().err
