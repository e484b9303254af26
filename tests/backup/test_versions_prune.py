"""Versions older than the retention are pruned on the target; newer ones stay."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from backup.target import VERSIONS_DIR
from backup.transport import parse_target
from backup.versions import list_version_stamps, prune_versions, stamp
from tests.backup.identity import write_only_rsyncd

DAY = 86400.0


async def test_prune_removes_only_expired_version_dirs(tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    now = time.time()
    stamps = {age: stamp(now - age * DAY) for age in (45, 31, 29, 1)}
    for age, name in stamps.items():
        kept = replica / VERSIONS_DIR / name / "결재"
        kept.mkdir(parents=True)
        (kept / "기안.hwp").write_text(f"as it was {age} days ago")
    (replica / "live.txt").parent.mkdir(parents=True, exist_ok=True)
    (replica / "live.txt").write_text("the current copy")
    target = parse_target(str(replica))
    runtime = tmp_path / "run"
    runtime.mkdir()

    pruned = await prune_versions(target, runtime, older_than=now - 30 * DAY)

    assert sorted(pruned) == sorted([stamps[45], stamps[31]])
    assert await list_version_stamps(target, runtime) == sorted([stamps[29], stamps[1]])
    assert (replica / VERSIONS_DIR / stamps[29] / "결재" / "기안.hwp").exists()
    assert (replica / "live.txt").read_text() == "the current copy"
    assert await prune_versions(target, runtime, older_than=now - 30 * DAY) == []


async def test_a_replica_that_refuses_listing_is_an_error_not_an_empty_list(
    tmp_path: Path,
) -> None:
    """A write-only module refuses every read: treating that as "no versions" made pruning
    and `restore --as-of` silently wrong. A replica without versions is still []."""
    runtime = tmp_path / "run"
    runtime.mkdir()
    empty = tmp_path / "replica"
    empty.mkdir()
    assert await list_version_stamps(parse_target(str(empty)), runtime) == []
    with write_only_rsyncd(tmp_path / "wo") as server:
        target = parse_target(server.url(), password_file=server.password_file)
        with pytest.raises(RuntimeError, match="cannot list the versions"):
            await list_version_stamps(target, runtime)
