"""The in-process copy to a local replica (backup/local_copy.py) leaves what rsync leaves:
the same bytes, metadata, versions and itemized lines; everything it cannot do the same
way goes to rsync."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from backup import local_copy
from backup.local_copy import TEMP_DIR, ship_local
from backup.rsync import RsyncResult
from backup.spec import ReplicationSpec
from backup.target import PARTIAL_DIR, VERSIONS_DIR
from backup.target_lock import target_lock
from backup.transfer import ship_batch, verify_replica
from backup.transport import parse_target
from sentinel.config.replication import ReplicationConfig
from sentinel.replication import spec_from_config
from sentinel.store import Store
from tests.backup.helpers import DIR_GUARD, caught_up, make_spec, running, tree_diff
from tests.fixtures.poll import until
from tests.fixtures.tmpfs import mounted_tmpfs

NOW = 1_790_000_000.25  # one stamp for both replicas
HOSTILE = ["new\nline", "back\\slash", "star*[q]?", "-dash", " lead space", "tab\tname"]
RAW = os.fsdecode(b"latin-\xe9")  # not UTF-8


def _meta(root: Path) -> dict[str, Any]:
    """Every entry below `root` (versions included, the partial dir not): type, mode,
    owner, size, content and mtime. Times of directories the versions made, or the root,
    are "now" for rsync too and are left out."""
    out: dict[str, Any] = {}
    for dirpath, dirs, files in os.walk(root):
        if Path(dirpath) == root:
            dirs[:] = [d for d in dirs if d != PARTIAL_DIR]
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            entry: tuple[Any, ...] = (st.st_mode, st.st_uid, st.st_gid)
            if os.path.isfile(full):
                data = Path(full).read_bytes()
                entry += (hashlib.sha256(data).hexdigest(), st.st_mtime_ns)
            elif not rel.startswith(VERSIONS_DIR):
                entry += (st.st_mtime_ns,)
            out[rel] = entry
    return out


def _mirror(src: Path, dst: Path) -> None:
    """The replica as a first sync leaves it."""
    subprocess.run(["rsync", "-a", f"{src}/", str(dst)], check=True)


def _spec(src: Path, dst: Path, runtime: Path, **kw: object) -> ReplicationSpec:
    return make_spec(src, parse_target(str(dst)), runtime, **kw)


def _source(src: Path) -> None:
    d = src / "d"
    d.mkdir(parents=True)
    for name in ["plain.txt", "gone.txt", *HOSTILE, RAW]:
        (d / name).write_bytes(os.fsencode(f"old {name}"))
    (src / "top.txt").write_text("top")
    os.chmod(d, 0o750)


def _change(src: Path) -> list[str]:
    d = src / "d"
    (d / "plain.txt").write_bytes(os.urandom(70000))
    os.chmod(d / "plain.txt", 0o640)
    if os.geteuid() == 0:
        os.chown(d / "plain.txt", 1234, 5678)
    (d / "gone.txt").unlink()
    (d / "new.bin").write_bytes(os.urandom(3000))
    for name in [*HOSTILE, RAW]:
        (d / name).write_bytes(os.fsencode(f"new content of {name}"))
    os.utime(d / HOSTILE[0], ns=(1, 1_600_000_000_123_456_789))  # nanoseconds kept
    (src / "top.txt").write_text("top")  # rewritten, same content: a version all the same
    return [f"d/{n}" for n in ["plain.txt", "gone.txt", "new.bin", *HOSTILE, RAW]] + ["top.txt"]


def _printable(lines: list[str]) -> list[str]:
    return sorted(x for x in lines if x.isprintable() and "\\" not in x and x.isascii())


async def test_same_replica_and_versions_as_an_rsync_shipped_batch(
    tmp_path: Path, runtime: Path
) -> None:
    src, by_rsync, in_process = tmp_path / "src", tmp_path / "rsync", tmp_path / "copy"
    _source(src)
    for dst in (by_rsync, in_process):
        _mirror(src, dst)
    paths = _change(src)

    shipped = await ship_batch(_spec(src, by_rsync, runtime), paths, NOW)
    local = await ship_local(_spec(src, in_process, runtime), paths, NOW)

    assert shipped.ok, shipped.error
    assert local.rest == []  # every path was a plain case: no rsync ran for this replica
    assert sorted(local.done) == sorted(paths)
    assert _meta(in_process) == _meta(by_rsync)
    assert not tree_diff(src, in_process)
    got = local.merged(None)
    assert (len(got.transferred), len(got.deleted)) == (
        len(shipped.transferred),
        len(shipped.deleted),
    )
    assert _printable(got.output) == _printable(shipped.output)
    assert "*deleting   d/gone.txt" in got.output and ">f+++++++++ d/new.bin" in got.output
    assert not os.listdir(in_process / TEMP_DIR)


async def test_what_rsync_must_do_goes_to_rsync(
    tmp_path: Path, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "dir").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    os.symlink("a.txt", src / "link")
    os.link(src / "a.txt", src / "hard")
    (src / "sparse").touch()
    os.truncate(src / "sparse", 8 << 20)
    (src / "big").write_bytes(b"x" * 100)
    (src / "skipped.txt").write_text("quarantined")
    (src / "new" / "deep").mkdir(parents=True)
    (src / "new" / "deep" / "f").write_text("parent missing on the replica")
    (src / ".rsync-partial").mkdir()
    (src / ".rsync-partial" / "x").write_text("protected name")
    (src / "dst-link").symlink_to(dst)
    dst.mkdir()
    (dst / "was-a-dir").mkdir()
    (src / "was-a-dir").write_text("a file now")
    monkeypatch.setattr(local_copy, "COPY_MAX", 50)
    paths = [
        "dir",
        "link",
        "hard",
        "sparse",
        "big",
        "skipped.txt",
        "new/deep/f",
        ".rsync-partial/x",
        "was-a-dir",
        "dst-link/a.txt",
    ]
    local = await ship_local(_spec(src, dst, runtime), ["a.txt", *paths], NOW, skip=["skipped.txt"])
    assert local.done == []  # a.txt is hard-linked too (with "hard")
    assert sorted(local.rest) == sorted(["a.txt", *paths])
    assert sorted(os.listdir(dst)) == [PARTIAL_DIR, "was-a-dir"]


async def test_a_file_written_while_copied_is_left_to_rsync(
    tmp_path: Path, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "app.log").write_bytes(b"line 1\n")
    _mirror(src, dst)
    (src / "app.log").write_bytes(b"line 1\nline 2\n")
    real = local_copy._copy_bytes

    def appended_meanwhile(s: int, d: int) -> int:
        n = real(s, d)
        with open(src / "app.log", "ab") as f:  # the application appends during the copy
            f.write(b"line 3\n")
        return n

    monkeypatch.setattr(local_copy, "_copy_bytes", appended_meanwhile)
    local = await ship_local(_spec(src, dst, runtime), ["app.log"], NOW)
    assert local.rest == ["app.log"] and local.output == []
    # nothing half-done: the replica still has the old whole file, no version, no temp file
    assert (dst / "app.log").read_bytes() == b"line 1\n"
    assert not (dst / VERSIONS_DIR).exists()
    assert not os.listdir(dst / TEMP_DIR)


async def test_a_full_replica_falls_back_to_rsync_which_reports_it(
    tmp_path: Path, runtime: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "small.txt").write_text("fits")
    (src / "report.doc").write_bytes(os.urandom(2 << 20))
    with mounted_tmpfs(tmp_path / "dst", "1m") as dst:
        spec = _spec(src, dst, runtime)
        local = await ship_local(spec, ["small.txt", "report.doc"], NOW)
        assert local.done == ["small.txt"] and local.rest == ["report.doc"]
        assert not os.listdir(dst / TEMP_DIR)  # the failed copy's temporary file is gone
        assert not (dst / "report.doc").exists()
        result: RsyncResult = await ship_batch(spec, local.rest, NOW)
        assert result.exit_code in (11, 23)
        assert "No space left on device (28)" in result.error


async def test_a_temporary_file_left_by_a_kill_is_cleared_and_never_compared(
    tmp_path: Path, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a.txt").write_text("a")
    spec = _spec(src, dst, runtime)
    _mirror(src, dst)
    (dst / TEMP_DIR).mkdir(parents=True)
    (dst / TEMP_DIR / "4242.7").write_text("half a copy, its process killed -9")
    assert (await verify_replica(spec)).differences == []  # not seen as a difference
    (src / "a.txt").write_text("b")
    local = await ship_local(spec, ["a.txt"], NOW)
    assert local.done == ["a.txt"]
    assert not os.listdir(dst / TEMP_DIR)


async def test_the_daemon_ships_in_process_and_the_switch_turns_it_off(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    for on in (True, False):
        src, dst = tmp_path / f"src{on}", tmp_path / f"dst{on}"
        src.mkdir()
        rc = ReplicationConfig(name="docs", source=src, target=str(dst), local_copy=on)
        spec = spec_from_config(rc, runtime)
        assert spec.local_copy is on
        spec = _spec(src, dst, runtime, local_copy=on, name=f"docs-{on}")
        async with running(spec, bstore) as rep:
            await caught_up(rep, src, dst)
            (src / "doc.hwp").write_bytes(b"v1")
            await caught_up(rep, src, dst)
            (src / "doc.hwp").write_bytes(b"v2")
            await caught_up(rep, src, dst)
        assert not tree_diff(src, dst)
        kept = [p.read_bytes() for p in (dst / VERSIONS_DIR).rglob("doc.hwp")]
        assert kept == [b"v1"]
        assert (dst / TEMP_DIR).is_dir() is on  # only the in-process copy makes it
        shutil.rmtree(src)


async def test_the_guard_still_trips_on_mass_deletion(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    names = [f"f{i:03}.txt" for i in range(120)]
    for name in names:
        (src / name).write_text(name)
    spec = _spec(src, dst, runtime, guard=DIR_GUARD)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        for name in names:
            (src / name).unlink()
        await until(lambda: rep.health()["guard_tripped"], 20, "the guard trips")
    left = sum((dst / n).exists() for n in names)
    assert left >= len(names) - DIR_GUARD.max_files  # at most what the guard allows went


async def test_the_copy_waits_for_another_writer_of_the_replica(
    tmp_path: Path, runtime: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a.txt").write_text("old")
    _mirror(src, dst)
    (src / "a.txt").write_text("new")
    spec = _spec(src, dst, runtime)
    async with target_lock(runtime, spec.target.url):  # a by-hand sync is writing it
        copy = asyncio.create_task(ship_local(spec, ["a.txt"], NOW))
        await until(lambda: "busy" in caplog.text, 10, "the copy waiting for the lock")
        assert (dst / "a.txt").read_text() == "old" and not copy.done()
    assert (await copy).done == ["a.txt"]
    assert (dst / "a.txt").read_text() == "new"
