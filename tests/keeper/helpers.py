"""A keeper daemon on a temp dir: `sentinel keeper run` as a process, its landing areas,
snapshots and receipts, and a loopback json:// channel that receives its pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from backup.keeper_record import HEARTBEAT_FILE, AlarmNote, Heartbeat, write_atomic
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until_sync

PYTHON = sys.executable


class Keeper:
    def __init__(
        self,
        tmp: Path,
        sink: HttpSink,
        *,
        rooms: tuple[str, ...] = ("main",),
        silent_after: str = "5s",
        extra: str = "",
        language: str = "en",
        settle: str = "0.5s",
        snapshot_within: str = "3s",
    ) -> None:
        self.tmp = tmp
        self.sink = sink
        self.landing = {r: tmp / "landing" / r for r in rooms}
        for path in self.landing.values():
            path.mkdir(parents=True)
        self.snapshots = tmp / "snapshots"
        self.receipts = tmp / "receipts"
        self.log_path = tmp / "keeper.log"
        self.proc: subprocess.Popen[bytes] | None = None
        url = sink.json_url("/page", query="cto=1&rto=1")
        apprise = tmp / "apprise.yml"
        apprise.write_text(f'urls:\n  - "{url}":\n      tag: critical, warning, info\n')
        apprise.chmod(0o600)
        room_tables = "".join(
            f'\n[[keeper.rooms]]\nname = "{r}"\nlabel = "{r} server room"\n'
            f'landing = "{self.landing[r]}"\nsilent_after = "{silent_after}"\n'
            for r in rooms
        )
        self.config = tmp / "keeper.toml"
        self.config.write_text(f"""
[site]
name = "health center"

[daemon]
state_dir = "{tmp / "state"}"
heartbeat = "0.5s"

[alerts]
apprise_config = "apprise.yml"
language = "{language}"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"

[keeper]
snapshot_dir = "{self.snapshots}"
receipt_dir = "{self.receipts}"
poll = "0.2s"
settle = "{settle}"
snapshot_within = "{snapshot_within}"
{extra}
{room_tables}
""")
        self.config.chmod(0o600)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), "keeper", "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        until_sync(
            lambda: self.status().get("daemon", {}).get("state") == "up", 20, "the keeper to be up"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},  # the status table unwrapped
        )

    def status(self) -> dict[str, Any]:
        proc = self.cli("keeper", "status", "--json")
        return json.loads(proc.stdout) if proc.stdout else {}

    def room(self, name: str = "main") -> dict[str, Any]:
        rooms = self.status().get("rooms") or []
        return next((r for r in rooms if r["room"] == name), {})

    def receipt(self, name: str = "main") -> dict[str, Any] | None:
        path = self.receipts / name / "receipt.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def beat(
        self,
        name: str = "main",
        *,
        seq: int = 1,
        synced_through: float | None = None,
        alarms: tuple[AlarmNote, ...] = (),
        urgent: float | None = None,
    ) -> Heartbeat:
        """What the room daemon ships: written the way rsync lands it (temp file, rename)."""
        now = time.time()
        beat = Heartbeat(
            room=name,
            replication="docs",
            ts=now,
            seq=seq,
            pending=0,
            rpo=0.0,
            synced_through=now if synced_through is None else synced_through,
            alarms=alarms,
            urgent=urgent,
            site="county",
        )
        write_atomic(self.landing[name] / HEARTBEAT_FILE, beat.to_json())
        return beat

    def pages(self) -> list[str]:
        return [r.message for r in self.sink.delivered("/page")]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def snapshot_names(k: Keeper, room: str = "main") -> list[str]:
    root = k.snapshots / room
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
