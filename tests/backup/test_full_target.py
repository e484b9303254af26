"""A full replica is the target's condition, not the documents': it is a failure that pages
(never a quarantine of every new document), and paths set aside for space are tried again
without waiting for their next change."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from pathlib import Path

import pytest

import backup.replicator as replicator_module
from backup.quarantine import Quarantine
from backup.replicator import Replicator
from backup.transport import parse_target
from sensors.reading import Kind
from sentinel.replication import replication_readings
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running
from tests.fixtures.poll import until
from tests.fixtures.tmpfs import fill, mounted_tmpfs


async def test_full_target_fails_and_pages_instead_of_setting_documents_aside(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "d1").write_text("d1")
    with mounted_tmpfs(tmp_path / "dst", "2m") as dst:
        spec = make_spec(src, parse_target(str(dst)), runtime)
        async with running(spec, bstore) as rep:
            await caught_up(rep, src, dst)
            filler = fill(dst)  # the replica's disk fills up
            (src / "report-1.doc").write_bytes(os.urandom(50000))
            await until(lambda: rep.health()["consecutive_failures"] >= 1, 30, "a failure")
            (src / "report-2.doc").write_bytes(os.urandom(50000))
            await until(lambda: rep.health()["consecutive_failures"] >= 3, 30, "failures pile up")
            health = rep.health()
            assert health["quarantined"] == 0
            assert health["pending"] >= 2  # still owed, and the lag shows it
            assert health["last_error"].startswith("no space left on the replica")
            readings = {r.kind: r.value for r in replication_readings([rep], 0.0)}
            assert readings[Kind.REPLICATION_FAILURES] >= 3  # the `replication failing` alarm
            filler.unlink()  # room again: both arrive by themselves
            await caught_up(rep, src, dst)
            assert rep.health()["consecutive_failures"] == 0
            assert not len(rep.quarantine)


async def test_file_set_aside_for_space_ships_when_the_target_has_room_again(
    tmp_path: Path, bstore: Store, runtime: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    small = [f"s{i}.txt" for i in range(4)]
    for name in small:
        (src / name).write_text(name)
    big = os.urandom(3 << 20)
    (src / "big.bin").write_bytes(big)
    caplog.set_level(logging.INFO, logger="backup.replicator")
    with mounted_tmpfs(tmp_path / "dst", "2m") as dst:
        spec = make_spec(src, parse_target(str(dst)), runtime)
        async with running(spec, bstore) as rep:
            await until(
                lambda: "big.bin" in rep.quarantine and rep.caught_up, 30, "big.bin set aside"
            )
            assert all((dst / n).read_text() == n for n in small)
            assert rep.health()["consecutive_failures"] == 0
            await asyncio.to_thread(
                subprocess.run, ["mount", "-o", "remount,size=8m", str(dst)], check=True
            )
            # big.bin is not touched: it is tried again because there is room now
            await until(
                lambda: (dst / "big.bin").exists() and rep.caught_up and not len(rep.quarantine),
                30,
                "big.bin shipped",
            )
            assert (dst / "big.bin").read_bytes() == big
    assert "removing partial files failed" not in caplog.text


async def test_file_set_aside_for_space_is_tried_again_after_a_while(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where free space cannot be seen (a remote replica), time alone brings the retry; a
    file that still does not fit goes back aside without a failure."""
    monkeypatch.setattr(replicator_module, "SPACE_RETRY", 1.0)
    monkeypatch.setattr(replicator_module, "STATE_POLL", 0.5)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    with mounted_tmpfs(tmp_path / "dst", "2m") as dst:
        spec = make_spec(src, parse_target(str(dst)), runtime)
        async with running(spec, bstore) as rep:
            await until(
                lambda: "big.bin" in rep.quarantine and rep.caught_up, 30, "big.bin set aside"
            )
            shipped = rep.transfers
            await until(lambda: rep.transfers >= shipped + 2, 30, "tried again")
            await until(lambda: "big.bin" in rep.quarantine and rep.caught_up, 30, "back aside")
            assert rep.health()["consecutive_failures"] == 0


async def test_paths_released_by_another_process_ship_without_another_change(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """`sentinel backup sync --full` (another process) releases the quarantine into the
    journal; the running daemon ships those rows by itself."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "q.txt").write_text("was set aside")
    await Quarantine("docs", bstore.db, bstore.write).add([("q.txt", "set aside earlier")])
    spec = make_spec(src, parse_target(str(dst)), runtime, reconcile_at_start=False)
    async with running(spec, bstore) as rep:
        (src / "first.txt").write_text("first")
        await until(lambda: (dst / "first.txt").exists() and rep.caught_up, 30, "first")
        assert not (dst / "q.txt").exists()
        by_hand = Replicator(spec, bstore.db, bstore.write)
        await by_hand.load()
        assert (await by_hand.reconcile("by hand")) is not None
        await until(lambda: (dst / "q.txt").exists(), 30, "q.txt shipped by the daemon")
        assert (dst / "q.txt").read_text() == "was set aside"
