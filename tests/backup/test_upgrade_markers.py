"""An install upgraded from the release before source/target markers adopts them once, where
the evidence says the directories are the real ones, instead of stopping and paging."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.markers import SOURCE_MARKER, TARGET_MARKER
from backup.schema import MIGRATIONS, OWNER
from backup.spec import GuardSettings
from backup.state import load_state
from backup.target import Target
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, populate_docs, running, tree
from tests.backup.identity import pages, started, write_only_rsyncd
from tests.fixtures.poll import until
from tests.fixtures.remote import RsyncDaemon, SshServer

SOURCE_PAGE = ("firing", "critical", "replication_source_missing", "source missing or not mounted")
TARGET_PAGE = ("firing", "critical", "replication_target_missing", "target missing or not mounted")
# the release before the markers (MIGRATIONS[2]); later migrations (issue 16) apply after
PREVIOUS_RELEASE = MIGRATIONS[:2]


async def _upgraded_store(tmp_path: Path) -> Store:
    """A state database the previous release made (it synced `docs` an hour ago), opened
    by this release: every migration, the new one last."""
    store = await Store.open(tmp_path / "state")
    await store.migrate(OWNER, PREVIOUS_RELEASE)
    hour_ago = time.time() - 3600
    async with store.write() as db:
        await db.execute(
            "INSERT INTO backup_state(source, last_success, last_full, "
            "last_full_ok, shipped_files) VALUES ('docs', ?, ?, 1, 5)",
            (hour_ago, hour_ago),
        )
    await store.migrate(OWNER, MIGRATIONS)
    return store


@contextlib.contextmanager
def _target(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Target, Path]]:
    with contextlib.ExitStack() as stack:
        if kind == "local":
            yield parse_target(str(tmp_path / "dst")), tmp_path / "dst"
            return
        if kind == "sshd":
            ssh: SshServer = request.getfixturevalue("sshd")
            yield (
                parse_target(
                    ssh.address(),
                    ssh_port=ssh.port,
                    identity_file=ssh.identity,
                    known_hosts=ssh.known_hosts,
                ),
                ssh.root_dir / "replica",
            )
            return
        server: RsyncDaemon = (
            request.getfixturevalue("rsyncd")
            if kind == "rsyncd"
            else stack.enter_context(write_only_rsyncd(tmp_path / "wo"))
        )
        yield (
            parse_target(server.url(), password_file=server.password_file),
            server.module_dir / "replica",
        )


def _old_replica(src: Path, replica: Path) -> None:
    """What the previous release left: the same files, no marker."""
    replica.mkdir(parents=True, exist_ok=True)
    subprocess.run(["rsync", "-a", f"{src}/", f"{replica}/"], check=True)


def _adopted(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and "adopted" in r.getMessage()
    ]


@pytest.mark.parametrize("kind", ["local", "rsyncd-write-only", "sshd"])
async def test_upgraded_install_adopts_both_markers_and_keeps_shipping(
    tmp_path: Path,
    runtime: Path,
    kind: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="backup.replicator")
    src = tmp_path / "src"
    populate_docs(src)
    store = await _upgraded_store(tmp_path)
    try:
        with _target(kind, tmp_path, request) as (target, replica):
            _old_replica(src, replica)
            spec = make_spec(src, target, runtime)  # guard off: markers alone decide
            async with running(spec, store) as rep:
                (src / "docs" / "after-upgrade.hwp").write_text("written after the upgrade")
                await caught_up(rep, src, replica)
                assert (replica / "docs" / "after-upgrade.hwp").read_text() == (
                    "written after the upgrade"
                )
                assert (src / SOURCE_MARKER).exists() and (replica / TARGET_MARKER).exists()
                assert not rep.health()["blocked"] and rep.health()["last_error"] is None
                assert [p for p in await pages(store, rep) if p[0] == "firing"] == []
                await until(lambda: not rep._adopting, 20, "adoption over")
            adopted = _adopted(caplog)
            assert len(adopted) == 2, adopted
            assert SOURCE_MARKER in adopted[0] and TARGET_MARKER in adopted[1]
            assert (await load_state(store.db, "docs")).markers_adopt is None

            # adopted once: a marker lost later is an alarm again, never re-adopted
            (src / SOURCE_MARKER).unlink()
            async with started(spec, store) as (rep, _task):
                await until(lambda: rep.health()["source_missing"], 20, "source missing")
                assert SOURCE_PAGE in await pages(store, rep)
                assert not (src / SOURCE_MARKER).exists()
    finally:
        await store.close()


async def test_upgraded_install_with_an_empty_source_does_not_adopt_and_pages(
    tmp_path: Path,
    runtime: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disk was not mounted (or was emptied) while the upgrade happened."""
    caplog.set_level(logging.INFO, logger="backup.replicator")
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src)
    _old_replica(src, dst)
    shutil.rmtree(src)
    src.mkdir()
    before = tree(dst)
    store = await _upgraded_store(tmp_path)
    try:
        spec = make_spec(src, parse_target(str(dst)), runtime)
        async with started(spec, store) as (rep, task):
            await until(lambda: rep.health()["source_missing"], 20, "source missing")
            assert SOURCE_PAGE in await pages(store, rep)
            assert "not adopted after the upgrade" in str(rep.health()["blocked"])
            assert not (src / SOURCE_MARKER).exists() and not (dst / TARGET_MARKER).exists()
            assert rep.transfers == 0 and not task.done()
            assert tree(dst) == before
        assert _adopted(caplog) == []
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["local", "rsyncd-write-only"])
@pytest.mark.parametrize("replica_state", ["missing", "empty"])
async def test_upgraded_install_with_a_lost_replica_does_not_adopt_it_and_pages(
    tmp_path: Path,
    runtime: Path,
    kind: str,
    replica_state: str,
    request: pytest.FixtureRequest,
) -> None:
    """The replica disk was lost or not mounted while the upgrade happened: it is not
    re-created or filled as if nothing happened."""
    src = tmp_path / "src"
    populate_docs(src)
    store = await _upgraded_store(tmp_path)
    try:
        with _target(kind, tmp_path, request) as (target, replica):
            if replica_state == "empty":
                replica.mkdir(parents=True)
            spec = make_spec(src, target, runtime)
            async with started(spec, store) as (rep, task):
                await until(lambda: rep.health()["target_missing"], 30, "target missing")
                assert TARGET_PAGE in await pages(store, rep)
                assert "not adopted after the upgrade" in str(rep.health()["blocked"])
                assert not task.done()
                if replica_state == "missing":
                    assert not replica.exists(), "the lost replica was re-created"
                else:
                    assert list(replica.iterdir()) == [], "the empty replica was filled"
    finally:
        await store.close()


