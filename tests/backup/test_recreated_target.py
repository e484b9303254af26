"""A remote replica removed while sentinel runs: rsync re-creates a missing destination root
by itself. The batch that did it says so ("created directory"), and that is taken at once
for a lost target (page, shipping stops) instead of waiting for the next marker check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backup.replicator import Replicator
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running
from tests.fixtures.poll import until
from tests.fixtures.remote import RsyncDaemon, SshServer


@pytest.mark.parametrize("transport", ["rsyncd", "ssh"])
async def test_remote_target_removed_while_running_stops_at_the_next_batch(
    tmp_path: Path,
    bstore: Store,
    runtime: Path,
    transport: str,
    request: pytest.FixtureRequest,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f1").write_text("one")
    if transport == "rsyncd":
        server: RsyncDaemon = request.getfixturevalue("rsyncd")
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
    spec = make_spec(src, target, runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, replica)
        shutil.rmtree(replica)  # within the marker check's cache
        (src / "f9").write_text("new")
        await until(
            lambda: rep.health()["target_missing"] and bool(rep.health()["last_error"]),
            20,
            "target missing",
        )
        health = rep.health()
        assert "re-created" in health["last_error"]
        assert "target missing or not mounted" in health["last_error"]
        assert health["pending"] >= 1  # f9 is still owed to the real replica
        (src / "f10").write_text("later")
        await until(lambda: rep.journal.pending >= 2, 20, "f10 recorded")
        assert not (replica / "f10").exists()  # nothing more shipped there
        # the operator checked the directory and makes it the replica
        by_hand = Replicator(spec, bstore.db, bstore.write)
        await by_hand.load()
        assert await by_hand.reconcile("by hand", init_target=True) is not None
        await until(lambda: not rep.health()["target_missing"], 20, "target back")
        await caught_up(rep, src, replica)
