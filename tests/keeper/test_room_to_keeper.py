"""A real room daemon ships to a real keeper; the room is killed (kill -9); the keeper pages
through its own json:// channel, saying up to when the data is safe.

Both are `sentinel` processes. The room replicates a document folder to the keeper's landing
area (a local target here: tests/systemd/test_keeper_access.py and
tests/backup/test_keeper_heartbeat.py run the same records through sshd and rsyncd with the
documented accounts).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until_sync
from tests.keeper.helpers import PYTHON, Keeper


class Room:
    def __init__(self, tmp: Path, keeper: Keeper, *, extra: str = "") -> None:
        self.docs = tmp / "docs"
        self.docs.mkdir()
        (self.docs / "결재").mkdir()
        (self.docs / "결재" / "기안-0001.hwp").write_bytes(b"first approval")
        apprise = tmp / "room-apprise.yml"
        apprise.write_text("urls:\n  - console://:\n      tag: critical, warning, info\n")
        apprise.chmod(0o600)
        self.config = tmp / "room.toml"
        self.config.write_text(f"""
[site]
name = "county"
[daemon]
state_dir = "{tmp / "room-state"}"
heartbeat = "0.5s"
[alerts]
apprise_config = "{apprise}"
[[replication]]
name = "docs"
source = "{self.docs}"
target = "{keeper.landing["main"]}"
[replication.keeper]
room = "main"
heartbeat = "1s"
receipt = "{keeper.receipts / "main" / "receipt.json"}"
{extra}
""")
        self.config.chmod(0o600)
        self.log = tmp / "room.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "sentinel", "--config", str(self.config), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def status(self) -> dict:
        proc = subprocess.run(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return json.loads(proc.stdout) if proc.stdout else {}

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def pair(tmp_path: Path, http_sink: HttpSink) -> Iterator[tuple[Room, Keeper]]:
    keeper = Keeper(tmp_path, http_sink, silent_after="6s")
    room = Room(tmp_path, keeper)
    try:
        yield room, keeper
    finally:
        room.stop()
        keeper.stop()


# late: the room starts after the keeper's silent_after (6 s), as it may on a loaded host
@pytest.mark.parametrize("late", [False, True], ids=["prompt", "late"])
def test_kill_9_of_the_room_pages_from_the_keeper_with_data_safe_as_of(
    pair: tuple[Room, Keeper], late: bool
) -> None:
    room, keeper = pair
    keeper.start()
    if late:
        time.sleep(7)
    room.start()
    # a clerk saves a document; it lands, is snapshotted and confirmed back to the room
    saved = time.time()
    (room.docs / "결재" / "기안-0002.hwp").write_bytes(b"second approval")
    receipt = until_sync(
        lambda: (r := keeper.receipt()) and (r.get("safe_as_of") or 0) > saved and r,
        30,
        "a receipt covering the new document",
    )
    snap = keeper.snapshots / "main" / receipt["snapshot"]
    assert (snap / "결재" / "기안-0002.hwp").read_bytes() == b"second approval"
    keeper_room = until_sync(
        lambda: (
            (r := keeper.room())
            and r.get("heartbeat_age") is not None
            and r["heartbeat_age"] < 3
            and r
        ),
        20,
        "the keeper hearing the room",
    )
    assert keeper_room["snapshot_count"] >= 1
    # a room slower to start than silent_after (4 test workers on 2 cores) is paged as
    # never heard from, and resolved (same #ID) once heard: the keeper at work. Nothing else.
    pages = keeper.pages()
    never_heard = [p for p in pages if "never heard from" in p]
    assert len(never_heard) == 1 if late else len(never_heard) <= 1
    alarm_ids = {p.rsplit("#", 1)[-1] for p in never_heard}
    assert [p for p in pages if p.rsplit("#", 1)[-1] not in alarm_ids] == []
    # (that pair's resolution reads "… silent alarm back to normal")
    assert len(pages) <= 2 and not [p for p in pages if p.startswith("[CRIT]") and "silent" in p]
    # the power fails in the room
    room.kill9()
    died = time.time()
    page = until_sync(
        lambda: [p for p in keeper.pages()[len(pages) :] if p.startswith("[CRIT]")],
        30,
        "the keeper's silent-room page",
    )[0]
    assert "silent" in page
    assert time.time() - died < 6 + 5  # threshold + 5 s (bench/keeper_deadman.py measures it)
    assert "main server room" in page
    safe = keeper.room()["safe_as_of"]
    assert safe >= saved
    assert f"data safe to {time.strftime('%H:%M:%S', time.localtime(safe))}" in page
    # the room comes back: the keeper says so
    room.start()
    until_sync(lambda: any("normal" in p for p in keeper.pages()), 30, "the resolved message")


def test_a_keeper_that_stops_answering_is_paged_by_the_room(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    keeper = Keeper(tmp_path, http_sink, silent_after="60s")
    room = Room(tmp_path, keeper, extra='receipt_stale = "4s"')
    try:
        keeper.start()
        room.start()
        until_sync(lambda: (r := keeper.receipt()) and r.get("safe_as_of"), 30, "the first receipt")
        time.sleep(5)  # past receipt_stale: receipts keep coming (one per accepted beat)
        page = "백업 보관 서버 main 응답 없음"  # the room's alerts are in Korean (the default)
        assert page not in room.log.read_text()
        keeper.stop()
        until_sync(lambda: page in room.log.read_text(), 30, "the room's page about its keeper")
        report = room.status()
        assert any("keeper" in a.get("reason", "") for a in report["alarms"]), report["alarms"]
    finally:
        room.stop()
        keeper.stop()
