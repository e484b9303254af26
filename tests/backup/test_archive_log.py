"""Archive-log replication with plain files (Oracle and Tibero naming): closed logs ship,
the sequence is tracked on the replica's side, a hole is a CRITICAL gap naming the missing
numbers, the data RPO is the contiguous head's close time, and bad input loses nothing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from rich.console import Console

from alerts import reasons
from alerts.templates import KIND_LABELS
from backup.archive_log import ArchiveLog
from backup.logname import PG_SEGMENT_SIZE, LogName, LogNaming
from backup.replicator import Replicator
from backup.spec import GuardSettings
from backup.status import read_status
from backup.transport import parse_target
from sensors.reading import Reading
from sentinel.alarm.rules import BUILTIN, CRITICAL
from sentinel.backup_commands import BackupCommand, apply
from sentinel.cli import status as cli_status
from sentinel.config.replication import KeeperLinkConfig, ReplicationConfig
from sentinel.replication import replication_readings, spec_from_config
from sentinel.room_heartbeat import RoomHeartbeat
from sentinel.status import _replication
from sentinel.store import Store
from tests.alarm.helpers import Outbox, config, sent, started_engine
from tests.backup.helpers import make_spec, running
from tests.fixtures.poll import until

ORACLE = LogNaming("oracle")
PG = LogNaming("postgresql")


def put(src: Path, name: str, body: bytes = b"redo", closed: float | None = None) -> float:
    """An archive command's way: written under a temporary name, renamed into place."""
    final = src / name
    tmp = final.parent / f".{final.name}.tmp"
    tmp.write_bytes(body)
    if closed is not None:
        os.utime(tmp, (closed, closed))
    os.rename(tmp, src / name)
    return os.stat(src / name).st_mtime


def readings(rep: Replicator) -> dict[str, Reading]:
    return {r.kind: r for r in replication_readings([rep], time.time())}


