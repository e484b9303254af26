"""`sentinel backup drill` from the keeper's history, with a keeper on a local disk (the fast
variant; tests/systemd/test_keeper_drill.py runs it through the documented drill key on a
real sshd): the newest snapshot named by the receipt is restored and compared with the
source; changes made after its "data safe as of" are listed apart and do not fail it; a
damaged snapshot fails it, naming the file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backup.keeper_record import Receipt, write_atomic
from backup.snapshot import SnapshotStore
from sentinel.cli.main import main
from sentinel.config import ConfigError, load_config

ROOM = "main"
DOCS = {
    "2026/approvals/doc-001.hwp": b"approval 001\n" * 50,
    "2026/approvals/doc-002.hwp": b"approval 002\n" * 50,
    "index.txt": b"index\n",
}


class Keeper:
    """A keeper's directories on this host: landing, snapshots, receipts."""

    def __init__(self, base: Path) -> None:
        self.landing = base / "landing" / ROOM
        self.snapshots = base / "snapshots" / ROOM
        self.receipt = base / "receipts" / ROOM / "receipt.json"
        self.receipt.parent.mkdir(parents=True)
        self.landing.mkdir(parents=True)
        self.store = SnapshotStore(self.snapshots)

    def snapshot(self, safe_as_of: float | None) -> str:
        """What the keeper does after the room's data landed: a snapshot, then the receipt
        that names it."""
        taken = self.store.take(self.landing, now=time.time()).snapshot
        write_atomic(
            self.receipt,
            Receipt(
                room=ROOM,
                safe_as_of=safe_as_of,
                snapshot=taken.name,
                snapshot_ts=taken.ts,
                written=time.time(),
            ).to_json(),
        )
        return taken.name


def write(root: Path, content: dict[str, bytes]) -> Path:
    for rel, data in content.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def config(tmp_path: Path, src: Path, keeper: Keeper, extra: str = "") -> list[str]:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[replication]]\nname = "docs"\nsource = "{src}"\ntarget = "{keeper.landing}"\n'
        f'[replication.keeper]\nroom = "{ROOM}"\nreceipt = "{keeper.receipt}"\n{extra}'
    )
    return ["-c", str(cfg), "backup"]


@pytest.fixture
def room(tmp_path: Path) -> tuple[Path, Keeper, list[str]]:
    """A room replicated to a local keeper, snapshotted, with the receipt naming it."""
    src = write(tmp_path / "src", DOCS)
    keeper = Keeper(tmp_path / "keeper")
    cli = config(tmp_path, src, keeper, f'history = "{keeper.snapshots}"\n')
    assert main([*cli, "sync", "--full"]) == 0
    return src, keeper, cli