async def test_upgraded_install_with_a_plain_directory_where_a_mount_is_required(
    tmp_path: Path,
    runtime: Path,
) -> None:
    """require_mountpoint = true: files in the bare mountpoint directory prove nothing."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src)
    _old_replica(src, dst)
    store = await _upgraded_store(tmp_path)
    try:
        spec = make_spec(src, parse_target(str(dst)), runtime, require_mountpoint=True)
        async with started(spec, store) as (rep, _task):
            await until(lambda: rep.health()["source_missing"], 20, "source missing")
            assert "not a mountpoint" in str(rep.health()["blocked"])
            assert not (src / SOURCE_MARKER).exists() and rep.transfers == 0
    finally:
        await store.close()


async def test_upgraded_install_encrypted_during_the_upgrade_still_trips_the_guard(
    tmp_path: Path,
    runtime: Path,
) -> None:
    """Adoption only lifts the marker requirement: the adopted full pass is measured first."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    populate_docs(src, 50)
    _old_replica(src, dst)
    before = tree(dst)
    for p in sorted((src / "docs").iterdir()):
        p.write_bytes(b"\x00ENCRYPTED" + os.urandom(64))
    store = await _upgraded_store(tmp_path)
    try:
        spec = make_spec(src, parse_target(str(dst)), runtime, guard=GuardSettings())
        async with running(spec, store) as rep:
            await until(lambda: rep.health()["guard_tripped"], 30, "guard trip")
            assert rep.last_skip.startswith(
                "ransomware guard tripped: full pass would delete 0 and overwrite 50"
            )
            assert tree(dst) == before
            assert ("firing", "critical", "replication_guard") in [
                p[:3] for p in await pages(store, rep)
            ]
    finally:
        await store.close()
