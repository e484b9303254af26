"""The full pass's dry run (backup/preview.py): what the guard measures before a reconcile."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from backup.preview import preview_full_sync
from backup.transfer import full_sync
from backup.transport import parse_target
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
