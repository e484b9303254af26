"""`sentinel demo`, the README's first command, does what its banner promises."""

from __future__ import annotations

import filecmp
import json
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from tests.fixtures.poll import until_sync

# loopback only: never through a proxy from the environment; the session cookie kept
_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(CookieJar())
)


def _post_json(url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with _OPENER.open(request, timeout=30) as response:
        text = response.read()
    return json.loads(text) if response.headers.get_content_type() == "application/json" else None


def _get_json(url: str) -> Any:
    with _OPENER.open(url, timeout=5) as response:
        return json.load(response)


def _overall(url: str) -> dict[str, Any] | None:
    """The dashboard's verdict, or None while the daemon is not serving yet."""
    try:
        return dict(_get_json(url + "api/status")["overall"])
    except OSError:
        return None


def test_demo_pages_the_leak_and_replicates_documents(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "demo", "--duration", "22", "--dir", str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: lines.extend(demo.stdout or ()), daemon=True),
        threading.Thread(target=lambda: errors.extend(demo.stderr or ()), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        # the banner names the dashboard; during the leak (10 s to 30 s) it says CRITICAL
        dashboard = until_sync(
            lambda: next(
                (m.group(1) for line in lines if (m := re.search(r"dashboard\s+(\S+)", line))),
                None,
            ),
            30,
            "the banner to name the dashboard",
        )
        overall = until_sync(
            lambda: (o := _overall(dashboard)) is not None and o["state"] == "CRITICAL" and o,
            40,
            "the dashboard to show the leak",
        )
        assert any("누수" in reason for reason in overall["reasons"]), overall
        with _OPENER.open(dashboard, timeout=5) as page:
            assert b"<html" in page.read().lower()
        # the banner's demo login acknowledges the leak from the web
        login = next(m for line in lines if (m := re.search(r"log in as (\S+) / (\S+)", line)))
        _post_json(dashboard + "login", {"user": login[1], "password": login[2]}, {})
        status = _get_json(dashboard + "api/status")
        assert status["web"]["user"] == "demo" and status["web"]["can_act"], status["web"]
        leak = next(a for a in status["alarms"] if a["sensor"] == "leak-ups")
        acked = _post_json(
            dashboard + f"api/alarms/{leak['id']}/ack",
            {"reason": "mopping up"},
            {"X-CSRF-Token": status["web"]["csrf"]},
        )
        assert acked["ok"], acked
        demo.wait(timeout=120)
    finally:
        if demo.poll() is None:  # a failed check: stop it as Ctrl-C does, so it stops its keeper
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=20)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
        for reader in readers:
            reader.join(timeout=5)
    proc = subprocess.CompletedProcess(demo.args, demo.returncode, "".join(lines), "".join(errors))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the leak under the UPS at 10 s reached the console and the file channel
    assert "누수" in proc.stdout and "전산실 UPS 하단 누수" in proc.stdout
    alerts = (work / "alerts.log").read_text(encoding="utf-8").splitlines()
    assert any("누수" in line for line in alerts), alerts
    # the web acknowledgement was announced, naming the web user
    assert any("확인" in line and "demo" in line for line in alerts), alerts
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
