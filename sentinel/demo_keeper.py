"""The demo's health center: a real `sentinel keeper run` process beside the demo's room.

Run as root, the keeper gets an account of its own (`sentinel-keeper`, created when missing,
as `scripts/install.sh --keeper` does) and only the capability the real unit grants it
(CAP_DAC_READ_SEARCH: read whatever the room's writer left in the landing area). Run as
anyone else, it runs as that user and the banner says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KEEPER_ACCOUNT = "sentinel-keeper"
ROOM = "main"
SILENT_AFTER = 10.0

KEEPER_CONFIG = """\
# Written by `sentinel demo`: the keeper on the health-center host (docs/keeper.md).
[site]
name = "데모 보건소 백업 서버"

[daemon]
state_dir = "{hc}/state"
heartbeat = "1s"

[alerts]
apprise_config = "apprise.yml"
language = "ko"
group_window = "0s"

[keeper]
snapshot_dir = "{hc}/snapshots"
receipt_dir = "{hc}/receipts"
poll = "0.5s"
settle = "1s"
snapshot_within = "10s"

[[keeper.rooms]]
name = "{room}"
label = "데모 군청 전산실"
landing = "{hc}/landing/{room}"
silent_after = "{silent:g}s"
"""

KEEPER_APPRISE = """\
# The keeper's own channels: in a real county, SMS and KakaoTalk over the health center's line.
urls:
  - sentinelfile://{hc}/pages.log:
      tag: critical, warning, info
"""


@dataclass
class DemoKeeper:
    """The health center's directories, config and (once started) the keeper process."""

    root: Path
    account: str | None  # None: runs as the demo's own user
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.root / "keeper.toml"

    @property
    def landing(self) -> Path:
        return self.root / "landing" / ROOM

    @property
    def receipt(self) -> Path:
        return self.root / "receipts" / ROOM / "receipt.json"

    @property
    def pages(self) -> Path:
        return self.root / "pages.log"

    def describe(self) -> str:
        who = (
            f"account {self.account}, CAP_DAC_READ_SEARCH only"
            if self.account
            else "your own account (run the demo as root for a separate keeper account)"
        )
        return f"sentinel keeper on {self.root} ({who})"


def prepare_keeper(work: Path) -> DemoKeeper:
    root = work / "health-center"
    for sub in ("landing", "snapshots", "receipts", "state"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "landing" / ROOM).mkdir(exist_ok=True)
    account = _keeper_account()
    files = {
        root / "keeper.toml": KEEPER_CONFIG.format(hc=root, room=ROOM, silent=SILENT_AFTER),
        root / "apprise.yml": KEEPER_APPRISE.format(hc=root),
    }
    for path, text in files.items():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    if account is not None:
        # the keeper owns its history, receipts and state; the landing area stays the
        # writer's (here the demo's root-run room daemon)
        entry = pwd.getpwnam(account)
        for path in (root / "snapshots", root / "receipts", root / "state", *files):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chown(root, 0, entry.pw_gid)
        root.chmod(0o770)
    return DemoKeeper(root, account)


def _keeper_account() -> str | None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return None
    try:
        pwd.getpwnam(KEEPER_ACCOUNT)
    except KeyError:
        made = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                KEEPER_ACCOUNT,
            ],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            return None
    return KEEPER_ACCOUNT


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM when the demo process dies (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def start_keeper(keeper: DemoKeeper) -> None:
    command = [sys.executable, "-m", "sentinel", "--config", str(keeper.config), "keeper", "run"]
    if keeper.account is not None:
        command = [
            "setpriv",
            f"--reuid={keeper.account}",
            f"--regid={keeper.account}",
            "--init-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            # set after the uid change, which would clear it
            "--pdeathsig=TERM",
            *command,
        ]
    log = (keeper.root / "keeper.log").open("ab")
    # the keeper ends with the demo, however the demo ends (kill -9 included): a demo must
    # not leave a keeper paging about a room nobody runs any more
    keeper.proc = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=keeper.root,
        preexec_fn=_end_with_parent if keeper.account is None else None,
    )
    log.close()


def page_lines(keeper: DemoKeeper) -> list[str]:
    try:
        return keeper.pages.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def wait_for_silence_page(keeper: DemoKeeper, *, timeout: float) -> str | None:
    """The keeper's page about the room that went dark, once it arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in page_lines(keeper) if "무응답" in line or "재난" in line]
        if found:
            return found[-1]
        if keeper.proc is not None and keeper.proc.poll() is not None:
            return None
        time.sleep(0.2)
    return None


def stop_keeper(keeper: DemoKeeper) -> None:
    proc = keeper.proc
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
