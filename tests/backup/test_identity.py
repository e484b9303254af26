"""Replication never destroys the replica: the full pass is measured against the ransomware
guard first, and a missing or unmounted source or target stops replication with a
CRITICAL page instead of being mirrored."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from backup.control import resume
from backup.markers import SOURCE_MARKER, TARGET_MARKER
from backup.replicator import Replicator
from backup.spec import GuardSettings
from backup.status import read_status
from backup.target import VERSIONS_DIR, Target
from backup.transport import parse_target
from sentinel.cli.main import main
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, populate_docs, running, tree, tree_diff
from tests.backup.identity import mount, pages, started, umount, write_only_rsyncd
from tests.fixtures.poll import until
from tests.fixtures.remote import RsyncDaemon, SshServer
from tests.fixtures.tmpfs import mounted_tmpfs

SOURCE_PAGE = ("firing", "critical", "replication_source_missing", "source missing or not mounted")
TARGET_PAGE = ("firing", "critical", "replication_target_missing", "target missing or not mounted")


def _last_error(store: Store) -> str:
    conn = sqlite3.connect(store.path)
    try:
        return str(read_status(conn, time.time())["docs"]["last_error"])
    finally:
        conn.close()


async def test_full_pass_after_offline_encryption_trips_the_guard_and_keeps_the_replica(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 300)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GuardSettings())  # defaults
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
    before = tree(dst)
    for p in sorted((src / "docs").iterdir()):  # encrypted while sentinel was stopped
        p.write_bytes(b"\x00ENCRYPTED" + os.urandom(64))
    async with running(spec, bstore) as rep:
        await until(lambda: rep.health()["guard_tripped"], 30, "guard trip at start")
        assert rep.last_skip.startswith(
            "ransomware guard tripped: full pass would delete 0 and overwrite 300"
        )
        assert tree(dst) == before
        assert ("firing", "critical", "replication_guard") in [
            p[:3] for p in await pages(bstore, rep)
        ]
        # the operator decides it is legitimate: the measured pass goes ahead, once
        await resume(bstore.write, "docs")
        await caught_up(rep, src, dst)
        assert not rep.health()["guard_tripped"]
        kept = list((dst / VERSIONS_DIR).rglob("doc000.hwp"))
        assert kept and kept[0].read_bytes().startswith(b"document 0")


async def test_source_emptied_while_stopped_ships_no_deletion(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 10)
    spec = make_spec(src, parse_target(str(dst)), runtime)  # guard off: the marker alone
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        assert (src / SOURCE_MARKER).exists() and (dst / TARGET_MARKER).exists()
    before = tree(dst)
    shutil.rmtree(src)  # what an empty mountpoint looks like
    src.mkdir()
    async with started(spec, bstore) as (rep, task):
        await until(lambda: rep.health()["source_missing"], 20, "source missing")
        assert rep.transfers == 0 and not task.done()
        assert tree(dst) == before
        assert SOURCE_PAGE in await pages(bstore, rep)
        assert "source missing or not mounted" in _last_error(bstore)
        assert rep.health()["phase"] == "source missing"


async def test_require_mountpoint_refuses_a_plain_directory_even_at_first_sync(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 3)
    spec = make_spec(src, parse_target(str(dst)), runtime, require_mountpoint=True)
    async with started(spec, bstore) as (rep, task):
        await until(lambda: rep.health()["source_missing"], 20, "source missing")
        assert "not a mountpoint" in str(rep.health()["blocked"])
        assert not dst.exists() and not (src / SOURCE_MARKER).exists()
        assert not task.done()


async def test_unmounted_source_stops_and_remount_catches_up(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    disk, src, dst = tmp_path / "disk", tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    with mounted_tmpfs(disk, "16m"):
        populate_docs(disk, 5)
        mount("--bind", str(disk), str(src))
        try:
            spec = make_spec(src, parse_target(str(dst)), runtime, require_mountpoint=True)
            async with started(spec, bstore) as (rep, task):
                await until(lambda: rep.caught_up and not tree_diff(src, dst), 30, "sync")
                before = tree(dst)
                umount(src)  # the disk goes away under a running replicator
                await until(lambda: rep.health()["source_missing"], 20, "source missing")
                assert tree(dst) == before and not task.done()
                (disk / "docs" / "new.hwp").write_text("written while unmounted")
                mount("--bind", str(disk), str(src))
                await until(lambda: not rep.health()["source_missing"], 20, "source back")
                await caught_up(rep, src, dst)
                assert (dst / "docs" / "new.hwp").read_text() == "written while unmounted"
        finally:
            umount(src)


async def test_source_moved_away_is_an_alarm_not_a_crash_loop(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 5)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with started(spec, bstore) as (rep, task):
        await until(lambda: rep.caught_up and not tree_diff(src, dst), 30, "first sync")
        before = tree(dst)
        src.rename(tmp_path / "away")
        await until(lambda: rep.health()["source_missing"], 20, "source missing")
        assert not task.done(), "the replicator crashed instead of reporting"
        assert SOURCE_PAGE in await pages(bstore, rep)
        assert tree(dst) == before
        (tmp_path / "away" / "docs" / "doc001.hwp").write_text("changed while away")
        (tmp_path / "away").rename(src)
        await until(lambda: not rep.health()["source_missing"], 20, "source back")
        await caught_up(rep, src, dst)
        assert not rep.health()["blocked"] and rep.health()["last_error"] is None


async def test_deleted_local_target_stops_shipping_until_init_target(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 5)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        shutil.rmtree(dst)
        (src / "docs" / "after.hwp").write_text("after the target was lost")
        await until(lambda: rep.health()["target_missing"], 20, "target missing")
        assert not dst.exists(), "rsync re-created the lost target"
        assert TARGET_PAGE in await pages(bstore, rep)
        assert "target missing or not mounted" in _last_error(bstore)

        # `sentinel backup sync --full --init-target`, from another process
        by_hand = Replicator(spec, bstore.db, bstore.write)
        await by_hand.load()
        assert await by_hand.reconcile("by hand", init_target=True) is not None
        await until(lambda: not rep.health()["target_missing"], 20, "target back")
        await caught_up(rep, src, dst)
        assert (dst / TARGET_MARKER).exists()


async def test_unmounted_target_gets_nothing_written_on_the_mountpoint(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 5)
    with mounted_tmpfs(dst, "16m"):
        spec = make_spec(src, parse_target(str(dst)), runtime)
        async with running(spec, bstore) as rep:
            await caught_up(rep, src, dst)
            umount(dst)
            (src / "docs" / "after.hwp").write_text("after the unmount")
            await until(lambda: rep.health()["target_missing"], 20, "target missing")
            assert not any(dst.iterdir()), "files landed on the root filesystem"


@pytest.mark.parametrize("transport", ["rsyncd", "rsyncd-write-only", "sshd"])
async def test_lost_remote_target_is_noticed_and_not_recreated(
    tmp_path: Path,
    bstore: Store,
    runtime: Path,
    transport: str,
    request: pytest.FixtureRequest,
) -> None:
    src = tmp_path / "src"
    populate_docs(src, 5)
    with contextlib.ExitStack() as stack:
        if transport.startswith("rsyncd"):
            server: RsyncDaemon = (
                request.getfixturevalue("rsyncd")
                if transport == "rsyncd"
                else stack.enter_context(write_only_rsyncd(tmp_path / "wo"))
            )
            target = parse_target(server.url(), password_file=server.password_file)
            replica = server.module_dir / "replica"
        else:
            ssh: SshServer = request.getfixturevalue("sshd")
            target = parse_target(
                ssh.address(),
                ssh_port=ssh.port,
                identity_file=ssh.identity,
                known_hosts=ssh.known_hosts,
            )
            replica = ssh.root_dir / "replica"
        await _lose_remote_target_and_init(tmp_path, bstore, runtime, src, target, replica)


async def _lose_remote_target_and_init(
    tmp_path: Path, bstore: Store, runtime: Path, src: Path, target: Target, replica: Path
) -> None:
    spec = make_spec(src, target, runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, replica)
        assert (replica / TARGET_MARKER).exists()
    shutil.rmtree(replica)  # lost while sentinel was stopped
    (src / "docs" / "after.hwp").write_text("after the target was lost")
    async with started(spec, bstore) as (rep, _task):
        await until(lambda: rep.health()["target_missing"], 30, "target missing")
        assert not replica.exists(), "rsync re-created the lost target"
        by_hand = Replicator(spec, bstore.db, bstore.write)
        await by_hand.load()
        # (the daemon may start its own pass at once: the two can collide, so only the
        # outcome counts)
        assert await by_hand.reconcile("by hand", init_target=True) is not None
        await until(lambda: not rep.health()["target_missing"], 20, "target back")
        await caught_up(rep, src, replica)


def test_cli_full_sync_measures_first_and_init_target_is_deliberate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 100)
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[[replication]]\n'
        f'name = "docs"\nsource = "{src}"\ntarget = "{dst}"\n'
    )
    c = ["-c", str(cfg), "backup"]
    assert main([*c, "sync", "--full"]) == 0
    before = tree(dst)
    for p in sorted((src / "docs").iterdir())[:60]:  # 60 of 100: over the 20 % share
        p.unlink()
    capsys.readouterr()
    assert main([*c, "sync", "--full"]) == 1
    assert "ransomware guard tripped: full pass would delete 60" in capsys.readouterr().out
    assert tree(dst) == before
    assert main([*c, "sync", "--full"]) == 1  # still tripped: nothing runs
    assert main([*c, "discard"]) == 0
    assert main([*c, "sync", "--full"]) == 1  # discard approves nothing: it trips again
    assert tree(dst) == before
    assert main([*c, "resume"]) == 0
    assert main([*c, "sync", "--full"]) == 0  # the approved change goes through
    assert not tree_diff(src, dst)

    shutil.rmtree(dst)
    capsys.readouterr()
    assert main([*c, "sync", "--full"]) == 1
    assert "target missing or not mounted" in capsys.readouterr().out
    assert not dst.exists()
    assert main([*c, "sync", "--full", "--init-target"]) == 0
    assert not tree_diff(src, dst) and (dst / TARGET_MARKER).exists()

    (src / SOURCE_MARKER).unlink()
    capsys.readouterr()
    assert main([*c, "sync", "--full"]) == 1
    assert "source missing or not mounted" in capsys.readouterr().out
    assert main([*c, "sync", "--full", "--init-source"]) == 0
