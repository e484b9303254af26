"""Replication over the rsync daemon and over ssh (host keys checked, ControlMaster)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from backup.restore import RestoreError, restore
from backup.target import PARTIAL_DIR, Target, TargetError
from backup.transfer import remove_partials
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running, tree_diff
from tests.fixtures.poll import until
from tests.fixtures.remote import RrsyncServer, RsyncDaemon, SshServer


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def _write_some(src: Path, tag: str) -> None:
    (src / "d" / "e").mkdir(parents=True, exist_ok=True)
    (src / "d" / "e" / f"{tag}.bin").write_bytes(os.urandom(5000))
    (src / f"{tag}.txt").write_text(f"content {tag} 한글")


async def test_rsync_daemon_transport_with_secrets_file(
    tmp_path: Path, bstore: Store, runtime: Path, rsyncd: RsyncDaemon
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_some(src, "first")
    target = parse_target(rsyncd.url(), password_file=rsyncd.password_file)
    replica = rsyncd.module_dir / "replica"
    async with running(make_spec(src, target, runtime), bstore) as rep:
        await caught_up(rep, src, replica)
        _write_some(src, "second")
        (src / "first.txt").unlink()
        await caught_up(rep, src, replica)
        assert "s3cret" not in repr(rep.health())


async def test_rsync_daemon_password_file_readable_by_others_is_refused(
    tmp_path: Path, rsyncd: RsyncDaemon, runtime: Path
) -> None:
    rsyncd.password_file.chmod(0o644)
    target = parse_target(rsyncd.url(), password_file=rsyncd.password_file)
    with pytest.raises(TargetError, match="other users can read"):
        target.transport_args(runtime)


async def test_ssh_transport_checks_host_key_and_keeps_a_control_master(
    tmp_path: Path, bstore: Store, runtime: Path, sshd: SshServer
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_some(src, "first")
    target = parse_target(
        sshd.address(),
        ssh_port=sshd.port,
        identity_file=sshd.identity,
        known_hosts=sshd.known_hosts,
    )
    replica = sshd.root_dir / "replica"
    async with running(make_spec(src, target, runtime), bstore) as rep:
        await caught_up(rep, src, replica)
        _write_some(src, "second")
        await caught_up(rep, src, replica)
        sockets = [p for p in runtime.iterdir() if p.name.startswith("cm-")]
        assert sockets, "no ControlMaster socket: every batch would pay a handshake"


async def test_ssh_with_unknown_host_key_fails_instead_of_trusting(
    tmp_path: Path, bstore: Store, runtime: Path, sshd: SshServer
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_some(src, "x")
    empty_known = tmp_path / "known_hosts"
    empty_known.write_text("")
    target = parse_target(
        sshd.address(), ssh_port=sshd.port, identity_file=sshd.identity, known_hosts=empty_known
    )
    async with running(make_spec(src, target, runtime), bstore) as rep:
        await until(lambda: rep.health()["consecutive_failures"] >= 1, 20, "a failure")
        assert rep.health()["pending"] > 0 or rep.health()["last_full"] is None
    assert tree_diff(src, sshd.root_dir / "replica")  # nothing was sent


async def test_ssh_accept_new_trusts_a_first_key_and_refuses_a_changed_one(
    tmp_path: Path, bstore: Store, runtime: Path, sshd: SshServer
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_some(src, "first")
    known = tmp_path / "known_hosts"
    known.write_text("")
    target = parse_target(
        sshd.address(),
        ssh_port=sshd.port,
        identity_file=sshd.identity,
        known_hosts=known,
        strict_host_key_checking="accept-new",
    )
    async with running(make_spec(src, target, runtime), bstore) as rep:
        await caught_up(rep, src, sshd.root_dir / "replica")
    assert f"[127.0.0.1]:{sshd.port}" in known.read_text()  # the key was recorded
    ssh = target.ssh_command(runtime)
    _run([*ssh, "-O", "exit", "root@127.0.0.1"])  # no master left over to reuse

    # the host's key changes (a man in the middle): accept-new refuses it
    other = tmp_path / "other_key"
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)])
    known.write_text(f"[127.0.0.1]:{sshd.port} {other.with_suffix('.pub').read_text()}")
    result = _run([*ssh, "-o", "ControlMaster=no", "root@127.0.0.1", "true"])
    assert result.returncode != 0
    assert "HOST IDENTIFICATION HAS CHANGED" in result.stderr


# --- the documented health-center key: command="rrsync -wo DIR" ----------------------------


def _rrsync_target(server: RrsyncServer) -> Target:
    # the target as docs/install.md gives it: an empty path is rrsync's directory
    return parse_target(
        server.address(),
        ssh_port=server.port,
        identity_file=server.identity,
        known_hosts=server.known_hosts,
    )


async def _ships_a_same_size_rewrite_within_one_second(
    tmp_path: Path, store: Store, runtime: Path, target: Target, replica: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_some(src, "first")
    doc = src / "doc.hwp"
    second = 1_700_000_000 * 10**9
    doc.write_bytes(b"A" * 4096)
    os.utime(doc, ns=(second, second + 100_000_000))
    async with running(make_spec(src, target, runtime), store) as rep:
        await caught_up(rep, src, replica)  # marker, full pass and its preview
        # same size, same second: only the nanoseconds tell the quick check it changed.
        # Written beside the tree and renamed in, so no event sees an in-between mtime.
        new = tmp_path / "doc.new"
        new.write_bytes(b"B" * 4096)
        os.utime(new, ns=(second, second + 600_000_000))
        os.replace(new, doc)
        (src / "first.txt").unlink()
        await caught_up(rep, src, replica)
    assert (replica / "doc.hwp").read_bytes() == b"B" * 4096


async def test_rrsync_key_ships_a_same_size_rewrite_within_one_second(
    tmp_path: Path, bstore: Store, runtime: Path, rrsync_sshd: RrsyncServer
) -> None:
    """rrsync refuses the `-@-1` that a local --modify-window=-1 sends; the nanosecond
    compare must still reach the receiver, or this rewrite is never shipped."""
    await _ships_a_same_size_rewrite_within_one_second(
        tmp_path, bstore, runtime, _rrsync_target(rrsync_sshd), rrsync_sshd.replica
    )


async def test_rsync_daemon_ships_a_same_size_rewrite_within_one_second(
    tmp_path: Path, bstore: Store, runtime: Path, rsyncd: RsyncDaemon
) -> None:
    target = parse_target(rsyncd.url(), password_file=rsyncd.password_file)
    await _ships_a_same_size_rewrite_within_one_second(
        tmp_path, bstore, runtime, target, rsyncd.module_dir / "replica"
    )


async def test_rrsync_key_verifies_and_removes_partials_but_only_a_read_key_restores(
    tmp_path: Path, bstore: Store, runtime: Path, rrsync_sshd: RrsyncServer
) -> None:
    """verify and the partial-file cleanup are pushes, so a write-only key allows them;
    restore reads, which the key refuses (docs/install.md says so) and a read-only
    `rrsync -ro` key for the same directory allows, with the same `host:` address."""
    src = tmp_path / "src"
    src.mkdir()
    _write_some(src, "first")
    target = _rrsync_target(rrsync_sshd)
    spec = make_spec(src, target, runtime)
    replica = rrsync_sshd.replica
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, replica)
        rotten = replica / "first.txt"
        st = rotten.stat()
        data = bytearray(rotten.read_bytes())
        data[0] ^= 0xFF  # same size, same mtime: only the checksum compare sees it
        rotten.write_bytes(bytes(data))
        os.utime(rotten, ns=(st.st_atime_ns, st.st_mtime_ns))
        record = await rep.verify()
        assert record["error"] is None
        assert record["differences"] == 1 and record["sample"] == ["first.txt"]

    partial = replica / PARTIAL_DIR / "gone.bin"
    partial.parent.mkdir()
    partial.write_bytes(b"half a file")
    assert (await remove_partials(spec, ["gone.bin"])).ok
    assert not partial.exists()

    with pytest.raises(RestoreError, match="write-only"):
        await restore(target, runtime, tmp_path / "restored")

    # the separate read-only key docs/install.md suggests for restores, same target address
    authorized = rrsync_sshd.identity.parent / "authorized_keys"
    authorized.write_text(authorized.read_text().replace("rrsync -wo", "rrsync -ro"))
    _run([*target.ssh_command(runtime), "-O", "exit", "root@127.0.0.1"])  # log in anew
    rotten.write_bytes((src / "first.txt").read_bytes())  # verify saw it; mend it
    restored = tmp_path / "restored"
    await restore(target, runtime, restored)
    assert not tree_diff(src, restored)


async def test_local_target_ships_a_same_size_rewrite_within_one_second(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    replica = tmp_path / "replica"
    await _ships_a_same_size_rewrite_within_one_second(
        tmp_path, bstore, runtime, parse_target(str(replica)), replica
    )
