"""The room's heartbeat to the keeper (issue 11), with real rsync to a local target: what the
keeper reads at the landing root, that it is never versioned nor deleted by a full pass, and
the receipt read back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backup.keeper_record import HEARTBEAT_FILE, Receipt, read_heartbeat, write_atomic
from backup.restore import restore
from backup.target import VERSIONS_DIR
from backup.transport import parse_target
from sentinel.config.replication import KeeperLinkConfig
from sentinel.room_heartbeat import RoomHeartbeat
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, populate_docs, running
from tests.fixtures.poll import until
from tests.fixtures.remote import SshServer, started_rsyncd

ALARMS = [
    {
        "id": "EYDH",
        "sensor": "leak-ups",
        "kind": "water_leak",
        "severity": "critical",
        "location": "전산실 UPS 하단",
        "since": 1795318843.5,
    },
    {
        "id": "F1RE",
        "sensor": "fire",
        "kind": "combined",
        "severity": "critical",
        "location": "천장, 랙 A",
        "since": 1795318844.0,
    },
]


def keeper(receipt: Path, **kw: Any) -> KeeperLinkConfig:
    return KeeperLinkConfig(receipt=str(receipt), heartbeat=kw.pop("heartbeat", 1.0), **kw)


@contextlib.asynccontextmanager
async def beating(room: RoomHeartbeat) -> AsyncIterator[RoomHeartbeat]:
    task = asyncio.create_task(room.run())
    try:
        yield room
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def versioned_heartbeats(replica: Path) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(replica / VERSIONS_DIR):
        found += [os.path.join(dirpath, f) for f in files if f == HEARTBEAT_FILE]
    return found


async def test_keeper_heartbeat_lands_with_seq_rpo_alarms_and_survives_a_full_pass(
    tmp_path: Path, bstore: Store, runtime: Path
):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    populate_docs(src)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        (src / "docs" / "live.hwp").write_bytes(b"shipped through the journal")
        await caught_up(rep, src, dst)
        room = RoomHeartbeat(
            spec,
            keeper(tmp_path / "receipt.json"),
            "main-office",
            rep,
            bstore.db,
            site="본청",
            active_alarms=lambda: ALARMS,
        )
        async with beating(room):
            await until(lambda: room.beats >= 1, 15, "first heartbeat")
            hb = read_heartbeat(dst / HEARTBEAT_FILE)
            assert (hb.room, hb.replication, hb.site) == ("main-office", "docs", "본청")
            assert hb.pending == 0 and hb.rpo == 0.0
            assert hb.seq == rep.journal.seq > 0  # every change recorded so far has shipped
            assert abs(hb.synced_through - hb.ts) < 1e-6  # nothing pending: synced to now
            assert [(a.id, a.kind, a.severity) for a in hb.alarms] == [
                ("EYDH", "water_leak", "critical"),
                ("F1RE", "fire", "critical"),
            ]
            assert hb.alarms[0].location == "전산실 UPS 하단"
            first_ts = hb.ts
            # a changed document, and a full pass with --delete, while it beats on
            (src / "docs" / "doc000.hwp").write_bytes(b"changed")
            await caught_up(rep, src, dst)
            result = await rep.reconcile("test")
            assert result is not None and result.ok
            await until(lambda: room.beats >= 3, 15, "more heartbeats")
            hb = read_heartbeat(dst / HEARTBEAT_FILE)
            assert hb.ts > first_ts and hb.seq == rep.journal.seq
            verify = await rep.verify()
            assert verify["ok"], verify
            restored = tmp_path / "restored"
            await restore(spec.target, runtime, restored)
            assert (restored / "docs" / "live.hwp").exists()
            assert not (restored / HEARTBEAT_FILE).exists()  # not a document
    # overwritten in place each time, never kept as a version (the document's version is)
    assert versioned_heartbeats(dst) == []
    assert any(f == "doc000.hwp" for _d, _s, files in os.walk(dst / VERSIONS_DIR) for f in files)
    assert (dst / HEARTBEAT_FILE).exists()


async def test_keeper_heartbeat_says_what_is_pending(tmp_path: Path, bstore: Store, runtime: Path):
    """While the replica is gone, changes pile up: the heartbeat (pushed where the landing
    area would be) says how many and since when, and never re-creates the replica root."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    populate_docs(src)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        room = RoomHeartbeat(spec, keeper(tmp_path / "receipt.json"), "main-office", rep, bstore.db)
        await room.heartbeat()  # caught up: the start pass is over
        marker = dst / ".sentinel-target"
        marker.rename(tmp_path / "marker")  # the replica looks lost: nothing ships
        try:
            before = time.time()
            (src / "docs" / "new.hwp").write_bytes(b"new")
            await until(lambda: rep.journal.pending > 0, 10, "a pending change")
            hb = await room.heartbeat()
            assert hb.pending >= 1 and hb.synced_through <= hb.ts
            assert before - 1 <= hb.synced_through <= time.time()
            assert hb.seq < rep.journal.seq  # the pending change has not shipped
        finally:
            (tmp_path / "marker").rename(marker)
    gone = tmp_path / "gone"
    spec2 = make_spec(src, parse_target(str(gone)), runtime, name="other")
    room2 = RoomHeartbeat(spec2, keeper(tmp_path / "receipt.json"), "main-office", rep, bstore.db)
    room2._dir.mkdir(parents=True, exist_ok=True)
    assert await room2.beat() is False
    assert room2.ship_error and not gone.exists()
    assert room2.health()["state"] == "heartbeat failing"


