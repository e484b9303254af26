"""A restore only ever writes and replaces what it restores, refuses a non-empty
destination unless asked, and never restores a symlink that points outside the replica."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from backup.restore import RestoreError, drill, restore
from backup.transport import parse_target
from sentinel.cli.main import main
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running
from tests.fixtures.remote import RsyncDaemon


async def _replicated(tmp_path: Path, bstore: Store, runtime: Path) -> tuple[Path, Path, float]:
    """A replica with report.txt at "version 1" as of the returned time, "version 2" now."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)
    (src / "a" / "report.txt").write_text("version 1")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        await asyncio.sleep(0.05)
        as_of = time.time()
        await asyncio.sleep(0.05)
        (src / "a" / "report.txt").write_text("version 2, longer")
        await caught_up(rep, src, dst)
    return src, dst, as_of


async def test_restore_refuses_a_non_empty_destination_and_touches_nothing(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    _src, dst, as_of = await _replicated(tmp_path, bstore, runtime)
    live = tmp_path / "live"
    (live / "a").mkdir(parents=True)
    (live / "a" / "newer.txt").write_text("written after as_of")
    with pytest.raises(RestoreError, match="--into-existing"):
        await restore(parse_target(str(dst)), runtime, live, as_of=as_of)
    assert (live / "a" / "newer.txt").read_text() == "written after as_of"
    assert not (live / "a" / "report.txt").exists()


async def test_restore_into_existing_replaces_only_what_it_restores(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    _src, dst, as_of = await _replicated(tmp_path, bstore, runtime)
    live = tmp_path / "live"
    (live / "a").mkdir(parents=True)
    (live / "a" / "newer.txt").write_text("written after as_of")
    (live / "a" / "report.txt").write_text("damaged")
    live.chmod(0o751)
    result = await restore(parse_target(str(dst)), runtime, live, as_of=as_of, into_existing=True)
    assert (live / "a" / "report.txt").read_text() == "version 1"
    assert (live / "a" / "newer.txt").read_text() == "written after as_of"
    assert result.files == 1
    assert [p.name for p in live.iterdir()] == ["a"]  # no staging left behind
    assert live.stat().st_mode & 0o777 == 0o751


async def test_restore_skips_symlinks_that_point_outside_the_replica(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "docs").mkdir(parents=True)
    (src / "docs" / "memo.txt").write_text("memo")
    (src / "docs" / "shadow").symlink_to("/etc/shadow")
    (src / "docs" / "escape").symlink_to("../../../../etc/passwd")
    (src / "docs" / "inside").symlink_to("memo.txt")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
    assert os.readlink(dst / "docs" / "shadow") == "/etc/shadow"  # the replica keeps it
    out = tmp_path / "out"
    await restore(parse_target(str(dst)), runtime, out)
    assert not os.path.lexists(out / "docs" / "shadow")
    assert not os.path.lexists(out / "docs" / "escape")
    assert os.readlink(out / "docs" / "inside") == "memo.txt"
    assert (out / "docs" / "memo.txt").read_text() == "memo"
    assert (await drill(spec)).ok  # the drill checks what restore promises


def test_cli_restore_names_the_flag_for_a_non_empty_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a.txt").write_text("one")
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[[replication]]\n'
        f'name = "docs"\nsource = "{src}"\ntarget = "{dst}"\n'
    )
    c = ["-c", str(cfg), "backup"]
    assert main([*c, "sync", "--full"]) == 0
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("mine")
    assert main([*c, "restore", "--to", str(busy)]) == 1
    assert "--into-existing" in capsys.readouterr().err
    assert main([*c, "restore", "--to", str(busy), "--into-existing"]) == 0
    assert (busy / "mine.txt").read_text() == "mine"
    assert (busy / "d" / "a.txt").read_text() == "one"


@pytest.mark.parametrize("transport", ["local", "rsyncd"])
async def test_restore_as_of_brings_back_a_file_deleted_since(
    tmp_path: Path,
    bstore: Store,
    runtime: Path,
    transport: str,
    request: pytest.FixtureRequest,
) -> None:
    """The point-in-time restore of one path: deleted after T, it is only in the versions."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "gone.txt").write_text("the deleted document")
    (src / "*").write_text("a hostile name")
    (src / "kept.txt").write_text("kept")
    if transport == "rsyncd":
        server: RsyncDaemon = request.getfixturevalue("rsyncd")
        target = parse_target(server.url(), password_file=server.password_file)
        replica = server.module_dir / "replica"
    else:
        target = parse_target(str(tmp_path / "dst"))
        replica = tmp_path / "dst"
    spec = make_spec(src, target, runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, replica)
        await asyncio.sleep(0.05)
        as_of = time.time()
        await asyncio.sleep(0.05)
        (src / "a" / "gone.txt").unlink()
        (src / "*").unlink()
        await caught_up(rep, src, replica)
    assert not (replica / "a" / "gone.txt").exists()
    out = tmp_path / "out"
    result = await restore(target, runtime, out, path="a/gone.txt", as_of=as_of)
    assert (out / "a" / "gone.txt").read_text() == "the deleted document"
    assert result.files == 1
    await restore(target, runtime, tmp_path / "out2", path="*", as_of=as_of)
    assert [p.name for p in (tmp_path / "out2").iterdir()] == ["*"]
    assert (tmp_path / "out2" / "*").read_text() == "a hostile name"
    # in neither the replica nor a version: said plainly
    with pytest.raises(RestoreError, match=r"never\.txt did not exist at"):
        await restore(target, runtime, tmp_path / "out3", path="never.txt", as_of=as_of)
