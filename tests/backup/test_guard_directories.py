"""The live ransomware guard measures a directory deleted or moved away by the replica files
it would take with it (one inotify event, many files), the way the full pass's dry run does;
and after `sentinel backup discard` the replica stays as it was."""

from __future__ import annotations

import shutil
from pathlib import Path

from backup.control import discard, resume
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import DIR_GUARD, big_dir, caught_up, make_spec, running, tree
from tests.fixtures.poll import until


async def test_a_directory_moved_out_of_the_source_trips_the_guard(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst, away = tmp_path / "src", tmp_path / "dst", tmp_path / "away"
    big_dir(src)
    (src / "small").mkdir()
    for i in range(5):
        (src / "small" / f"s{i}.txt").write_text(f"small {i}\n")
    away.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        # below the thresholds: a moved directory ships as before
        (src / "small").rename(away / "small")
        await caught_up(rep, src, dst)
        assert not (dst / "small").exists() and not rep.health()["guard_tripped"]

        before = tree(dst)
        (src / "big").rename(away / "big")  # one inotify event, 120 replica files
        await until(lambda: rep.health()["guard_tripped"], 20, "guard trip")
        assert tree(dst) == before
        assert len(list((dst / "big").iterdir())) == 120
        health = rep.health()
        assert health["guard_count"] >= 120
        assert "a directory deleted or moved away" in health["guard_reason"]

        # the operator approves: the measured batch ships (no second trip on the same change)
        await resume(bstore.write, "docs")
        await caught_up(rep, src, dst)
        assert not (dst / "big").exists() and not rep.health()["guard_tripped"]


async def test_discard_after_a_full_pass_trip_keeps_the_directory_on_the_replica(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    big_dir(src)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
    before = tree(dst)
    # while sentinel is stopped: the directory is replaced by a file
    shutil.rmtree(src / "big")
    (src / "big").write_text("note\n")
    async with running(spec, bstore) as rep:
        await until(lambda: rep.health()["guard_tripped"], 20, "full-pass guard trip")
        assert tree(dst) == before
        await discard(bstore.write, "docs")  # "the replica stays as it was"
        await until(lambda: not rep.health()["guard_tripped"], 10, "guard cleared")
        rounds = rep.ship_rounds
        # one edit of the file that replaced it
        (src / "big").write_text((src / "big").read_text() + "more\n")
        await until(lambda: rep.health()["guard_tripped"], 20, "guard trip on the edit")
        assert rep.ship_rounds > rounds
        assert tree(dst) == before
        assert len(list((dst / "big").iterdir())) == 120