async def test_oracle_logs_ship_a_gap_pages_critical_and_resolves_when_the_log_arrives(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    t0 = time.time() - 600
    for seq in (1, 2, 3):
        put(src, f"1_{seq}_999.arc", closed=t0 + seq)
    spec = make_spec(src, parse_target(str(dst)), runtime, name="ora", log_naming=ORACLE)
    async with running(spec, bstore) as rep:
        assert rep.archive is not None
        await until(lambda: rep.archive.sequence.head == 3, 30, "logs 1-3 arrived")
        assert rep.archive.sequence.head_closed == t0 + 3
        assert rep.archive.sequence.gap == ()
        h = rep.replication_health()
        # the lag alarm of a database replication is the data RPO, not the file lag
        assert h.data_rpo is not None and h.data_rpo >= 600 - 3
        assert h.rpo < 597  # the files themselves are all shipped
        assert readings(rep)["replication_lag"].value >= 597
        assert readings(rep)["replication_log_gap"].value is False
        # the keeper is told the data is safe as of the head's close, not as of now
        await until(lambda: rep.caught_up, 30, "caught up")
        room = RoomHeartbeat(
            spec,
            KeeperLinkConfig(receipt=str(tmp_path / "receipt.json"), heartbeat=1.0),
            "main-office",
            rep,
            bstore.db,
        )
        assert (await room.heartbeat()).synced_through == t0 + 3

        # 4 and 5 never reach the archive (deleted by hand, lost by the archive command);
        # 6 arrives: 4-5 are a gap, the head stays at 3
        put(src, "1_6_999.arc", closed=t0 + 6)
        await until(lambda: (dst / "1_6_999.arc").exists(), 30, "log 6 at the target")
        await until(lambda: rep.archive.sequence.gap == ("4-5",), 30, "gap 4-5")
        assert rep.archive.sequence.head == 3
        gap = readings(rep)["replication_log_gap"]
        assert gap.value is True
        assert gap.detail == "log sequence gap: 4-5 missing"
        assert gap.cause == reasons.LOG_GAP and gap.params == {"missing": "4-5"}
        assert BUILTIN["replication_log_gap"] == {"severity": CRITICAL}
        # through the real alarm engine: one CRITICAL page naming the missing logs
        engine = await started_engine(bstore, config([]), Outbox(), time.time)
        for _ in range(2):  # the next round of readings pages nothing more
            for r in replication_readings([rep], time.time()):
                await engine.submit(r)
        pages = [e for e in await sent(bstore) if e["kind"] == "replication_log_gap"]
        assert [(e["event"], e["severity"], e["sensor_id"]) for e in pages] == [
            ("firing", "critical", "replication:ora")
        ]
        assert pages[0]["reason"] == "log sequence gap: 4-5 missing"

        # status reads the same from the database (what `sentinel status` prints)
        with sqlite3.connect(bstore.path) as conn:
            row = _replication(read_status(conn, time.time()))[0]
        assert row["log_gap"] == ["4-5"] and row["log_head"] == 3
        assert row["data_rpo_seconds"] >= 600 - 3
        console = Console(record=True, width=200)
        cli_status._replication({"replication": [row]}, console, time.time(), 1)
        text = console.export_text()
        assert "ora: data RPO" in text and "(log head 1_3_999.arc)" in text
        assert "ora: CRITICAL log sequence gap: 4-5 missing" in text

        # a log waiting in the source is not a gap (only lag): 4 is there, 5 still not
        put(src, "1_4_999.arc", closed=t0 + 4)
        await until(
            lambda: rep.archive.sequence.gap == ("5",) and rep.archive.sequence.head == 4,
            30,
            "gap down to 5, head 4",
        )
        put(src, "1_5_999.arc", closed=t0 + 5)
        await until(lambda: rep.archive.sequence.head == 6, 30, "head 6")
        assert rep.archive.sequence.gap == ()
        assert rep.archive.sequence.head_closed == t0 + 6
        assert readings(rep)["replication_log_gap"].value is False
        for r in replication_readings([rep], time.time()):
            await engine.submit(r)
        pages = [e for e in await sent(bstore) if e["kind"] == "replication_log_gap"]
        assert [e["event"] for e in pages] == ["firing", "resolved"]

    # what arrived is remembered across a restart (the table is the truth)
    again = Replicator(spec, bstore.db, bstore.write)
    await again.load()
    assert again.archive is not None and again.archive.sequence.head == 6


async def test_bad_input_a_hostile_name_a_non_log_and_an_empty_log_lose_nothing(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    put(src, "1_1_999.arc")
    spec = make_spec(src, parse_target(str(dst)), runtime, name="ora", log_naming=ORACLE)
    async with running(spec, bstore) as rep:
        assert rep.archive is not None
        await until(lambda: rep.archive.sequence.head == 1, 30, "log 1")
        # a name that only looks like log 7 (a newline after it), a note, an empty log 2
        put(src, "1_7_999.arc\n", b"not a log")
        put(src, "README.txt", b"archive of the approval database")
        put(src, "1_2_999.arc", b"")
        await until(lambda: (dst / "README.txt").exists(), 30, "the note shipped")
        await until(lambda: (dst / "1_7_999.arc\n").exists(), 30, "the odd name shipped")
        # neither counts in the sequence: no gap below a "7", no head at 2
        await until(lambda: rep.replication_health().quarantined_other == 1, 30, "empty log held")
        assert rep.archive.sequence.gap == () and rep.archive.sequence.head == 1
        assert not (dst / "1_2_999.arc").exists()
        assert "partial log" in rep.quarantine.reasons["1_2_999.arc"]
        # the archive command writes it again, whole: it ships and counts
        put(src, "1_2_999.arc", b"redo 2")
        await until(lambda: rep.archive.sequence.head == 2, 30, "log 2 once whole")
        assert (dst / "1_2_999.arc").read_bytes() == b"redo 2"
        assert "1_2_999.arc" not in rep.quarantine.reasons


async def test_tibero_threads_are_tracked_apart_and_an_acknowledgement_clears_a_gap(
    tmp_path: Path, bstore: Store
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    naming = LogNaming("tibero")
    log = ArchiveLog("tb", src, naming, bstore.db, bstore.write)
    await log.load()
    t0 = time.time() - 100
    names = []
    for thread, seq in ((1, 10), (1, 11), (2, 5), (2, 8), (1, 12)):
        name = f"log-t{thread}-r0-s{seq}.arc"
        put(src, name, closed=t0 + seq)
        names.append(name)
    # logs older than the first one ever seen (1..9 of thread 1, 1..4 of thread 2) are no gap
    assert await log.arrived(names) == 5
    seq = log.sequence
    assert seq.gap == ("t2:6-7",)
    # the worst thread sets the data RPO: thread 2's head is log 5
    assert seq.head == 5 and seq.head_closed == t0 + 5
    # a new base backup made the hole moot: the operator acknowledges it
    assert await log.acknowledge() == {1: 12, 2: 8}
    assert log.sequence.gap == ()
    # thread 2 now reaches its log 8, still the older of the two heads
    assert log.sequence.head == 8 and log.sequence.head_closed == t0 + 8
    # a later hole is a gap again
    put(src, "log-t1-r0-s14.arc", closed=t0 + 14)
    await log.arrived(["log-t1-r0-s14.arc"])
    assert log.sequence.gap == ("13",)


def test_the_gap_is_worded_in_both_languages() -> None:
    labels = {"replication_log_gap": KIND_LABELS["en"]["replication_log_gap"]}
    params = {"missing": "41-43"}
    assert (
        reasons.condition(reasons.LOG_GAP, params, "replication_log_gap", labels, "en")
        == "log sequence gap: 41-43 missing"
    )
    assert (
        reasons.condition(reasons.LOG_GAP, params, "replication_log_gap", labels, "ko")
        == "로그 순번 누락: 41-43 없음"
    )


def test_a_configured_archive_log_replication_gets_its_naming(tmp_path: Path) -> None:
    rc = ReplicationConfig.model_validate(
        {
            "name": "onnara-db",
            "kind": "archive-log",
            "source": str(tmp_path / "src"),
            "target": str(tmp_path / "dst"),
            "database": {"preset": "oracle"},
        }
    )
    spec = spec_from_config(rc, tmp_path)
    assert spec.log_naming is not None and spec.log_naming.parse("2_41_7.arc") == LogName(2, 41)
    files = ReplicationConfig.model_validate(
        {"name": "docs", "source": str(tmp_path / "src"), "target": str(tmp_path / "dst")}
    )
    assert spec_from_config(files, tmp_path).log_naming is None


async def test_log_ack_makes_the_current_gap_moot_and_a_later_one_pages_again(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for seq in (1, 2, 5):
        put(src, f"1_{seq}_999.arc")
    spec = make_spec(src, parse_target(str(dst)), runtime, name="ora", log_naming=ORACLE)
    async with running(spec, bstore) as rep:
        await until(lambda: rep.archive.sequence.gap == ("3-4",), 30, "gap 3-4")
        files = Replicator(make_spec(src, parse_target(str(dst)), runtime), bstore.db, bstore.write)
        refused = await apply(
            BackupCommand.LOG_ACK, {"name": "docs"}, lambda _: files, bstore.write
        )
        assert not refused.ok and "not an archive-log replication" in refused.message
        # `sentinel backup log-ack ora`, as the daemon applies it
        done = await apply(BackupCommand.LOG_ACK, {"name": "ora"}, lambda _: rep, bstore.write)
        assert done.ok and "thread 1: 5" in done.message
        assert rep.archive.sequence.gap == () and rep.archive.sequence.head == 5
        assert readings(rep)["replication_log_gap"].value is False
        put(src, "1_7_999.arc")
        await until(lambda: rep.archive.sequence.gap == ("6",), 30, "a new gap: 6")


async def test_a_burst_of_logs_renamed_into_place_neither_holds_nor_trips_the_guard(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """Each log an archive command writes is a temporary file renamed away: not an
    existing file modified. 60 logs at once beside 60 old ones (past the guard's 50-file,
    20 % share rule) ship at once, with the guard on."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for seq in range(1, 61):
        put(src, f"1_{seq}_999.arc")
    spec = make_spec(
        src, parse_target(str(dst)), runtime, name="ora", log_naming=ORACLE, guard=GuardSettings()
    )
    async with running(spec, bstore) as rep:
        await until(lambda: rep.archive.sequence.head == 60, 30, "old logs")
        for seq in range(61, 121):
            put(src, f"1_{seq}_999.arc")
        await until(
            lambda: rep.archive.sequence.head == 120,
            30,
            lambda: f"the burst: {rep.archive.sequence} {rep.replication_health()}",
        )
        assert not rep.replication_health().guard_tripped
        assert rep.guard.count(time.time()) == 0


async def test_a_stray_name_with_a_huge_number_is_one_gap_not_a_hang(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """A hole is named by its ends: before, one stray `1_999999999999_1.arc` in the archive
    made a list of 10^12 numbers (out of memory, nothing paged)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for seq in (1, 2):
        put(src, f"1_{seq}_999.arc")
    put(src, "1_999999999999_999.arc")
    spec = make_spec(src, parse_target(str(dst)), runtime, name="ora", log_naming=ORACLE)
    async with running(spec, bstore) as rep:
        assert rep.archive is not None
        await until(
            lambda: rep.archive.sequence.gap == ("3-999999999998",), 30, "one gap, by its ends"
        )
        assert rep.archive.sequence.head == 2
        assert readings(rep)["replication_log_gap"].value is True


@pytest.mark.parametrize("folder", [".", ".wal"])
async def test_a_partial_log_beside_a_directory_entry_of_the_batch_is_held_back(
    tmp_path: Path, bstore: Store, runtime: Path, folder: str
) -> None:
    """A directory in a batch ships with `-d --delete`: rsync sends every file in it. A
    truncated segment renamed in there after the batch was taken, its own event not yet
    journaled, rode along unchecked and reached the replica; its own event then held it
    back, with the truncated copy already shipped (seen under four parallel test workers)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, name="pgdir", log_naming=PG)
    rep = Replicator(spec, bstore.db, bstore.write)
    (src / folder).mkdir(exist_ok=True)
    await rep.load()
    first = await rep.reconcile("first")
    assert first is not None and first.ok
    # the directory itself: the first walk found it changed
    await rep.journal.record([folder])
    here = "" if folder == "." else f"{folder}/"
    whole, cut = f"{here}000000010000000000000001", f"{here}000000010000000000000002"
    put(src, whole, b"w" * PG_SEGMENT_SIZE)
    put(src, cut, b"c" * (1 << 20))  # the archive disk filled up: a copy cut short
    assert await rep._ship_one() is True
    assert (dst / whole).stat().st_size == PG_SEGMENT_SIZE  # the whole one went along
    assert not (dst / cut).exists()
    assert "partial log" in rep.quarantine.reasons[cut]


async def test_a_log_whole_by_the_time_it_is_set_aside_still_ships_and_counts(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy still being written (`cp` straight to the final name) when the directory scan
    before a run saw it partial, and closed before the set-aside landed: its close was
    journaled first (nothing to release yet), the next run left it out as set aside, and
    still counted it as arrived. Whole in the source, never on the replica, and the head
    past it. Found by a review; the scan is slowed to widen the window."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / ".wal").mkdir(parents=True)
    spec = make_spec(src, parse_target(str(dst)), runtime, name="pgrace", log_naming=PG)
    seg = ".wal/000000010000000000000001"
    async with running(spec, bstore) as rep:
        assert rep.archive is not None
        await until(lambda: rep.caught_up, 30, "the start pass")
        scan, seen = rep.archive.scan, asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow_scan(dirs: Iterable[str] = ("",)) -> tuple[list[str], list[tuple[str, str]]]:
            found = scan(dirs)
            if any(p == seg for p, _ in found[1]):
                loop.call_soon_threadsafe(seen.set)
                time.sleep(1.0)
            return found

        monkeypatch.setattr(rep.archive, "scan", slow_scan)
        with open(src / seg, "wb") as copy:  # noqa: ASYNC230 (a writer, as cp is)
            copy.write(b"w" * (1 << 20))
            copy.flush()
            os.chmod(src / ".wal", 0o750)  # the directory itself joins a batch
            await asyncio.wait_for(seen.wait(), 30)
            copy.write(b"w" * (PG_SEGMENT_SIZE - (1 << 20)))
        await until(
            lambda: (dst / seg).exists() and (dst / seg).stat().st_size == PG_SEGMENT_SIZE,
            30,
            "the whole segment at the target",
        )
        await until(lambda: seg not in rep.quarantine.reasons, 30, "no longer set aside")
        await until(lambda: rep.archive.sequence.head_name == seg, 30, "counted once shipped")