def test_drill_restores_the_keepers_newest_snapshot_and_says_which(
    room: tuple[Path, Keeper, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _src, keeper, cli = room
    keeper.snapshot(safe_as_of=time.time() - 3600)  # an older snapshot: not the one drilled
    newest = keeper.snapshot(safe_as_of=time.time())
    capsys.readouterr()
    assert main([*cli, "drill", "docs"]) == 0
    out = capsys.readouterr().out
    assert f"keeper snapshot {newest} from {keeper.snapshots}" in out
    assert "data safe as of 20" in out
    assert (
        f"DRILL OK: {len(DOCS)} files restored from the keeper's snapshot, identical to "
        "the source ("
    ) in out
    assert "newer than the snapshot" not in out


def test_changes_after_safe_as_of_are_listed_apart_and_do_not_fail(
    room: tuple[Path, Keeper, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    src, keeper, cli = room
    keeper.snapshot(safe_as_of=time.time())
    time.sleep(0.05)
    (src / "index.txt").write_bytes(b"index, edited after the snapshot\n")
    (src / "2026/new.hwp").write_bytes(b"written after the snapshot\n")
    (src / "2026/approvals/doc-002.hwp").unlink()
    capsys.readouterr()
    assert main([*cli, "drill"]) == 0
    out = capsys.readouterr().out
    assert "identical to the source except 3 changed at the source since" in out
    newer = out.split("newer than the snapshot", 1)[1]
    assert "  index.txt: differs from the snapshot (changed 20" in newer, out
    assert "  2026/new.hwp: missing from the snapshot (changed 20" in newer, out
    assert "  2026/approvals/doc-002.hwp: only in the snapshot (not in the source)" in newer, out


def test_a_damaged_snapshot_fails_the_drill_naming_every_file(
    room: tuple[Path, Keeper, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _src, keeper, cli = room
    name = keeper.snapshot(safe_as_of=time.time())
    snap = keeper.snapshots / name
    rotten = snap / "2026/approvals/doc-001.hwp"
    stat = rotten.stat()
    data = bytearray(rotten.read_bytes())
    data[5] ^= 0x01  # one flipped bit, same size and mtime: only a checksum sees it
    rotten.write_bytes(bytes(data))
    os.utime(rotten, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (snap / "index.txt").unlink()
    capsys.readouterr()
    assert main([*cli, "drill"]) == 1
    out = capsys.readouterr().out
    assert "DRILL FAILED: 2 differences between the source and the snapshot" in out
    assert "  2026/approvals/doc-001.hwp: differs from the snapshot" in out
    assert "  index.txt: missing from the snapshot" in out


def test_a_file_the_source_changed_before_safe_as_of_fails(
    room: tuple[Path, Keeper, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """The keeper claims everything up to safe_as_of is in the snapshot: a source change
    older than that which the snapshot lacks is a failure, not "newer"."""
    src, keeper, cli = room
    (src / "index.txt").write_bytes(b"changed, never shipped\n")
    time.sleep(0.05)
    keeper.snapshot(safe_as_of=time.time())
    capsys.readouterr()
    assert main([*cli, "drill"]) == 1
    out = capsys.readouterr().out
    assert "  index.txt: differs from the snapshot" in out
    assert "newer than the snapshot" not in out


def test_without_a_receipt_or_snapshot_the_drill_fails_clearly(
    room: tuple[Path, Keeper, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _src, keeper, cli = room
    capsys.readouterr()
    assert main([*cli, "drill"]) == 1
    assert "cannot read the keeper's receipt" in capsys.readouterr().out
    write_atomic(
        keeper.receipt,
        Receipt(
            room=ROOM, safe_as_of=None, snapshot=None, snapshot_ts=None, written=time.time()
        ).to_json(),
    )
    assert main([*cli, "drill"]) == 1
    assert "the keeper has no snapshot of room 'main' yet" in capsys.readouterr().out
    write_atomic(
        keeper.receipt,
        Receipt(
            room=ROOM, safe_as_of=None, snapshot="../../etc", snapshot_ts=None, written=time.time()
        ).to_json(),
    )
    assert main([*cli, "drill"]) == 1
    assert "which is not a snapshot name" in capsys.readouterr().out
    write_atomic(
        keeper.receipt,
        Receipt(
            room="other", safe_as_of=None, snapshot=None, snapshot_ts=None, written=time.time()
        ).to_json(),
    )
    assert main([*cli, "drill"]) == 1
    assert "is for room 'other', not 'main'" in capsys.readouterr().out


def test_without_history_the_drill_reads_the_replica_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write(tmp_path / "src", DOCS)
    keeper = Keeper(tmp_path / "keeper")
    cli = config(tmp_path, src, keeper)
    assert main([*cli, "sync", "--full"]) == 0
    capsys.readouterr()
    assert main([*cli, "drill"]) == 0
    out = capsys.readouterr().out
    assert "DRILL OK: 3 files restored and identical to the source" in out
    assert "keeper snapshot" not in out


@pytest.mark.parametrize(
    ("keeper_lines", "error"),
    [
        ('history_identity_file = "/etc/sentinel/id_drill"\n', "set history too"),
        ('history = "sentinel-keeper@hc::main-history"\n', "needs the separate drill key"),
        ('history = "rsync://sentinel-keeper@hc/main-history"\n', "read-only snapshot module"),
        (
            'history = "sentinel-keeper@hc:/srv/keeper/snapshots/main"\n',
            "read-only snapshot module",
        ),
        (
            'history = "/srv/keeper/snapshots/main"\nhistory_identity_file = "/k"\n',
            "only for an ssh history",
        ),
    ],
)
def test_history_config_is_checked(tmp_path: Path, keeper_lines: str, error: str) -> None:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[[replication]]\nname = "docs"\n'
        f'source = "{tmp_path}/src"\ntarget = "/srv/replica"\n[replication.keeper]\n'
        f'receipt = "/srv/keeper/receipts/docs/receipt.json"\n{keeper_lines}'
    )
    with pytest.raises(ConfigError, match=error):
        load_config(cfg)


def test_the_write_key_is_refused_as_the_drill_key(tmp_path: Path) -> None:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[[replication]]\nname = "docs"\n'
        f'source = "{tmp_path}/src"\ntarget = "sentinel-replica@hc::main"\n'
        'identity_file = "keys/id_write"\n[replication.keeper]\n'
        'receipt = "sentinel-replica@hc::main-receipt/receipt.json"\n'
        'history = "sentinel-keeper@hc::main-history"\nhistory_identity_file = "keys/id_write"\n'
    )
    with pytest.raises(ConfigError, match="is the replication's write key"):
        load_config(cfg)
    cfg.write_text(
        cfg.read_text().replace(
            'history_identity_file = "keys/id_write"', 'history_identity_file = "keys/id_drill"'
        )
    )
    rc = load_config(cfg).replication[0]
    assert rc.keeper is not None and rc.keeper.history_identity_file == tmp_path / "keys/id_drill"
