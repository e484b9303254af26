"""Unreadable documents in bulk (issue 12, item 2): a folder of private files (mode 0600,
another account's) copied into the store with `cp -a`, the real daemon running as nobody
(like the unit's User=sentinel) with real rsync into a local replica.

    .venv/bin/python bench/unreadable_burst.py [--files 3000]      (as root: needs setfacl)

Times, from the start of the `cp`: the `replication_unreadable` warning naming one of the
files (in `sentinel status --json`), and the replica caught up with everything readable
(pending 0, the readable file of the folder shipped, every private file set aside). Then,
from the start of `setfacl -R -m u:nobody:rX` on the folder (what `grant-read` does): all of
them shipped and the warning cleared. Status is polled every ~0.2 s, so each figure is late
by up to one poll plus one `sentinel status` run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.backup.unreadable_room import NOBODY, Room  # noqa: E402
from tests.fixtures.http_sink import HttpSink  # noqa: E402
from tests.fixtures.poll import until_sync  # noqa: E402

LIMIT = 300.0


def until(what: str, check: Callable[[], bool]) -> None:
    # each check runs `sentinel status`, hence the slow poll; see the module docstring
    until_sync(check, LIMIT, what, interval=0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3000)
    n = parser.parse_args().files
    base = Path(tempfile.mkdtemp(prefix="sntburst"))
    base.chmod(0o755)
    sink = HttpSink()
    room = Room(base, sink)
    try:
        room.start()
        until("the first sync", lambda: (room.replica / "minutes.txt").exists())
        stage = base / "stage" / "big"
        stage.mkdir(parents=True)
        for i in range(1, n + 1):
            fd = os.open(stage / f"f{i:05d}.hwp", os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"citizen record\n")
            os.close(fd)
        (stage / "open.txt").write_text("open\n")

        began = time.monotonic()
        subprocess.run(["cp", "-a", str(stage), str(room.source / "big")], check=True)
        copied = time.monotonic() - began

        def named() -> bool:
            alarm = room.alarm()
            return bool(alarm and "/big/f" in alarm.get("reason", ""))

        def caught_up() -> bool:
            rep = room.replication()
            return (
                rep.get("pending") == 0
                and (room.replica / "big" / "open.txt").exists()
                and (rep.get("quarantine") or {}).get("unreadable") == n
            )

        until("the warning naming a file", named)
        alarm_at = time.monotonic() - began
        until("the replica caught up", caught_up)
        ok_at = time.monotonic() - began
        failures = room.replication().get("consecutive_failures")
        others = [
            a["kind"]
            for a in room.status().get("alarms", [])
            if a["kind"] != "replication_unreadable"
        ]

        granted = time.monotonic()
        subprocess.run(
            ["setfacl", "-R", "-m", f"u:{NOBODY}:rX", str(room.source / "big")], check=True
        )
        until(
            "all shipped and the warning cleared",
            lambda: room.alarm() is None and len(list((room.replica / "big").glob("f*.hwp"))) == n,
        )
        cleared = time.monotonic() - granted
        print(f"{n} private files, cp -a {copied:.2f} s")
        print(f"warning naming a file: {alarm_at:.1f} s after the cp began")
        print(
            f"replica caught up (pending 0, {n} set aside, failures {failures}, "
            f"other alarms {others or 'none'}): {ok_at:.1f} s after the cp began"
        )
        print(f"setfacl -R, then all {n} shipped and the warning cleared: {cleared:.1f} s")
        return 0
    finally:
        room.stop()
        shutil.rmtree(base, ignore_errors=True)
        sink.close()


if __name__ == "__main__":
    sys.exit(main())
