"""Ransomware guard, point-in-time restore, checksum verify, status and readings."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

from backup.control import discard, resume
from backup.replicator import Replicator
from backup.restore import drill, restore
from backup.spec import GuardSettings
from backup.status import read_status
from backup.target import VERSIONS_DIR
from backup.transport import parse_target
from sentinel.replication import replication_readings
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, populate_docs, running, tree, tree_diff
from tests.fixtures.poll import until


async def test_mass_rename_to_locked_trips_guard_and_replica_is_untouched(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 300)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GuardSettings())  # defaults
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        before = tree(dst)
        for p in sorted((src / "docs").iterdir()):  # what an encrypting worm does
            p.write_bytes(b"\x00ENCRYPTED" + os.urandom(64))
            p.rename(p.with_name(p.name + ".locked"))
        await until(lambda: rep.health()["guard_tripped"], 20, "guard trip")
        await until(lambda: rep.journal.pending >= 300, 10, "changes journaled")
        await asyncio.sleep(0.5)  # give a wrongly running shipper the chance to do damage
        assert tree(dst) == before
        assert not list(dst.rglob("*.locked"))
        assert rep.health()["guard_count"] > 200
        readings = {r.kind: r.value for r in replication_readings([rep], time.time())}
        assert readings["replication_guard"] is True
        conn = sqlite3.connect(bstore.path)
        status = read_status(conn, time.time())
        conn.close()
        assert status["docs"]["guard"]["tripped"] is True
        assert status["docs"]["pending"] >= 300

        # the operator decides the change is legitimate: pending changes ship
        await resume(bstore.write, "docs")
        await caught_up(rep, src, dst)
        assert not rep.health()["guard_tripped"]
        kept = list((dst / VERSIONS_DIR).rglob("doc000.hwp"))
        assert kept and kept[0].read_bytes().startswith(b"document 0")


async def test_discard_drops_pending_changes_and_leaves_replica(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 120)
    guard = GuardSettings(max_files=50)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=guard)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        before = tree(dst)
        for p in list((src / "docs").iterdir()):
            p.unlink()
        await until(lambda: rep.health()["guard_tripped"], 20, "guard trip")
        assert await discard(bstore.write, "docs") >= 51
        await until(lambda: not rep.health()["guard_tripped"], 10, "guard cleared")
        await until(lambda: rep.journal.pending == 0, 10, "journal empty")
        assert tree(dst) == before


async def test_restore_as_of_gives_older_content_and_drill_passes(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)
    (src / "a" / "report.txt").write_text("version 1")
    (src / "kept.txt").write_text("deleted later")
    target = parse_target(str(dst))
    spec = make_spec(src, target, runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        await asyncio.sleep(0.05)
        as_of = time.time()
        await asyncio.sleep(0.05)
        (src / "a" / "report.txt").write_text("version 2, longer")
        (src / "kept.txt").unlink()
        (src / "new.txt").write_text("created after")
        await caught_up(rep, src, dst)
        (src / "a" / "report.txt").write_text("version 3")
        await caught_up(rep, src, dst)

        now_dir = tmp_path / "now"
        await restore(target, runtime, now_dir)
        assert not tree_diff(src, now_dir)

        old = tmp_path / "old"
        result = await restore(target, runtime, old, as_of=as_of)
        assert (old / "a" / "report.txt").read_text() == "version 1"
        assert (old / "kept.txt").read_text() == "deleted later"
        assert not (old / "new.txt").exists()
        assert result.versions_used

        one = tmp_path / "one"
        await restore(target, runtime, one, path="a/report.txt", as_of=as_of)
        assert (one / "a" / "report.txt").read_text() == "version 1"

        result_drill = await drill(spec)
        assert result_drill.ok, result_drill


async def test_verify_finds_a_planted_difference(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 5)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        assert (await rep.verify())["ok"]
        victim = dst / "docs" / "doc002.hwp"
        st = victim.stat()
        data = bytearray(victim.read_bytes())
        data[3] ^= 0xFF  # bit rot: same size, same mtime, only a checksum sees it
        victim.write_bytes(bytes(data))
        os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
        (dst / "docs" / "doc004.hwp").unlink()
        record = await rep.verify()
        assert not record["ok"]
        assert {"docs/doc002.hwp", "docs/doc004.hwp"} <= set(record["sample"])
        readings = {r.kind: r.value for r in replication_readings([rep], time.time())}
        assert readings["replication_verify"] is True
        assert readings["replication_lag"] == 0.0
        conn = sqlite3.connect(bstore.path)
        assert read_status(conn, time.time())["docs"]["last_verify"]["differences"] == 2
        conn.close()


def test_status_without_tables_is_empty(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db")
    assert read_status(conn, time.time()) == {}
    conn.close()


class _Clock:
    """Real time plus an offset a test moves forward (to slide the guard window past)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_tripped_guard_holds_after_its_window_and_after_a_restart(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 120)
    guard = GuardSettings(max_files=50, window=60.0)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=guard)
    clock = _Clock()
    async with running(spec, bstore, clock=clock) as rep:
        await caught_up(rep, src, dst)
        before = tree(dst)
        for p in sorted((src / "docs").iterdir()):
            p.write_bytes(b"\x00ENCRYPTED" + os.urandom(64))
        await until(lambda: rep.health()["guard_tripped"], 20, "guard trip")
        await until(lambda: rep.journal.pending >= 120, 10, "changes journaled")
        # the window slides past: the live count is back to zero, the trip must hold
        clock.offset += 2 * guard.window
        rounds = rep.ship_rounds
        (src / "docs" / "late.hwp").write_text("one more change wakes the shipper")
        await until(lambda: rep.ship_rounds > rounds, 10, "a shipping round")
        assert tree(dst) == before
    clock.offset += 2 * guard.window
    async with running(spec, bstore, clock=clock) as rep:  # a restart of the daemon
        await until(lambda: rep.ship_rounds >= 1, 10, "a shipping round after restart")
        assert rep.health()["guard_tripped"] and rep.journal.pending >= 120
        assert tree(dst) == before
        await resume(bstore.write, "docs")
        await caught_up(rep, src, dst)
        assert (dst / "docs" / "doc000.hwp").read_bytes().startswith(b"\x00ENCRYPTED")


async def test_a_guarded_full_pass_ships_what_changed_offline_and_nothing_else(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """The dry run the guard measures is the whole pass when it finds nothing to change; a
    change it does find (an attribute only, a new file) still reaches the replica."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 20)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GuardSettings())
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
    by_hand = Replicator(spec, bstore.db, bstore.write)
    await by_hand.load()
    result = await by_hand.reconcile("unchanged")
    assert result is not None and result.ok and by_hand.transfers == 0

    # while nobody watched: a permission change and a new file
    (src / "docs" / "doc007.hwp").chmod(0o600)
    (src / "docs" / "late.hwp").write_text("written while sentinel was stopped")
    result = await by_hand.reconcile("changed offline")
    assert result is not None and result.ok and by_hand.transfers == 1
    assert (dst / "docs" / "doc007.hwp").stat().st_mode & 0o777 == 0o600
    assert (dst / "docs" / "late.hwp").read_text() == "written while sentinel was stopped"
    assert not tree_diff(src, dst)
