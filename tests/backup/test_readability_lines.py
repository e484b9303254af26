"""Which paths rsync's sender could not read, from rsync's own lines (real rsync run as
nobody), and what counts as unreadable: the prefix before the quoted path decides, never a
substring a file name can supply."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from backup.readability import FILE_DENIED, sender_denied, unreadable_reason
from backup.replicator import Replicator
from backup.spec import ReplicationSpec
from backup.transport import parse_target
from sentinel import migrations
from sentinel.store import Store

NOBODY = 65534
ODD = [
    'we\nird "q" p.hwp',
    "b\\#012s\x1b[2J.hwp",
    os.fsdecode(b"hi\xff\xe4\xb8\xad.hwp"),
    "[sender] minutes.hwp",
    "a | rsync: [sender] x.hwp",
    "평범한 문서.hwp",
]


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv (to run rsync as nobody)",
)
def test_rsync_names_each_path_it_may_not_read_and_the_names_decode_exactly() -> None:
    base = Path(tempfile.mkdtemp(prefix="sntlines"))
    try:
        base.chmod(0o755)
        src, dst = base / "src", base / "dst"
        (src / "ok").mkdir(parents=True)
        dst.mkdir()
        os.chown(dst, NOBODY, NOBODY)
        (src / "ok" / "fine.txt").write_text("fine\n")
        for name in ODD:
            fd = os.open(src / "ok" / name, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        (src / "hr").mkdir(mode=0o700)
        (src / "hr" / "pay.xls").write_text("pay\n")
        listing = b"ok/\0hr/\0hr/pay.xls\0"
        proc = subprocess.run(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "rsync",
                "-a",
                "-d",
                "-R",
                "--files-from=-",
                "--from0",
                f"{src}/",
                f"{dst}/",
            ],
            input=listing,
            capture_output=True,
            timeout=30,
        )
        assert proc.returncode == 23, proc.stderr
        lines = proc.stderr.decode("utf-8", "replace").splitlines()
        named = sender_denied(lines)
        expected = {f"{src}/ok/{n}" for n in ODD} | {f"{src}/hr", f"{src}/hr/pay.xls"}
        assert expected <= set(named), (named, lines)
        assert set(named) <= expected | {f"{src}/hr"}, named
        assert (dst / "ok" / "fine.txt").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_replica_refusing_a_file_named_like_a_sender_line_is_not_unreadable() -> None:
    receiver = (
        'rsync exit 23: rsync: [receiver] mkstemp "/r/ro/.[sender] minutes.hwp.Xa3Bc" '
        "failed: Permission denied (13) | rsync error: some files/attrs were not "
        "transferred (see previous errors) (code 23) at main.c(1338) [sender=3.2.7]"
    )
    assert not unreadable_reason(receiver)
    assert sender_denied(receiver.split(" | ")) == []
    forged = (
        'rsync: [receiver] mkstemp "/r/.x": Permission denied (13) | '
        'rsync: [sender] send_files failed to open "y": Permission denied (13)'
    )
    assert not unreadable_reason(forged)  # rsync's text never decides on its own
    assert unreadable_reason(FILE_DENIED)
    assert unreadable_reason("cannot watch: Permission denied")


class Scanned(set[str]):
    """The set-aside paths, counting how often something walks through all of them."""

    scans = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        self.scans += 1
        return super().__iter__()


async def test_attrib_on_a_plain_file_does_not_scan_the_set_aside_paths(
    tmp_path: Path,
) -> None:
    """`setfacl -R` over N set-aside files sends N ATTRIB events; each scanned every
    set-aside path (O(N²) on the event loop: 10,000 files, 10 s). Only a directory can have
    set-aside paths below it."""
    source = tmp_path / "src"
    (source / "dir7").mkdir(parents=True)
    store = await Store.open(tmp_path / "state")
    try:
        await migrations.migrate(store)
        rep = Replicator(
            ReplicationSpec(
                "docs", source, parse_target(str(tmp_path / "r")), runtime_dir=tmp_path / "run"
            ),
            store.db,
            store.write,
        )
        await rep.load()
        aside = Scanned(f"dir{i}/f.hwp" for i in range(20000))
        rep.quarantine.unreadable = aside
        for i in range(200):
            (source / f"p{i}.hwp").write_text("x")
        for i in range(200):
            rep._on_change(f"p{i}.hwp", "attrib")
        # a plain file cannot have set-aside paths below it: not one scan of the 20,000
        assert aside.scans == 0
        rep._on_change("dir7", "attrib")  # access granted on a directory: below it, again
        assert aside.scans == 1
        assert "dir7/f.hwp" in rep._changes and "dir8/f.hwp" not in rep._changes
    finally:
        await store.close()
