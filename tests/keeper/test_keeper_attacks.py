"""What a hostile county host (or bad luck) does to the keeper, against a real `sentinel keeper
run`: each case was found by an attack pass on the first version and failed there."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backup.keeper_record import HEARTBEAT_FILE, AlarmNote, Heartbeat, write_atomic
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until_sync
from tests.keeper.helpers import Keeper, snapshot_names


def forged(keeper: Keeper, **fields: object) -> None:
    now = time.time()
    base = {
        "room": "main",
        "replication": "docs",
        "ts": now,
        "seq": 1,
        "pending": 0,
        "rpo": 0.0,
        "synced_through": now,
    }
    write_atomic(keeper.landing["main"] / HEARTBEAT_FILE, Heartbeat(**{**base, **fields}).to_json())  # type: ignore[arg-type]


def test_a_heartbeat_from_the_future_cannot_make_data_safe_as_of_lie(keeper: Keeper) -> None:
    (keeper.landing["main"] / "a.txt").write_text("v1")
    keeper.start()
    beat = keeper.beat(seq=1)
    until_sync(lambda: (r := keeper.receipt()) and r["safe_as_of"], 20, "a receipt")
    four_years = time.time() + 4 * 365 * 86400
    forged(keeper, seq=2, synced_through=four_years, urgent=four_years)
    until_sync(
        lambda: "ahead of this host's clock" in (keeper.room().get("heartbeat_error") or ""),
        20,
        "the refusal in status",
    )
    receipt = keeper.receipt()
    assert receipt is not None and receipt["safe_as_of"] < time.time() + 60
    assert receipt["safe_as_of"] == pytest.approx(beat.synced_through, abs=5)
    assert (receipt.get("answered") or 0) < time.time() + 60


def test_a_fifo_at_the_heartbeats_name_does_not_freeze_the_keeper(keeper: Keeper) -> None:
    keeper.start()
    keeper.beat(seq=1)
    until_sync(lambda: keeper.room().get("heartbeat_age") is not None, 20, "the heartbeat")
    path = keeper.landing["main"] / HEARTBEAT_FILE
    path.unlink()
    os.mkfifo(path)
    # frozen, it would never page; alive, the room counts as silent and pages
    page = until_sync(
        lambda: [p for p in keeper.pages() if "silent" in p], 20, "the silent page despite the FIFO"
    )
    assert page
    assert "not a regular file" in (keeper.room().get("heartbeat_error") or "")


def test_a_slow_drip_deletion_adds_up_to_a_mass_change_page(keeper: Keeper) -> None:
    landing = keeper.landing["main"]
    for i in range(100):
        (landing / f"doc{i:03d}.txt").write_text(f"record {i}")
    keeper.start()
    keeper.beat(seq=1)
    until_sync(lambda: snapshot_names(keeper), 20, "the first snapshot")
    # 10 files a snapshot: below the per-snapshot share (20 of 100), not below the hour's
    for step in range(4):
        for i in range(step * 10, step * 10 + 10):
            (landing / f"doc{i:03d}.txt").unlink()
        before = len(snapshot_names(keeper))
        keeper.beat(seq=2 + step)
        until_sync(lambda b=before: len(snapshot_names(keeper)) > b, 15, "the next snapshot")
    page = until_sync(
        lambda: [p for p in keeper.pages() if "deleted" in p],
        15,
        "the mass-change page for the drip",
    )
    assert "within" in page[0]


def test_a_receipt_that_cannot_be_written_pages(keeper: Keeper) -> None:
    keeper.receipts.write_text("not a directory")
    (keeper.landing["main"] / "a.txt").write_text("v1")
    keeper.start()
    keeper.beat(seq=1)
    page = until_sync(
        lambda: [p for p in keeper.pages() if "snapshots failing" in p],
        20,
        "the page for the unwritable receipt",
    )
    assert page
    assert "receipt" in (keeper.room().get("last_error") or "")


def test_a_restart_during_a_disaster_sends_no_false_all_clear(keeper: Keeper) -> None:
    keeper.start()
    keeper.beat(seq=0, alarms=(AlarmNote("A7F3", "water_leak", "critical", "UPS floor"),))
    until_sync(
        lambda: [p for p in keeper.pages() if "DISASTER" in p], 15, "the likely-disaster page"
    )
    # the writer's --delete takes the heartbeat file; the keeper restarts
    (keeper.landing["main"] / HEARTBEAT_FILE).unlink()
    keeper.stop()
    keeper.start()
    time.sleep(7)  # past silent_after (5 s): a "never heard from" page would be out by now
    pages = keeper.pages()
    assert not [p for p in pages if "normal" in p or "cleared" in p], pages
    assert not [p for p in pages if "never heard from" in p], pages
    room = keeper.room()
    assert room["silent"] is True and room["safe_as_of"] is not None


def test_urgent_spam_cannot_make_a_snapshot_every_second(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    # a long settle: here only `urgent` can make a snapshot due
    k = Keeper(tmp_path, http_sink, settle="60s", snapshot_within="60s")
    try:
        (k.landing["main"] / "a.txt").write_text("v1")
        k.start()
        k.beat(seq=1, urgent=time.time())  # the first urgent request is answered at once
        until_sync(lambda: snapshot_names(k), 20, "the urgent snapshot")
        before = len(snapshot_names(k))
        for n in range(16):
            (k.landing["main"] / "a.txt").write_text(f"v{n}")
            k.beat(seq=2 + n, urgent=time.time())
            time.sleep(0.5)
        # 8 s of an urgent request every 0.5 s, each with new data, within 10 s of the
        # first urgent snapshot: none more (the first version took one per poll: about 16)
        assert len(snapshot_names(k)) - before <= 1
    finally:
        k.stop()


def test_a_heartbeat_naming_another_room_does_not_keep_this_one_alive(keeper: Keeper) -> None:
    keeper.start()
    forged(keeper, room="township")
    page = until_sync(
        lambda: [p for p in keeper.pages() if "never heard" in p], 15, "the silent page"
    )
    assert page
    assert "names room 'township'" in (keeper.room().get("heartbeat_error") or "")
