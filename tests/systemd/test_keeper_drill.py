"""`sentinel backup drill` against the keeper, through the documented access on a real sshd
with real accounts (tests/fixtures/keeper_host.py): the room's data lands through the write
key, the keeper snapshots it as its own account, and the drill reads the snapshot back
through the separate drill key and its read-only history module. The write key cannot read
it (it stays write-only), and the drill key cannot write (test_keeper_access.py,
`test_the_drill_key_cannot_write_or_delete_history`)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.keeper_record import HEARTBEAT_FILE, Receipt
from sentinel.cli.main import main
from sentinel.config import ConfigError, load_config
from tests.fixtures.keeper_host import NEEDS, ORIGINAL, ROOM, KeeperHost, kept, run

pytestmark = NEEDS


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The CLI's runtime dir (ssh ControlMaster sockets): short, and its masters ended at
    the end, or their sessions keep the test accounts in use."""
    d = Path(tempfile.mkdtemp(prefix="snt"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(d))
    yield d
    for socket in d.glob("cm-*"):
        run("ssh", "-F", "/dev/null", "-o", f"ControlPath={socket}", "-O", "exit", "keeper")
    shutil.rmtree(d, ignore_errors=True)


def receipt(host: KeeperHost, safe_as_of: float) -> str:
    """The keeper's receipt naming its newest snapshot, written as the keeper writes it."""
    (snapshot,) = host.history
    path = host.receipts / "receipt.json"
    path.write_text(
        Receipt(
            room=ROOM,
            safe_as_of=safe_as_of,
            snapshot=snapshot.name,
            snapshot_ts=time.time(),
            written=time.time(),
        ).to_json()
    )
    shutil.chown(path, host.keeper, host.keeper)
    path.chmod(0o644)
    return snapshot.name


def config(host: KeeperHost, *, history_key: Path | None) -> Path:
    """The room's sentinel.toml for the documented keeper access; `history_key` None: no
    history configured (the drill as it was)."""
    history = (
        ""
        if history_key is None
        else (
            f'history = "{host.keeper}@127.0.0.1::{ROOM}-history"\n'
            f'history_identity_file = "{history_key}"\n'
        )
    )
    cfg = host.base / f"sentinel-{time.monotonic_ns()}.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{host.base / "state"}"\n'
        f'[[replication]]\nname = "docs"\nsource = "{host.base / "room-src"}"\n'
        f'target = "{host.writer}@127.0.0.1::{ROOM}"\nssh_port = {host.ssh_port}\n'
        f'identity_file = "{host.writer_key}"\nknown_hosts = "{host.known_hosts}"\n'
        f'[replication.keeper]\nroom = "{ROOM}"\n'
        f'receipt = "{host.writer}@127.0.0.1::{ROOM}-receipt/receipt.json"\n{history}'
    )
    return cfg


def drill(cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["-c", str(cfg), "backup", "drill"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def keeper_side(host: KeeperHost) -> dict[str, object]:
    """Everything at the keeper the drill could have written to."""
    return {
        "landing": kept(host.landing),
        "snapshots": kept(host.snapshots),
        "receipts": kept(host.receipts),
        "names": sorted(str(p) for p in host.base.joinpath("srv").rglob("*")),
    }


def test_the_drill_against_the_keeper_reads_through_the_history_key(
    landed: KeeperHost, runtime: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without `history` the drill reads the replica, which the keeper's landing module
    refuses ("write only"); with it the drill restores the keeper's snapshot through the
    drill key and passes, and writes nothing at the keeper."""
    safe = time.time()
    name = receipt(landed, safe)

    code, out = drill(config(landed, history_key=None), capsys)
    assert code == 1, out
    assert "DRILL FAILED" in out and "reading the replica failed" in out, out

    before = keeper_side(landed)
    code, out = drill(config(landed, history_key=landed.drill_key), capsys)
    assert code == 0, out
    assert f"keeper snapshot {name} from {landed.keeper}@127.0.0.1::{ROOM}-history" in out
    assert "data safe as of 20" in out
    assert (
        f"DRILL OK: {len(ORIGINAL)} files restored from the keeper's snapshot, identical "
        "to the source"
    ) in out
    assert keeper_side(landed) == before  # nothing written, not even a heartbeat
    assert not (landed.landing / HEARTBEAT_FILE).exists()
    landed.assert_history_intact()


def test_a_rotten_snapshot_fails_the_drill_naming_the_file(
    landed: KeeperHost, runtime: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = receipt(landed, time.time())
    rotten = landed.snapshots / ROOM / name / "2026/approvals/doc-002.hwp"
    st = rotten.stat()
    data = bytearray(rotten.read_bytes())
    data[100] ^= 0x20  # bit rot, as root: same size, same mtime
    rotten.write_bytes(bytes(data))
    os.utime(rotten, ns=(st.st_atime_ns, st.st_mtime_ns))

    code, out = drill(config(landed, history_key=landed.drill_key), capsys)
    assert code == 1, out
    assert "DRILL FAILED: 1 difference between the source and the snapshot" in out
    assert "  2026/approvals/doc-002.hwp: differs from the snapshot" in out


def test_the_write_key_cannot_be_the_drill_key(
    landed: KeeperHost, runtime: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt(landed, time.time())
    # named as the drill key: refused when the config is read
    with pytest.raises(ConfigError, match="is the replication's write key"):
        load_config(config(landed, history_key=landed.writer_key))
    # a copy of it under another name: the keeper account does not take it...
    copy = landed.base / "keys" / "copied-write-key"
    shutil.copy(landed.writer_key, copy)
    copy.chmod(0o600)
    code, out = drill(config(landed, history_key=copy), capsys)
    assert code == 1, out
    assert "Permission denied" in out
    assert "history_identity_file must be the drill key" in out
    # ...and through the writer account, whose forced command serves the write-only
    # config, the history module does not exist
    cfg = config(landed, history_key=copy)
    cfg.write_text(
        cfg.read_text().replace(f'history = "{landed.keeper}@', f'history = "{landed.writer}@')
    )
    code, out = drill(cfg, capsys)
    assert code == 1, out
    assert "Unknown module" in out
    assert "is history_identity_file the drill key? The write key cannot read the history" in out
    # and the write key still cannot read the landing area back
    stolen = landed.base / "stolen"
    read = landed.rsync_as_writer("ssh", "-r", f"::{ROOM}/", f"{stolen}/")
    assert read.returncode != 0 and "module is write only" in read.stderr


def test_the_history_key_reads_no_receipt_and_no_landing(
    landed: KeeperHost, runtime: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The drill key pointed at the landing module (a misconfigured history) is refused:
    its forced command serves the history config only."""
    receipt(landed, time.time())
    cfg = config(landed, history_key=landed.drill_key)
    cfg.write_text(cfg.read_text().replace(f"::{ROOM}-history", f"::{ROOM}"))
    code, out = drill(cfg, capsys)
    assert code == 1, out
    assert "Unknown module" in out
