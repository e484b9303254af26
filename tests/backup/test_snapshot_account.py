"""The keeper's snapshots taken as an account that is not the writer's and not root (issue
11): the keeper runs with CAP_DAC_READ_SEARCH only, reads the writer's private files, and
owns every inode of its snapshots.

Runs `SnapshotStore` in a child process under `setpriv` as uid/gid 65534 (nobody) with that
one capability; the landing area belongs to root, 0600/0700, standing in for the writer.
Skipped unless the tests run as root with setpriv available.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

KEEPER_UID = 65534
SCRIPT = """
import json, sys, time
from pathlib import Path
from backup.retention import Retention
from backup.snapshot import SnapshotError, SnapshotStore
store = SnapshotStore(Path(sys.argv[1]))
out = []
try:
    for _ in range(2):
        r = store.take(Path(sys.argv[2]), now=time.time())
        out.append({"name": r.snapshot.name, "files": r.files, "linked": r.linked,
                    "copied": r.copied, "skipped": r.skipped})
        time.sleep(0.2)
    removed = store.prune(Retention(0, 0, 0), now=time.time() + 10)
    out.append({"pruned": [s.name for s in removed], "left": [s.name for s in store.list()]})
except SnapshotError as e:
    out.append({"error": str(e)})
print(json.dumps(out))
"""


def as_keeper(root: Path, landing: Path, caps: bool) -> list[dict[str, object]]:
    cmd = ["setpriv", f"--reuid={KEEPER_UID}", f"--regid={KEEPER_UID}", "--clear-groups"]
    if caps:
        cmd += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    else:
        cmd += ["--inh-caps=-all"]
    done = subprocess.run(
        [*cmd, sys.executable, "-c", SCRIPT, str(root), str(landing)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def setup() -> Iterator[tuple[Path, Path]]:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to start the keeper as another account")
    # not under pytest's 0700 tmp root: without the cap the keeper must get as far as the
    # landing area, and fail there
    tmp_path = Path(tempfile.mkdtemp(prefix="keeper-acct-"))
    os.chmod(tmp_path, 0o711)
    landing = tmp_path / "landing"
    (landing / "docs").mkdir(parents=True)
    for i in range(5):
        (landing / "docs" / f"f{i}.txt").write_bytes(b"secret %d" % i)
        os.chmod(landing / "docs" / f"f{i}.txt", 0o600)
    os.chmod(landing / "docs", 0o700)
    os.chmod(landing, 0o700)
    snaps = tmp_path / "snapshots"
    (snaps / "room").mkdir(parents=True)
    os.chown(snaps / "room", KEEPER_UID, KEEPER_UID)
    os.chmod(snaps, 0o755)
    time.sleep(0.2)
    try:
        yield snaps / "room", landing
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_keeper_account_with_read_search_cap_snapshots_and_prunes(setup: tuple[Path, Path]) -> None:
    root, landing = setup
    first, second, prune = as_keeper(root, landing, caps=True)
    assert (first["files"], first["copied"], first["skipped"]) == (5, 5, [])
    assert (second["files"], second["linked"], second["copied"]) == (5, 5, 0)
    assert prune == {"pruned": [first["name"]], "left": [second["name"]]}
    snap = root / str(second["name"])
    for path in [snap, *snap.rglob("*")]:
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (KEEPER_UID, KEEPER_UID), path
    assert (snap / "docs" / "f3.txt").read_bytes() == b"secret 3"
    landing_inodes = {os.lstat(p).st_ino for p in landing.rglob("*")}
    assert not landing_inodes & {os.lstat(p).st_ino for p in snap.rglob("*")}


def test_without_the_cap_the_landing_cannot_be_read(setup: tuple[Path, Path]) -> None:
    root, landing = setup
    out = as_keeper(root, landing, caps=False)
    assert "cannot open the landing area" in str(out[0].get("error")), out