async def test_keeper_receipt_is_read_back_and_the_newest_kept(
    tmp_path: Path, bstore: Store, runtime: Path
):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    populate_docs(src, 1)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    receipt_path = tmp_path / "receipts" / "receipt.json"
    receipt_path.parent.mkdir()
    async with running(spec, bstore) as rep:
        room = RoomHeartbeat(spec, keeper(receipt_path), "main-office", rep, bstore.db)
        assert await room.read_receipt() is None
        assert "No such file" in str(room.receipt_error)
        now = time.time()
        write_atomic(
            receipt_path,
            Receipt("main-office", now - 5, "20261202T032000Z", now - 4, now - 3).to_json(),
        )
        got = await room.read_receipt()
        assert got is not None and room.receipt_error is None
        assert room.health()["receipt"]["safe_as_of"] == now - 5
        # an older receipt read later (a lagging copy) does not replace the newer one
        write_atomic(receipt_path, Receipt("main-office", now - 50, None, None, now - 40).to_json())
        await room.read_receipt()
        assert room.receipt is not None and room.receipt.safe_as_of == now - 5
        # a receipt for another room is refused, with the reason
        write_atomic(receipt_path, Receipt("township", now, None, None, now).to_json())
        assert await room.read_receipt() is None
        assert "township" in str(room.receipt_error)
        receipt_path.write_text("{not json")
        assert await room.read_receipt() is None
        assert "not JSON" in str(room.receipt_error)


async def test_keeper_heartbeat_and_receipt_through_a_write_only_rsync_daemon(
    tmp_path: Path, bstore: Store, runtime: Path
):
    """The documented keeper modules on a real rsync daemon: the landing area write only
    (and refusing in-place writes), the receipt module read only. The heartbeat is pushed
    with the replication's password file, the receipt pulled back with it."""
    receipts = tmp_path / "receipts"
    receipts.mkdir()
    secrets = tmp_path / "rsyncd" / "secrets"
    with started_rsyncd(
        tmp_path / "rsyncd",
        module_options=(
            "  write only = yes\n  refuse options = inplace append append-verify\n"
            f"[main-office-receipt]\n  path = {receipts}\n  read only = yes\n"
            f"  auth users = sentinel\n  secrets file = {secrets}\n"
        ),
    ) as server:
        src = tmp_path / "src"
        src.mkdir()
        populate_docs(src, 2)
        target = parse_target(server.url(), password_file=server.password_file)
        spec = make_spec(src, target, runtime)
        landing = server.module_dir / "replica"
        address = f"rsync://sentinel@127.0.0.1:{server.port}/main-office-receipt/receipt.json"
        async with running(spec, bstore) as rep:
            await caught_up(rep, src, landing)
            room = RoomHeartbeat(
                spec, KeeperLinkConfig(receipt=address), "main-office", rep, bstore.db
            )
            room._dir.mkdir(parents=True, exist_ok=True)
            assert await room.beat(), room.ship_error
            assert await room.beat(), room.ship_error  # again: replaced, not refused
            assert read_heartbeat(landing / HEARTBEAT_FILE).room == "main-office"
            assert await room.read_receipt() is None
            assert "rsync exit" in str(room.receipt_error)
            now = time.time()
            write_atomic(
                receipts / "receipt.json",
                Receipt("main-office", now - 2, "snap", now - 1, now).to_json(),
            )
            got = await room.read_receipt()
            assert got is not None and got.safe_as_of == now - 2, room.receipt_error
    assert versioned_heartbeats(landing) == []


