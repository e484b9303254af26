"""The keeper daemon as the health center runs it: `sentinel keeper run` as a process, a
landing area the "room" writes into, and a loopback json:// channel for its pages.

Here the test plays the room (it writes data and heartbeats the way rsync lands them);
tests/keeper/test_room_to_keeper.py runs a real room daemon shipping over rsync.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backup.keeper_record import AlarmNote
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until_sync
from tests.keeper.helpers import Keeper, snapshot_names


def test_a_silent_room_pages_once_with_data_safe_as_of_and_clears(keeper: Keeper) -> None:
    (keeper.landing["main"] / "doc.txt").write_text("approval 1")
    keeper.start()
    beat = keeper.beat(seq=1)
    # the snapshot after the change makes the heartbeat's moment safe
    receipt = until_sync(lambda: (r := keeper.receipt()) and r["safe_as_of"] and r, 20, "a receipt")
    assert receipt["safe_as_of"] == pytest.approx(beat.synced_through)
    for _ in range(10):  # the room beats for a while (nothing new shipped): no page
        beat = keeper.beat(seq=1)
        time.sleep(0.3)
    assert keeper.pages() == []
    # the room goes dark: one page, after silent_after (5 s)
    dark = time.time()
    page = until_sync(
        lambda: [p for p in keeper.pages() if "silent" in p], 15, "the silent-room page"
    )
    assert time.time() - dark >= 4.0  # silent_after is 5 s from the last beat
    text = page[0]
    assert "main server room" in text
    assert "silent" in text
    # nothing landed after the snapshot, so the last heartbeat's moment is safe too
    assert f"data safe to {time.strftime('%H:%M:%S', time.localtime(beat.synced_through))}" in text
    assert "alarms:" not in text  # the room had none
    time.sleep(3)
    assert len([p for p in keeper.pages() if "silent" in p]) == 1, keeper.pages()
    room = keeper.room()
    assert room["silent"] is True
    assert keeper.cli("keeper", "status", "--nagios").returncode == 2
    # the heartbeat returns: a resolved message
    keeper.beat(seq=1)
    until_sync(
        lambda: any("normal" in p or "cleared" in p for p in keeper.pages()),
        20,
        "the resolved message",
    )


def test_silence_during_a_critical_alarm_is_paged_as_a_likely_disaster(keeper: Keeper) -> None:
    # the beat before the start: on a loaded machine a start slower than silent_after made
    # the room "silent, never heard from" first, and its all-clear was a second page
    keeper.beat(seq=0, alarms=(AlarmNote("A7F3", "water_leak", "critical", "UPS floor"),))
    keeper.start()
    page = until_sync(
        lambda: [p for p in keeper.pages() if "DISASTER" in p], 15, "the likely-disaster page"
    )
    assert "LIKELY DISASTER" in page[0]
    assert "leak(CRIT)" in page[0]
    assert not [p for p in keeper.pages() if "silent" in p and "DISASTER" not in p]


def test_a_room_never_heard_from_pages(keeper: Keeper) -> None:
    keeper.start()
    page = until_sync(lambda: keeper.pages(), 15, "a page for a room never heard from")
    assert "never heard from" in page[0]


def test_changes_are_snapshotted_and_the_snapshot_keeps_the_old_bytes(keeper: Keeper) -> None:
    landing = keeper.landing["main"]
    (landing / "a.txt").write_text("v1")
    keeper.start()
    keeper.beat(seq=1)
    until_sync(lambda: snapshot_names(keeper), 20, "the first snapshot")
    first = snapshot_names(keeper)[-1]
    # the room replaces the file the way rsync does (new file, rename)
    (landing / ".a.txt.tmp").write_text("v2")
    os.replace(landing / ".a.txt.tmp", landing / "a.txt")
    keeper.beat(seq=2)
    until_sync(lambda: len(snapshot_names(keeper)) >= 2, 10, "a second snapshot")
    assert (keeper.snapshots / "main" / first / "a.txt").read_text() == "v1"
    newest = snapshot_names(keeper)[-1]
    assert (keeper.snapshots / "main" / newest / "a.txt").read_text() == "v2"
    room = keeper.room()
    assert room["snapshot_count"] >= 2
    assert room["newest_snapshot"] == newest


def test_a_mass_deletion_in_the_landing_area_pages_and_history_keeps_it(keeper: Keeper) -> None:
    landing = keeper.landing["main"]
    for i in range(60):
        (landing / f"doc{i}.txt").write_text(f"record {i}")
    # landed before the keeper starts: its first snapshot, due at once, could otherwise hold
    # the heartbeat's temporary name, gone by the next one ("61 of 61", seen under load)
    keeper.beat(seq=1)
    keeper.start()
    until_sync(lambda: snapshot_names(keeper), 20, "the first snapshot")
    first = snapshot_names(keeper)[-1]
    # what `rsync -r --delete empty/ target` does from a taken-over county host
    for i in range(60):
        (landing / f"doc{i}.txt").unlink()
    page = until_sync(
        lambda: [p for p in keeper.pages() if "deleted" in p], 15, "the mass-change page"
    )
    assert "60 of 60" in page[0] or "60 of 61" in page[0], page[0]
    assert (keeper.snapshots / "main" / first / "doc7.txt").read_text() == "record 7"


def test_an_urgent_heartbeat_is_answered_without_waiting_for_the_schedule(keeper: Keeper) -> None:
    (keeper.landing["main"] / "a.txt").write_text("v1")
    keeper.start()
    keeper.beat(seq=1)
    until_sync(lambda: (r := keeper.receipt()) and r["safe_as_of"], 20, "a receipt")
    asked = time.time()
    beat = keeper.beat(seq=1, urgent=asked)
    receipt = until_sync(
        lambda: (r := keeper.receipt()) and (r.get("answered") or 0) >= asked and r,
        5,
        "the urgent answer",
    )
    assert receipt["safe_as_of"] == pytest.approx(beat.synced_through)


def test_keeper_restore_copies_a_snapshot_out_and_deletes_nothing(
    keeper: Keeper, tmp_path: Path
) -> None:
    landing = keeper.landing["main"]
    (landing / "dir").mkdir()
    (landing / "dir" / "a.txt").write_text("v1")
    keeper.start()
    keeper.beat(seq=1)
    until_sync(lambda: snapshot_names(keeper), 20, "a snapshot")
    keeper.stop()
    (landing / "dir" / "a.txt").unlink()
    out = tmp_path / "restored"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    refused = keeper.cli("keeper", "restore", "--room", "main", "--to", str(out))
    assert refused.returncode != 0
    proc = keeper.cli(
        "keeper",
        "restore",
        "--room",
        "main",
        "--to",
        str(out),
        "--into-existing",
        "--as-of",
        str(time.time()),
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "dir" / "a.txt").read_text() == "v1"
    assert (out / "mine.txt").read_text() == "keep me"
    unknown = keeper.cli("keeper", "restore", "--room", "nope", "--to", str(out))
    assert unknown.returncode == 2 and "no room 'nope'" in unknown.stderr


def test_status_shows_each_room(tmp_path: Path, http_sink: HttpSink) -> None:
    k = Keeper(tmp_path, http_sink, rooms=("main", "township"), silent_after="60s")
    try:
        (k.landing["main"] / "a.txt").write_text("x")
        k.start()
        k.beat("main", seq=1)
        until_sync(lambda: k.room("main").get("snapshot_count"), 20, "main's snapshot")
        report = k.status()
        rooms = {r["room"]: r for r in report["rooms"]}
        assert set(rooms) == {"main", "township"}
        main = rooms["main"]
        assert main["heartbeat_age"] is not None and main["heartbeat_age"] < 30
        assert main["safe_as_of"] is not None
        assert main["snapshot_count"] >= 1 and main["newest_snapshot"]
        assert main["landing_disk_free"] is not None
        assert rooms["township"]["heartbeat_age"] is None  # never heard from
        table = k.cli("keeper", "status")
        assert "township" in table.stdout and "data safe as of" in table.stdout
        nagios = k.cli("keeper", "status", "--nagios")
        assert "'snapshots_main'=" in nagios.stdout
    finally:
        k.stop()


def test_a_landing_area_inside_the_snapshots_is_refused(tmp_path: Path) -> None:
    from sentinel.config import ConfigError, load_config

    config = tmp_path / "k.toml"
    config.write_text(f"""
