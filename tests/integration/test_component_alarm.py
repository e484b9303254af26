"""The whole daemon, real parts: a replicator whose change journal table is gone crashes at
every restart; after more than `restart_alarm_count` crashes it pages, exactly once, at a
loopback Apprise `json://` sink, and `sentinel status` names the real error."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until_sync
from tests.integration.test_page_survives_crash import private

PYTHON = sys.executable
APPRISE_TOKEN = "tok-planted-8841-secret"


class Deployment:
    def __init__(self, tmp: Path, sink: HttpSink) -> None:
        self.tmp = tmp
        self.sink = sink
        self.source = tmp / "docs"
        self.replica = tmp / "replica"
        self.source.mkdir()
        self.replica.mkdir()
        (self.source / "minutes.txt").write_text("council minutes\n", encoding="utf-8")
        self.log_path = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        query = f"token={APPRISE_TOKEN}&cto=1&rto=1"
        sms, long = sink.json_url("/sms", query=query), sink.json_url("/long", query=query)
        # json:// is an SMS gateway by default (90 bytes); the lms tag asks for the long form
        private(
            tmp / "apprise.yml",
            f'urls:\n  - "{sms}":\n      tag: critical, warning\n'
            f'  - "{long}":\n      tag: critical, warning, lms\n',
        )
        self.config = private(
            tmp / "sentinel.toml",
            f"""
[site]
name = "test county"

[daemon]
state_dir = "{tmp / "state"}"
heartbeat = "0.5s"
restart_alarm_count = 2
restart_alarm_window = "2m"

[alerts]
apprise_config = "apprise.yml"
language = "en"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"

[[replication]]
name = "docs"
source = "{self.source}"
target = "{self.replica}"
""",
        )

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "sentinel", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise

    def status(self) -> tuple[int, dict]:
        proc = subprocess.run(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc.returncode, json.loads(proc.stdout) if proc.stdout else {}

    def component(self) -> dict:
        return self.status()[1].get("components", {}).get("replication:docs", {})

    def pages(self, path: str) -> list[str]:
        return [
            r.message
            for r in self.sink.delivered(path)
            if "component:replication:docs" in r.message
        ]


@pytest.fixture
def deployment(tmp_path: Path, http_sink: HttpSink) -> Iterator[Deployment]:
    d = Deployment(tmp_path, http_sink)
    try:
        yield d
    finally:
        d.terminate()


def test_a_component_in_a_restart_loop_pages_once_with_its_error(
    deployment: Deployment,
) -> None:
    d = deployment
    d.start()
    until_sync(lambda: (d.replica / "minutes.txt").exists(), 30, "the first sync")
    # the journal's table is gone (a vanished source is its own alarm, not a crash): the
    # replicator crashes at every restart for good
    with sqlite3.connect(d.tmp / "state" / "sentinel.db") as db:
        db.execute("DROP TABLE backup_journal")
    (d.source / "agenda.txt").write_text("agenda\n", encoding="utf-8")

    until_sync(lambda: d.pages("/sms") and d.pages("/long"), 30, "the restart-loop pages")
    # the SMS names the component; the long form also says what crashed it
    assert "crash loop" in d.pages("/sms")[0]
    page = d.pages("/long")[0]
    assert "replication:docs keeps failing" in page and "restarts in 2 min" in page
    assert "OperationalError: no such table: backup_journal" in page

    # it keeps crashing, and nobody is paged again for it
    seen = d.component()["restarts"]
    until_sync(lambda: d.component().get("restarts", 0) > seen, 30, "another restart")
    assert len(d.pages("/sms")) == 1 and len(d.pages("/long")) == 1

    code, report = d.status()
    comp = report["components"]["replication:docs"]
    assert comp["failing"] is True and comp["restarts_in_window"] >= 3
    assert comp["last_error"].startswith("OperationalError: ")
    assert report["overall"]["state"] == "CRITICAL" and code == 2
    alarms = [a for a in report["alarms"] if a["sensor"] == "component:replication:docs"]
    assert len(alarms) == 1 and alarms[0]["severity"] == "critical"
    assert "OperationalError" in alarms[0]["reason"]
    assert any("replication:docs keeps failing" in r for r in report["overall"]["reasons"])
    assert APPRISE_TOKEN not in json.dumps(report)
    assert "keeps failing" in d.log_path.read_text(encoding="utf-8", errors="replace")


def test_a_broken_alert_sender_is_paged_around_the_outbox(deployment: Deployment) -> None:
    """The sender's outbox table is gone: the sender crashes at every restart and the engine
    cannot record any alarm. The restart loop still reaches people, directly."""
    d = deployment
    d.start()
    until_sync(lambda: d.component().get("task") == "running", 30, "the daemon up")
    with sqlite3.connect(d.tmp / "state" / "sentinel.db") as db:
        db.execute("DROP TABLE outbox_message")

    def pages(path: str) -> list[str]:
        return [r.message for r in d.sink.delivered(path) if "component:alerts" in r.message]

    until_sync(lambda: pages("/sms") and pages("/long"), 30, "the direct pages")
    assert "crash loop" in pages("/sms")[0]
    long = pages("/long")[0]
    assert "alerts keeps failing" in long and "OperationalError" in long
    assert "sent directly" in long

    code, report = d.status()
    assert code == 2 and report["overall"]["state"] == "CRITICAL"
    assert any(
        "component alerts keeps failing (alarms cannot be paged through it)" in r
        for r in report["overall"]["reasons"]
    )
    assert "FAILING: alerts" in report["daemon"]["status"]  # what systemd's STATUS= says
    seen = report["components"]["alerts"]["restarts"]
    until_sync(
        lambda: d.status()[1]["components"]["alerts"]["restarts"] > seen, 30, "another restart"
    )
    assert len(pages("/sms")) == 1 and len(pages("/long")) == 1
    log = d.log_path.read_text(encoding="utf-8", errors="replace")
    assert "CRITICAL" in log and "component alerts keeps failing" in log
