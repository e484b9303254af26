"""A UPS to a phone, real parts: dummy-ups -> upsd -> `sentinel run` (NUT source, alarm
engine, outbox) -> Apprise json:// -> a loopback HTTP sink. The UPS goes OL -> OB -> LB -> OL;
each page and each resolve arrives once, in order. upsd stopped: the sensors are lost; upsd
back: resolved."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.http_sink import HttpSink, Received
from tests.fixtures.nut import ON_MAINS, Upsd
from tests.fixtures.poll import until_sync

PYTHON = sys.executable
# after the last expected page: long enough for a duplicate to show, at the 0.5 s poll
SETTLE = 2.0


def private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


class UpsDaemon:
    """`sentinel run` watching the module's upsd, paging the sink."""

    def __init__(
        self,
        tmp: Path,
        upsd: Upsd,
        sink: HttpSink,
        *,
        crit_after: float = 4.0,
        interval: float = 0.5,
    ) -> None:
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / "daemon.log"
        url = sink.json_url("/sms", query="cto=1&rto=1")
        private(tmp / "apprise.yml", f'urls:\n  - "{url}":\n      tag: critical, warning\n')
        sensors = "".join(
            f'[[sensors]]\nid = "{sid}"\nlocation = "전산실 UPS"\nkind = "{kind}"\n'
            f'format = "nut"\nsource = "main"\nups = "rack"\n\n'
            for sid, kind in (("ups-power", "ups_on_battery"), ("ups-battery", "ups_battery_low"))
        )
        self.config = private(
            tmp / "sentinel.toml",
            f"""
[site]
name = "test county"

[daemon]
state_dir = "{tmp / "state"}"
heartbeat = "0.5s"

[[nut]]
name = "main"
port = {upsd.port}
interval = {interval}
username = "monitor"
password = "{upsd.password}"

{sensors}
[[rules]]
kind = "ups_on_battery"
crit_high = {crit_after}
clear_hold = "0.5s"  # the default minute before the all-clear, short for the test

[alerts]
apprise_config = "apprise.yml"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"
""",
        )

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "sentinel", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        until_sync(self.polling, 30, "the daemon polling upsd", interval=0.2)

    def status(self) -> dict:
        done = subprocess.run(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def polling(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log_path.read_text()
        source = self.status().get("components", {}).get("source:nut:main", {})
        return source.get("state") == "connected" and source.get("polls", 0) >= 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def daemon(tmp_path: Path, upsd: Upsd, http_sink: HttpSink) -> Iterator[UpsDaemon]:
    upsd.start()
    upsd.set("rack", **{k.replace(".", "_"): v for k, v in ON_MAINS.items()})
    d = UpsDaemon(tmp_path, upsd, http_sink)
    d.start()
    try:
        yield d
    finally:
        d.stop()
        upsd.start()
        upsd.set("rack", **{k.replace(".", "_"): v for k, v in ON_MAINS.items()})


def alarm_id(page: Received) -> str:
    return page.message.rsplit("#", 1)[-1]


def delivered(sink: HttpSink, count: int, within: float = 15.0) -> list[Received]:
    return until_sync(
        lambda: (got := sink.delivered("/sms")) and len(got) >= count and got,
        within,
        lambda: f"{count} pages, got {[p.message for p in sink.delivered('/sms')]}",
    )


def settled(sink: HttpSink, count: int) -> list[Received]:
    """The `count` pages, once no more arrived for SETTLE seconds."""
    pages = delivered(sink, count, within=20)
    time.sleep(SETTLE)
    later = sink.delivered("/sms")
    assert len(later) == count, [p.message for p in later]
    return pages


def test_ups_on_battery_warns_then_critical_low_battery_then_back(
    daemon: UpsDaemon, upsd: Upsd, http_sink: HttpSink
) -> None:
    upsd.set("rack", ups_status="OB DISCHRG", battery_charge="80")
    warn = delivered(http_sink, 1, within=10)[0]
    assert warn.message.startswith("[주의]") and "정전" in warn.message, warn.message
    # crit_high = 4 s on battery: the same alarm, raised
    crit = delivered(http_sink, 2, within=15)[1]
    assert crit.message.startswith("[위험]") and "정전" in crit.message, crit.message
    assert alarm_id(crit) == alarm_id(warn)

    upsd.set("rack", ups_status="OB DISCHRG LB", battery_charge="9")
    low = delivered(http_sink, 3, within=10)[2]
    assert low.message.startswith("[위험]") and "UPS 배터리 부족" in low.message, low.message

    upsd.set("rack", ups_status="OL CHRG", battery_charge="12")
    pages = settled(http_sink, 5)
    resolves = pages[3:]
    assert all(p.message.startswith("[해제]") for p in resolves), [p.message for p in resolves]
    assert {alarm_id(p) for p in resolves} == {alarm_id(warn), alarm_id(low)}
    # ordered as the UPS went: warning, critical, low battery, then the two resolves
    assert [p.mono for p in pages] == sorted(p.mono for p in pages)


def test_upsd_down_pages_the_sensors_lost_and_back_resolves(
    daemon: UpsDaemon, upsd: Upsd, http_sink: HttpSink
) -> None:
    upsd.stop_upsd()
    lost = delivered(http_sink, 2, within=10)
    assert all("센서 응답 없음" in p.message for p in lost), [p.message for p in lost]
    status = daemon.status()
    source = status["components"]["source:nut:main"]
    assert source["state"] == "disconnected" and "rack" in source["ups_down"]
    assert upsd.password not in json.dumps(status)

    upsd.start_upsd()
    pages = settled(http_sink, 4)
    assert all(p.message.startswith("[해제]") for p in pages[2:]), [p.message for p in pages]
    assert {alarm_id(p) for p in pages[2:]} == {alarm_id(p) for p in lost}
    assert upsd.password not in daemon.log_path.read_text()
