"""Out of inotify watches: a clear error that names the sysctl and the count needed, the
watch_limit reading for an alarm, and periodic full reconciles so nothing is lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("unshare") is None
    or subprocess.run(["unshare", "-U", "-r", "true"], capture_output=True).returncode != 0,
    reason="needs user namespaces (unshare -U) to lower the watch limit for one process",
)


def test_running_out_of_watches_is_loud_and_loses_nothing(tmp_path: Path) -> None:
    source, replica = tmp_path / "src", tmp_path / "replica"
    for i in range(30):
        (source / f"d{i}").mkdir(parents=True)
        (source / f"d{i}" / "doc.txt").write_text(f"document {i}\n")
    replica.mkdir()
    runtime = tmp_path / "run"
    runtime.mkdir()
    proc = subprocess.run(
        [
            "unshare",
            "-U",
            "-r",
            sys.executable,
            "-m",
            "tests.backup.watch_limit_probe",
            str(tmp_path / "state"),
            str(source),
            str(replica),
            str(runtime),
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["watch_limit"] is True
    assert "fs.inotify.max_user_watches" in report["error"]
    assert "31 directories" in report["error"]  # the root and its 30 subdirectories
    assert "fs.inotify.max_user_watches" in proc.stderr  # and it was logged
    assert report["late_replicated"] is True  # the fallback reconcile shipped it
    for i in range(30):
        assert (replica / f"d{i}" / "doc.txt").read_text() == f"document {i}\n"
