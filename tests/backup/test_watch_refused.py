"""A directory the daemon's user may not read (another user's mode 0700 directory): the
kernel refuses to watch it; it is set aside and listed in status, the rest still ships."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.quarantine import read_quarantine

NOBODY = 65534

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv to act as another user",
)


@pytest.fixture
def base() -> Iterator[Path]:
    # not under pytest's tmp_path: that is root's 0700 directory
    d = Path(tempfile.mkdtemp(prefix="sntref"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_directory_the_daemon_may_not_read_is_set_aside_and_the_rest_ships(
    base: Path,
) -> None:
    source, replica, state, runtime = (base / n for n in ("src", "replica", "state", "run"))
    for d in (source, source / "ok", replica, state, runtime):
        d.mkdir()
    (source / "ok" / "doc.txt").write_text("shipped\n")
    for d in (source, source / "ok", replica, state, runtime):
        os.chown(d, NOBODY, NOBODY)
    os.chown(source / "ok" / "doc.txt", NOBODY, NOBODY)
    # another user's private directory (root's, mode 0700): inotify_add_watch gives EACCES
    (source / "private").mkdir(mode=0o700)
    (source / "private" / "secret.txt").write_text("not ours\n")

    proc = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-m",
            "tests.backup.refused_probe",
            str(state),
            str(source),
            str(replica),
            str(runtime),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert (replica / "ok" / "doc.txt").read_text() == "shipped\n"
    assert not (replica / "private" / "secret.txt").exists()
    conn = sqlite3.connect(state / "sentinel.db")
    try:
        listed = read_quarantine(conn, "docs")
    finally:
        conn.close()
    assert [p["path"] for p in listed["paths"]] == ["private"]
    # refused by inotify ("cannot watch: ..."), or by rsync when the scan's event gave it
    # another try: either way the operator reads why
    assert "Permission denied" in listed["paths"][0]["reason"]
