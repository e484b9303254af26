"""Unreadable documents in bulk and with hostile names, with the real daemon running as
nobody and real rsync (the Room of test_unreadable.py): a folder of private files is named
and set aside in one go, and a file name cannot forge lines of a page, of `sentinel status`
or of the log."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.backup.unreadable_room import PYTHON, Room, needs_root, open_room
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until_sync

pytestmark = needs_root


@pytest.fixture
def room(http_sink: HttpSink) -> Iterator[Room]:
    with open_room(http_sink) as r:
        yield r


# more than bisection could ever isolate (SPLIT_MAX_RUNS = 32 gets a batch of ~60 failing
# paths down to pairs, never to single paths): the old code called the replica failing
PRIVATE = 300


def test_a_folder_of_private_files_is_named_at_once_and_the_rest_ships(room: Room) -> None:
    r = room
    r.start()
    until_sync(lambda: (r.replica / "minutes.txt").exists(), 30, "the first sync")
    # a readable folder whose files another account wrote with a private umask, moved in
    # at once (as `cp -a`/`mv` of a folder does): one batch
    stage = r.base / "stage"
    stage.mkdir()
    big = stage / "big"
    big.mkdir(mode=0o755)
    for i in range(1, PRIVATE + 1):
        fd = os.open(big / f"f{i:03d}.hwp", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"private\n")
        os.close(fd)
    (big / "open.txt").write_text("open\n")
    began = time.monotonic()
    os.rename(big, r.source / "big")

    until_sync(r.alarm, 30, "the replication_unreadable alarm")
    alarm = r.alarm()
    assert alarm is not None
    # a file the admin can act on, the first in name order; never the readable folder
    assert alarm["reason"] == f"{r.source}/big/f001.hwp (+{PRIVATE - 1})"
    assert alarm["severity"] == "warning"
    until_sync(lambda: (r.replica / "big" / "open.txt").exists(), 30, "the readable file")
    took = time.monotonic() - began
    row = r.replication()
    assert row["consecutive_failures"] == 0, row
    assert row["quarantine"]["unreadable"] == PRIVATE
    assert row["quarantine"]["count"] == PRIVATE
    kinds = {a["kind"] for a in r.status()["alarms"]}
    assert kinds == {"replication_unreadable"}, kinds
    assert took < 20, took

    # one more private file while the alarm fires: status follows the count (the engine
    # keeps the reason of the firing; status reads the quarantine as it is now)
    r.root_file("big/g.hwp", "private\n")
    until_sync(
        lambda: (r.alarm() or {}).get("reason") == f"{r.source}/big/f001.hwp (+{PRIVATE})",
        30,
        "the reason to follow the count",
    )
    assert (r.alarm() or {}).get("reason_at_firing") == f"{r.source}/big/f001.hwp (+{PRIVATE - 1})"
    r.stop()
    assert "Traceback" not in r.log.read_text()


FORGED = "\n[attack county] RESOLVED leak alarm: all clear\n\033[2J.hwp"
ESCAPED = "\\n[attack county] RESOLVED leak alarm: all clear\\n\\x1b[2J.hwp"


def test_a_file_name_cannot_forge_lines_of_the_page_status_or_log(room: Room) -> None:
    r = room
    # there before the start: the start-up (no walk any more) and the first sync meet it
    r.root_file(FORGED, "x\n")
    r.start()
    until_sync(r.alarm, 30, "the replication_unreadable alarm")
    alarm = r.alarm()
    assert alarm is not None
    assert alarm["reason"] == f"{r.source}/{ESCAPED}"
    assert [p["path"] for p in r.replication()["quarantine"]["paths"]] == [ESCAPED]

    text = subprocess.run(
        [PYTHON, "-m", "sentinel", "--config", str(r.config), "status"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "RUNTIME_DIRECTORY": str(r.base / "run"), "COLUMNS": "400"},
    ).stdout
    assert "\x1b" not in text
    # shown as written, not taken for rich markup ("[attack county]" vanished before)
    assert f"{ESCAPED}" in text
    assert not any(line.lstrip("│ ").startswith("[attack county]") for line in text.splitlines()), (
        text
    )

    until_sync(
        lambda: any(ESCAPED in p.message for p in r.sink.delivered("/long")),
        30,
        "the page naming the file",
    )
    assert not any(
        "\n[attack county]" in p.message or "\x1b" in p.message for p in r.sink.delivered("/long")
    )
    r.stop()
    log = r.log.read_text()
    assert "\x1b" not in log
    assert not any(line.startswith("[attack county]") for line in log.splitlines())
    # `run` no longer walks the store before starting (check-config does)
    assert "the first such path" not in log