[keeper]
snapshot_dir = "{tmp_path / "snap"}"
receipt_dir = "{tmp_path / "rec"}"
[[keeper.rooms]]
name = "main"
landing = "{tmp_path / "snap" / "main"}"
""")
    with pytest.raises(ConfigError, match="writer account would reach"):
        load_config(config)


def test_the_rooms_own_version_pruning_is_no_mass_change(keeper: Keeper) -> None:
    landing = keeper.landing["main"]
    versions = landing / ".sentinel-versions" / "2026-11-01"
    versions.mkdir(parents=True)
    for i in range(300):
        (versions / f"old{i}.txt").write_text(f"old {i}")
    (landing / "doc.txt").write_text("current")
    keeper.start()
    keeper.beat(seq=1)
    until_sync(lambda: snapshot_names(keeper), 20, "the first snapshot")
    time.sleep(1.0)  # the first snapshot's manifest is the one the next take compares with
    first = snapshot_names(keeper)[-1]
    # versions_retention on the room removes a month of versions at once
    for path in versions.iterdir():
        path.unlink()
    keeper.beat(seq=2)
    until_sync(lambda: len(snapshot_names(keeper)) >= 2, 10, "the next snapshot")
    time.sleep(1.0)
    assert not [p for p in keeper.pages() if "deleted" in p], keeper.pages()
    assert (
        keeper.snapshots / "main" / first / ".sentinel-versions" / "2026-11-01" / "old5.txt"
    ).read_text() == "old 5"


def test_snapshots_that_cannot_be_taken_page_and_recover(keeper: Keeper) -> None:
    keeper.snapshots.write_text("not a directory")  # a lost mount, a wrong path, a full disk
    (keeper.landing["main"] / "a.txt").write_text("v1")
    keeper.start()
    keeper.beat(seq=1)
    page = until_sync(
        lambda: [p for p in keeper.pages() if "snapshots failing" in p],
        20,
        "the snapshot-failure page",
    )
    assert "main" in page[0]
    room = keeper.room()
    assert room["snapshot_failures"] >= 1 and "snapshot" in (room["last_error"] or "")
    report = keeper.status()
    assert any("room main" in r for r in report["overall"]["reasons"]), report["overall"]
    assert keeper.proc is not None and keeper.proc.poll() is None  # still running
    keeper.snapshots.unlink()
    keeper.snapshots.mkdir()
    until_sync(lambda: snapshot_names(keeper), 30, "a snapshot after the repair")
    until_sync(
        lambda: any("snapshots failing" in p and "normal" in p for p in keeper.pages()),
        20,
        "the snapshot failure cleared",
    )
