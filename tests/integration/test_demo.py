"""`sentinel demo`, the README's first command, does what its banner promises."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path


def test_demo_pages_the_leak_and_replicates_documents(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "sentinel", "demo", "--duration", "22", "--dir", str(work)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the leak under the UPS at 10 s reached the console and the file channel
    assert "누수" in proc.stdout and "전산실 UPS 하단 누수" in proc.stdout
    alerts = (work / "alerts.log").read_text(encoding="utf-8").splitlines()
    assert any("누수" in line for line in alerts), alerts
    # every document the clerks saved is in the replica with the same bytes
    source, replica = work / "onnara", work / "health-center" / "landing" / "main"
    docs = [p for p in source.rglob("*.hwp")]
    assert len(docs) >= 8
    for doc in docs:
        copy = replica / doc.relative_to(source)
        assert copy.is_file() and filecmp.cmp(doc, copy, shallow=False), doc
    assert "documents identical at the health center" in proc.stdout
    # the demo ends with the room daemon gone: the keeper's page is the last thing printed,
    # naming the room and up to when its data is safe
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("[keeper page]"), proc.stdout[-2000:]
    assert "데모 군청 전산실" in last and "무응답" in last and "까지 안전" in last, last
    snapshots = [
        p
        for p in (work / "health-center" / "snapshots" / "main").iterdir()
        if not p.name.startswith(".")
    ]
    assert snapshots, "the keeper took no snapshot"
    # status still answers from the state the demo left behind
    status = subprocess.run(
        [sys.executable, "-m", "sentinel", "--config", str(work / "sentinel.toml"), "status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "daemon: stopped" in status.stdout
    assert "leak-ups" in status.stdout