async def test_keeper_heartbeat_and_receipt_through_the_rsync_daemon_over_ssh(
    tmp_path: Path, bstore: Store, runtime: Path, sshd: SshServer
):
    """The keeper's ssh access: the key's forced command runs `rsync --server --daemon`
    with the keeper's rsyncd config; the room addresses `user@host::module/path`. The
    heartbeat goes to the landing module, the receipt comes back from the receipt module,
    both with the replication's own ssh key and known_hosts."""
    landing, receipts = tmp_path / "landing", tmp_path / "receipts"
    landing.mkdir()
    receipts.mkdir()
    conf = tmp_path / "keeper-rsyncd.conf"
    conf.write_text(
        "use chroot = no\nuid = root\ngid = root\n"  # the ssh login runs it (root here)
        f"[main-office]\n  path = {landing}\n  read only = no\n  write only = yes\n"
        "  list = no\n  refuse options = inplace append append-verify\n"
        f"[main-office-receipt]\n  path = {receipts}\n  read only = yes\n  list = no\n"
    )
    authorized = sshd.identity.parent / "authorized_keys"
    key = sshd.identity.with_suffix(".pub").read_text().strip()
    authorized.write_text(f'command="rsync --server --daemon --config={conf} .",restrict {key}\n')
    src = tmp_path / "src"
    src.mkdir()
    populate_docs(src, 2)
    options = {
        "ssh_port": sshd.port,
        "identity_file": sshd.identity,
        "known_hosts": sshd.known_hosts,
    }
    target = parse_target("root@127.0.0.1::main-office", **options)
    spec = make_spec(src, target, runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, landing)
        room = RoomHeartbeat(
            spec,
            KeeperLinkConfig(receipt="root@127.0.0.1::main-office-receipt/receipt.json"),
            "main-office",
            rep,
            bstore.db,
        )
        room._dir.mkdir(parents=True, exist_ok=True)
        assert await room.beat(), room.ship_error
        assert read_heartbeat(landing / HEARTBEAT_FILE).room == "main-office"
        now = time.time()
        write_atomic(
            receipts / "receipt.json",
            Receipt("main-office", now - 2, "snap", now - 1, now).to_json(),
        )
        got = await room.read_receipt()
        assert got is not None and got.safe_as_of == now - 2, room.receipt_error


@pytest.mark.parametrize("walk", ["fast", "slow"])
async def test_keeper_heartbeat_after_a_restart_claims_nothing_made_while_down(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch, walk: str
):
    """Changes made while the daemon was down are in no journal: until the full pass at
    start has run, the heartbeat's synced_through stays at the previous run's last success,
    not "now" (here the replica is unreachable, so that pass cannot run)."""
    from backup.replicator import Replicator

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    populate_docs(src, 2)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        before = rep.health()["last_success"]
    assert before is not None
    await asyncio.sleep(0.1)
    changed = time.time()
    (src / "docs" / "while-down.hwp").write_bytes(b"written while sentinel was stopped")
    (dst / ".sentinel-target").rename(tmp_path / "marker")  # and the replica is unreachable
    if walk == "slow":
        # the start pass runs beside the first walk of the tree: on a busy host (or a big
        # tree) it finds the target missing before the walk ends, and the walk's end
        # called the replicator "running" over "target missing" (and the heartbeat then
        # claimed everything synced through now)
        from backup.watcher import Watcher

        opened = Watcher.open

        def slow_open(self: Watcher, since: float | None = None) -> None:
            time.sleep(1.0)
            opened(self, since)

        monkeypatch.setattr(Watcher, "open", slow_open)
    rep = Replicator(spec, bstore.db, bstore.write)
    task = asyncio.create_task(rep.run())
    try:
        await until(lambda: rep.health()["target_missing"], 15, "the missing target")
        await until(lambda: rep.watcher is not None and rep.watcher.file_count, 15, "the walk")
        await asyncio.sleep(0.2)  # the walk's end, past
        assert rep.health()["phase"] == "target missing"
        room = RoomHeartbeat(spec, keeper(tmp_path / "receipt.json"), "main-office", rep, bstore.db)
        room._caught_up_before = await room._last_success()
        hb = await room.heartbeat()
        assert hb.synced_through <= before < changed, (hb, before, changed)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
