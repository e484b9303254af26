"""Local-target replication: shipping, versions, restore, verify."""

from __future__ import annotations

import os
from pathlib import Path

from backup.target import VERSIONS_DIR
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running, tree_diff


async def test_changes_reach_local_replica_and_replaced_content_is_kept(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "old.txt").write_text("before start")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        (src / "a").mkdir()
        (src / "a" / "doc.hwp").write_bytes(b"v1")
        (src / "gone.txt").write_text("to delete")
        await caught_up(rep, src, dst)
        (src / "a" / "doc.hwp").write_bytes(b"v2")
        (src / "gone.txt").unlink()
        os.symlink("a/doc.hwp", src / "link")
        await caught_up(rep, src, dst)
    assert not tree_diff(src, dst)
    versions = dst / VERSIONS_DIR
    kept = {
        p.relative_to(p.parents[len(p.relative_to(versions).parts) - 2]).as_posix(): p.read_bytes()
        for p in versions.rglob("*")
        if p.is_file()
    }
    assert kept.get("a/doc.hwp") == b"v1"
    assert kept.get("gone.txt") == b"to delete"
