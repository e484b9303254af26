"""The room daemon with a keeper table, whole (issue 11): `sentinel run` replicates to a local
landing area and beats into it; a receipt writer stands in for the keeper. `sentinel status`
(table, --json, --nagios) shows "data safe at the keeper as of", and a missing or stale
receipt as a WARNING saying why; a real leak (mosquitto -> daemon -> json://) pages with
"자료 HH:MM:SS까지 안전"."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.keeper_record import HEARTBEAT_FILE, Receipt, read_heartbeat, write_atomic
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until_sync
from tests.integration.test_page_survives_crash import Deployment, private

ROOM = "main-office"


def leak_pages(d: Deployment) -> list[str]:
    return [m for m in d.pages() if "UPS floor" in m]


class KeeperDeployment(Deployment):
    def __init__(self, tmp: Path, broker: Mosquitto, sink: HttpSink) -> None:
        super().__init__(tmp, broker, sink)
        self.src, self.landing = tmp / "src", tmp / "landing"
        self.receipt = tmp / "receipts" / ROOM / "receipt.json"
        self.src.mkdir()
        (self.src / "report.hwp").write_bytes(b"report")
        self.receipt.parent.mkdir(parents=True)
        private(
            self.config,
            self.config.read_text(encoding="utf-8")
            + f"""
[[replication]]
name = "docs"
source = "{self.src}"
target = "{self.landing}"
[replication.keeper]
room = "{ROOM}"
heartbeat = "1s"
receipt = "{self.receipt}"
confirm_wait = "2s"
receipt_stale = "4s"
""",
        )

    def keeper(self) -> dict:
        rows = [r for r in self.status()["replication"] if r.get("name") == "docs"]
        return rows[0].get("keeper") or {} if rows else {}


class ReceiptWriter(threading.Thread):
    """The keeper reduced to its receipt: answers every heartbeat it reads (the urgent one
    included) with "safe as of" its synced_through."""

    def __init__(self, d: KeeperDeployment) -> None:
        super().__init__(daemon=True)
        self.d = d
        self.halt = threading.Event()
        self.urgent: list[float] = []

    def run(self) -> None:
        last = 0.0
        while not self.halt.wait(0.05):
            try:
                hb = read_heartbeat(self.d.landing / HEARTBEAT_FILE)
            except (OSError, ValueError):
                continue
            if hb.ts == last:
                continue
            last = hb.ts
            if hb.urgent is not None and hb.urgent not in self.urgent:
                self.urgent.append(hb.urgent)
            now = time.time()
            write_atomic(
                self.d.receipt,
                Receipt(ROOM, hb.synced_through, "snap", now, now, answered=hb.urgent).to_json(),
            )


@pytest.fixture
def kd(
    tmp_path: Path, mosquitto: Mosquitto, http_sink: HttpSink, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KeeperDeployment]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime))
    d = KeeperDeployment(tmp_path, mosquitto, http_sink)
    try:
        yield d
    finally:
        d.kill_leftover()


def test_keeper_status_and_the_leak_page_from_the_daemon(kd: KeeperDeployment) -> None:
    d = kd
    d.start()
    # no receipt yet: a WARNING that says the keeper cannot be reached, and why
    until_sync(
        lambda: "keeper unreachable" in str(d.keeper().get("problem")),
        30,
        "the unreachable keeper in status",
    )
    proc = d.cli("status", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["overall"]["state"] == "WARNING"
    assert any(
        f"keeper {ROOM} (docs): keeper unreachable" in r and "No such file" in r
        for r in report["overall"]["reasons"]
    )
    assert read_heartbeat(d.landing / HEARTBEAT_FILE).room == ROOM

    writer = ReceiptWriter(d)
    writer.start()
    try:
        until_sync(
            lambda: (k := d.keeper()).get("safe_as_of") and not k.get("problem"),
            30,
            "the receipt in status",
        )
        keeper = d.keeper()
        assert keeper["room"] == ROOM and keeper["receipt_age"] < 4
        table = d.cli("status")
        assert table.returncode == 0, table.stdout
        assert f"docs: data safe at the keeper {ROOM} as of" in table.stdout
        nagios = d.cli("status", "--nagios").stdout
        assert "SENTINEL OK" in nagios and "'keeper_receipt_age_docs'=" in nagios

        # a real leak: the page carries what the keeper confirmed for it
        d.publish(leak=True)
        # the leak's page by its sensor (on a busy host another page may come first)
        until_sync(lambda: leak_pages(d), 30, "the leak page")
        page = leak_pages(d)[0]
        assert writer.urgent, "no urgent heartbeat reached the landing area"
        assert "까지 안전" in page and "이전 확인" not in page, page
    finally:
        writer.halt.set()
        writer.join()
    # the keeper stops answering: after receipt_stale, a WARNING that says so
    until_sync(
        lambda: "keeper not answering" in str(d.keeper().get("problem")),
        20,
        "the stale receipt in status",
    )
    table = d.cli("status")
    assert table.returncode in (1, 2)  # WARNING (CRITICAL: the leak is still active)
    assert "WARNING docs: keeper not answering: newest receipt is" in table.stdout
    d.terminate()
    assert "heartbeat cannot be shipped" not in d.logs()
