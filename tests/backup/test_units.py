"""Small pure parts: the shipping list, filters, the guard's arithmetic, rsync exit codes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from backup.filters import Filters
from backup.guard import Guard, Verdict
from backup.rsync import Outcome, classify
from backup.spec import GuardSettings
from backup.transfer import shipping_list


def test_vanished_paths_collapse_to_their_topmost_vanished_ancestor(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "f").write_text("x")
    paths = ["keep/f", "gone/a/b.txt", "gone/a", "keep/missing", "gone/c"]
    assert shipping_list(tmp_path, paths) == ["gone", "keep/f", "keep/missing"]


def test_filters_match_names_anywhere_and_paths_from_the_root() -> None:
    f = Filters(exclude=("*.tmp", "cache/*"))
    assert f.excluded("a/b/x.tmp") and f.excluded("cache/big") and f.excluded("cache/d/e")
    assert not f.excluded("a/cache/big") and not f.excluded("a/x.hwp")
    inc = Filters(include=("*.hwp",))
    assert not inc.excluded("a/x.hwp") and inc.excluded("a/x.txt")
    assert not inc.excluded("a", is_dir=True)
    assert inc.rsync_args() == ["--include=*/", "--include=*.hwp", "--exclude=*"]


def test_guard_counts_existing_files_in_a_sliding_window() -> None:
    g = Guard(GuardSettings(window=60, max_files=10, max_share=0.5, min_files=4))
    for i in range(20):
        g.observe(f"new{i}", "create", 0)
        g.observe(f"new{i}", "write", 0)  # new files being written are not an attack
    assert g.verdict(0, existing_files=1000) is Verdict.OK
    for i in range(6):
        g.observe(f"old{i}", "move_from", 1)
    assert g.verdict(1, existing_files=1000) is Verdict.HOLD
    for i in range(6, 11):
        g.observe(f"old{i}", "write", 2)
    assert g.verdict(2, existing_files=1000) is Verdict.TRIP
    assert g.verdict(200, existing_files=1000) is Verdict.OK  # the window moved on
    for i in range(5):
        g.observe(f"x{i}", "delete", 300)
    assert g.verdict(300, existing_files=8) is Verdict.TRIP  # 5 of 8 files is over 50 %


def test_rsync_exit_codes() -> None:
    assert classify(0) is Outcome.OK and classify(24) is Outcome.OK
    for code in (10, 12, 23, 30, 35, 255):
        assert classify(code) is Outcome.RETRY
    for code in (1, 2, 4, 25, 127):
        assert classify(code) is Outcome.FATAL


@pytest.mark.parametrize(
    "pattern", ["a/*.tmp", "*.tmp", "a/**/x.tmp", "**.tmp", "a/?/x.tmp", "[ab]/x.tmp", "[!a]/*"]
)
def test_the_watcher_excludes_exactly_what_rsync_excludes(tmp_path: Path, pattern: str) -> None:
    """rsync is the judge: a path the watcher ignores but rsync ships (fnmatch's `*` crossed
    "/", so `a/*.tmp` hid `a/b/x.tmp` from the watcher) waited for the next full pass."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    files = ["x.tmp", "a/x.tmp", "a/b/x.tmp", "a/b/c/x.tmp", "b/x.tmp", "c/y.txt", "a/y.txt"]
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rel)
    filters = Filters(exclude=(pattern,))
    subprocess.run(["rsync", "-a", *filters.rsync_args(), f"{src}/", f"{dst}/"], check=True)
    shipped = {rel for rel in files if (dst / rel).exists()}
    watched = {rel for rel in files if not filters.excluded(rel)}
    assert watched == shipped
