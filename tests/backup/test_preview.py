"""The full pass's dry run (backup/preview.py): what the guard measures before a reconcile."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from backup.markers import TARGET_MARKER
from backup.orphans import first_orphan
from backup.preview import preview_full_sync
from backup.replicator import Replicator
from backup.spec import GuardSettings
from backup.target import VERSIONS_DIR
from backup.transfer import PROTECTED, full_sync
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import make_spec, tree, tree_diff


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `rsync` on PATH that writes down its command line, then runs the real rsync."""
    real = shutil.which("rsync")
    assert real is not None
    bindir, log = tmp_path / "bin", tmp_path / "argv.log"
    bindir.mkdir()
    wrapper = bindir / "rsync"
    wrapper.write_text(
        f'#!/bin/sh\n{{ printf \'%s\\n\' "$@"; echo ---; }} >>{log}\nexec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return log


def _runs(log: Path) -> list[list[str]]:
    return [run.strip("\n").split("\n") for run in log.read_text().split("---\n") if run.strip()]


async def test_the_dry_run_lists_the_whole_tree_first_and_counts_nested_changes(
    tmp_path: Path, runtime: Path, argv_log: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for d in ("a/b/c", "x"):
        (src / d).mkdir(parents=True)
        for i in range(3):
            (src / d / f"f{i}").write_text(f"{d} {i}")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    assert (await full_sync(spec, 1.0)).ok
    (src / "a/b/c/f1").unlink()  # one file deep down
    shutil.rmtree(src / "x")  # a directory of three
    (src / "a/b/c/f2").write_text("replaced, longer")
    (src / "a/b/new").write_text("new")  # no damage: counted as a change only
    before = tree(dst)

    preview, result = await preview_full_sync(spec, 2.0)
    assert result.ok, result
    assert (preview.deleted, preview.overwritten, preview.source_files) == (4, 1, 3)
    assert tree(dst) == before  # a dry run
    # the dry run takes the whole file list at once (faster on an unchanged tree, issue 18);
    # the real pass keeps incremental recursion, so a fresh tree starts shipping early
    first_sync, dry = _runs(argv_log)
    assert "--dry-run" in dry and "--no-inc-recursive" in dry
    assert "--no-inc-recursive" not in first_sync

    assert (await full_sync(spec, 3.0)).ok
    assert "--no-inc-recursive" not in _runs(argv_log)[-1]
    assert not tree_diff(src, dst)


# -- the quick look before the measured dry run (backup/orphans.py, preview.already_matches)

GUARD = GuardSettings(max_files=20, window=60.0)


def _deep_tree(src: Path) -> None:
    for d in ("a/b/c", "a/x", "y"):
        (src / d).mkdir(parents=True)
        for i in range(5):
            (src / d / f"f{i}").write_text(f"{d} {i}")


async def _replicated(
    tmp_path: Path, runtime: Path, bstore: Store
) -> tuple[Path, Path, Replicator]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _deep_tree(src)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GUARD)
    rep = Replicator(spec, bstore.db, bstore.write)
    await rep.load()
    assert (r := await rep.reconcile("first")) is not None and r.ok
    (src / "a/x/f0").write_text("changed once, so the replica keeps a version")
    assert (r := await rep.reconcile("second")) is not None and r.ok
    assert (dst / VERSIONS_DIR).is_dir() and (dst / TARGET_MARKER).is_file()
    assert not tree_diff(src, dst)
    return src, dst, rep


async def test_an_unchanged_tree_costs_one_dry_run_without_the_deletion_scan(
    tmp_path: Path, runtime: Path, bstore: Store, argv_log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The nightly case: rsync's --delete reads and stats every replica directory (a third
    of the reconcile); the names are compared beside it instead, and sentinel's own entries
    at the replica's root (marker, versions) are not taken for a deletion to measure."""
    _src, dst, rep = await _replicated(tmp_path, runtime, bstore)
    before = tree(dst)
    argv_log.write_text("")
    caplog.set_level(logging.INFO, "backup.replicator")

    result = await rep.reconcile("nightly")

    assert result is not None and result.ok
    (only,) = _runs(argv_log)
    assert "--dry-run" in only and "--delete" not in only
    assert tree(dst) == before
    assert "replica already matches" in caplog.text
    assert rep.health()["last_full"] is not None and not rep.health()["last_error"]


@pytest.mark.parametrize(
    "change",
    ["deep file", "deep directory", "file became directory", "directory became file"],
)
async def test_a_deletion_alone_is_still_found_mirrored_and_kept_as_a_version(
    tmp_path: Path, runtime: Path, bstore: Store, argv_log: Path, change: str
) -> None:
    """What only --delete would see (no new or changed file anywhere) still makes the
    measured pass run: the replica loses the name, and a version of it is kept."""
    src, dst, rep = await _replicated(tmp_path, runtime, bstore)
    if change == "deep file":
        (src / "a/b/c/f3").unlink()
    elif change == "deep directory":
        shutil.rmtree(src / "a/b/c")
    elif change == "file became directory":
        (src / "y/f1").unlink()
        (src / "y/f1").mkdir()
    else:
        shutil.rmtree(src / "a/x")
        (src / "a/x").write_text("a file now")
    argv_log.write_text("")

    result = await rep.reconcile("after a deletion")

    assert result is not None and result.ok
    assert not tree_diff(src, dst)
    runs = _runs(argv_log)
    assert any("--delete" in r and "--dry-run" in r for r in runs)  # the guard measured it
    assert any("--delete" in r and "--dry-run" not in r for r in runs)  # and the pass ran
    kept = [p.name for p in (dst / VERSIONS_DIR).rglob("*") if p.is_file()]
    assert kept  # what the replica lost is kept


async def test_a_mass_deletion_deep_in_the_tree_still_trips_the_guard(
    tmp_path: Path, runtime: Path, bstore: Store
) -> None:
    src, dst, rep = await _replicated(tmp_path, runtime, bstore)
    (src / "a/b/c/big").mkdir()
    for i in range(40):
        (src / "a/b/c/big" / f"g{i}").write_text(str(i))
    assert (r := await rep.reconcile("more files")) is not None and r.ok
    before = tree(dst)
    shutil.rmtree(src / "a/b/c/big")  # 40 files gone while nobody watched: nothing else

    assert await rep.reconcile("after the attack") is None

    assert rep.health()["guard_tripped"]
    assert tree(dst) == before


def test_orphans_are_replica_names_without_a_source_entry(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for root in (src, dst):
        (root / "a/b").mkdir(parents=True)
        (root / "a/b/f").write_text("same")
        (root / "a/link").symlink_to("b")
    (dst / TARGET_MARKER).write_text("ours")
    (dst / "a/b/.partial").mkdir()
    assert first_orphan(str(src), str(dst), PROTECTED) == "a/b/.partial"
    (dst / "a/b/.partial").rmdir()
    assert first_orphan(str(src), str(dst), PROTECTED) is None
    (src / "new").mkdir()  # only on the source: the dry run's business
    assert first_orphan(str(src), str(dst), PROTECTED) is None
    (dst / "a/b" / TARGET_MARKER).write_text("protected only at the root")
    assert first_orphan(str(src), str(dst), PROTECTED) == f"a/b/{TARGET_MARKER}"
    (src / "a/b").chmod(0)
    try:
        if os.geteuid() != 0:
            with pytest.raises(OSError):
                first_orphan(str(src), str(dst), PROTECTED)
    finally:
        (src / "a/b").chmod(0o755)
