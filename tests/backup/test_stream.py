"""The stream road: plain files over one ssh session to `sentinel receive` (a forced
command), with a real sshd on loopback and the receiver as sshd starts it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from backup.replica_writer import TEMP_DIR
from backup.spec import ReplicationSpec
from backup.target import VERSIONS_DIR
from backup.transport import parse_target
from sentinel.cli import status as cli_status
from sentinel.status import _attach_streams
from sentinel.store import Store
from tests.backup.churn import churn
from tests.backup.helpers import caught_up, make_spec, running, tree_diff
from tests.fixtures.poll import until
from tests.fixtures.remote import StreamServer

ROOT = Path(__file__).resolve().parents[2]


def _spec(tmp_path: Path, runtime: Path, server: StreamServer, **kw: object) -> ReplicationSpec:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    target = parse_target(
        server.address(),
        ssh_port=server.port,
        identity_file=server.identity,
        known_hosts=server.known_hosts,
        stream_identity_file=server.stream_identity,
    )
    return make_spec(src, target, runtime, **kw)


def _start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, cwd=ROOT)


def _status_text(health: dict[str, object]) -> str:
    """What `sentinel status` prints for this replication, from its component's health."""
    rows: list[dict[str, object]] = [{"name": "docs", "consecutive_failures": 0}]
    _attach_streams(rows, {"replication:docs": health})
    console = Console(record=True, width=300)
    cli_status._replication({"replication": rows}, console, time.time(), 1)
    return console.export_text()


def _receivers(replica: Path) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-f", f"sentinel receive {replica}"], capture_output=True, text=True
    )
    return [int(p) for p in out.stdout.split()]


def _versions(replica: Path) -> dict[str, bytes]:
    root = replica / VERSIONS_DIR
    out = {}
    for here, _dirs, files in os.walk(root):
        for name in files:
            full = Path(here) / name
            rel = full.relative_to(root)
            out["/".join(rel.parts[1:])] = full.read_bytes()  # without the stamp
    return out


async def test_plain_files_go_over_the_stream_with_versions_and_attributes(
    tmp_path: Path, bstore: Store, runtime: Path, stream_sshd: StreamServer
) -> None:
    spec = _spec(tmp_path, runtime, stream_sshd)
    src, replica = spec.source, stream_sshd.replica
    (src / "old.txt").write_text("first")
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, replica)  # the full pass: rsync
        (src / "d" / "e").mkdir(parents=True)
        (src / "d" / "e" / "new.hwp").write_bytes(os.urandom(9000))
        os.chmod(src / "d" / "e" / "new.hwp", 0o640)
        (src / "old.txt").write_text("second, longer")
        (src / "gone.txt").write_text("short-lived")
        await caught_up(rep, src, replica)
        (src / "gone.txt").unlink()
        await caught_up(rep, src, replica)
        stream = rep.health()["stream"]
        assert stream["up"] and stream["error"] is None
        # the new file, the rewrite, the short-lived file and its deletion: all streamed
        assert stream["files"] >= 3, stream
    new = replica / "d" / "e" / "new.hwp"
    assert new.stat().st_mode & 0o777 == 0o640
    assert new.stat().st_mtime_ns == (src / "d" / "e" / "new.hwp").stat().st_mtime_ns
    kept = _versions(replica)
    assert kept.get("old.txt") == b"first"  # the replaced content, kept
    assert kept.get("gone.txt") == b"short-lived"  # the deleted file, kept
    await until(lambda: not _receivers(replica), 10, "the receiver to exit with the session")


async def test_a_killed_receiver_loses_nothing_and_the_stream_comes_back(
    tmp_path: Path, bstore: Store, runtime: Path, stream_sshd: StreamServer
) -> None:
    spec = _spec(tmp_path, runtime, stream_sshd)
    src, replica = spec.source, stream_sshd.replica
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, replica)
        (src / "a.txt").write_text("a")
        await caught_up(rep, src, replica)
        assert rep.health()["stream"]["up"]
        for pid in _receivers(replica):
            os.kill(pid, signal.SIGKILL)
        # no batch yet: status says so anyway once ssh has exited
        await until(lambda: not rep.health()["stream"]["up"], 10, "the idle session seen down")
        assert "the session ended" in rep.health()["stream"]["error"]
        for i in range(30):  # written while the session is dead: rsync ships them
            (src / f"during{i}.txt").write_text(f"during {i}")
        await caught_up(rep, src, replica)
        down = rep.health()["stream"]
        assert not down["up"] and down["error"], down  # said, not silent
        assert "the stream is down" in _status_text(rep.health())
        files = down["files"]
        # after the pause (1 s first) the next batch opens a new session
        await asyncio.sleep(1.5)
        (src / "after.txt").write_text("after")
        await caught_up(rep, src, replica)
        back = rep.health()["stream"]
        assert back["up"] and back["error"] is None, back
        assert back["files"] > files


async def test_kill_9_mid_churn_over_the_stream_then_restart_catches_up(
    tmp_path: Path, runtime: Path, stream_sshd: StreamServer
) -> None:
    """The replicating process dies (kill -9) while batches stream: its receiver exits with
    the session, and the restart (full pass, then the stream again) leaves the replica
    byte-for-byte the source, with no temporary file left once a batch has run."""
    src, replica, state = tmp_path / "src", stream_sshd.replica, tmp_path / "state"
    src.mkdir()
    options = {
        "ssh_port": stream_sshd.port,
        "identity_file": str(stream_sshd.identity),
        "known_hosts": str(stream_sshd.known_hosts),
        "stream_identity_file": str(stream_sshd.stream_identity),
    }
    argv = [
        sys.executable,
        "-m",
        "tests.backup.runner",
        str(state),
        str(src),
        stream_sshd.address(),
        str(runtime),
        json.dumps(options),
    ]
    proc = _start(argv)
    try:
        (src / "first.txt").write_text("first")
        await until(lambda: tree_diff(src, replica) == [], 60, "the first files")
        (src / "second.txt").write_text("second")  # after the full pass: a streamed batch
        await until(lambda: bool(_receivers(replica)), 30, "a stream session")
        stop = [False]
        work = asyncio.create_task(asyncio.to_thread(churn, src, 6.0, 5, stop))
        await asyncio.sleep(3)
        os.kill(proc.pid, signal.SIGKILL)  # mid-churn: a batch is streaming or about to
        proc.wait()
        await work
        # the orphaned session ends with its input: no receiver keeps the replica's lock
        await until(lambda: not _receivers(replica), 20, "the old receiver to exit")
        proc = _start(argv)
        await until(lambda: not tree_diff(src, replica), 90, "caught up after restart")
        (src / "after.txt").write_text("after the restart")  # a batch over the new session
        await until(lambda: not tree_diff(src, replica), 30, "the batch after")
        assert _receivers(replica), "the restart streams again"
    finally:
        proc.kill()
        proc.wait()
    assert not tree_diff(src, replica)
    assert not list((replica / TEMP_DIR).iterdir())
