"""The room of the unreadable-document tests: a config, a source, a local replica and the
real daemon running as nobody (like the unit's User=sentinel), and the replicator probe
(tests/backup/unreadable_probe.py) run the same way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fixtures.http_sink import HttpSink

PYTHON = sys.executable
NOBODY = 65534

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("setpriv", "setfacl")),
    reason="needs root, setpriv and setfacl (Debian package acl)",
)


class Room:
    """A config, a source, a local replica and the daemon running as nobody."""

    def __init__(self, base: Path, sink: HttpSink) -> None:
        self.base = base
        self.sink = sink
        self.source = base / "docs"
        self.replica = base / "replica"
        for d in (self.source, self.replica, base / "state", base / "run"):
            d.mkdir()
            os.chown(d, NOBODY, NOBODY)
        (self.source / "minutes.txt").write_text("council minutes\n")
        os.chown(self.source / "minutes.txt", NOBODY, NOBODY)
        long = sink.json_url("/long", query="cto=1&rto=1")
        self._owned(
            base / "apprise.yml", f'urls:\n  - "{long}":\n      tag: critical, warning, lms\n'
        )
        self.config = self._owned(
            base / "sentinel.toml",
            f"""
[site]
name = "test county"

[daemon]
state_dir = "{base / "state"}"
heartbeat = "0.5s"

[alerts]
apprise_config = "{base / "apprise.yml"}"
language = "en"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"

[[replication]]
name = "docs"
source = "{self.source}"
target = "{self.replica}"
""",
        )
        self.log = base / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _owned(path: Path, text: str) -> Path:
        path.write_text(text)
        path.chmod(0o600)
        os.chown(path, NOBODY, NOBODY)
        return path

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "setpriv",
                    f"--reuid={NOBODY}",
                    f"--regid={NOBODY}",
                    "--clear-groups",
                    PYTHON,
                    "-m",
                    "sentinel",
                    "--config",
                    str(self.config),
                    "run",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).parents[2],
                env={**os.environ, "RUNTIME_DIRECTORY": str(self.base / "run")},
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def status(self) -> dict:
        proc = subprocess.run(
            [PYTHON, "-m", "sentinel", "--config", str(self.config), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "RUNTIME_DIRECTORY": str(self.base / "run")},
        )
        return json.loads(proc.stdout) if proc.stdout else {}

    def alarm(self) -> dict | None:
        found = [
            a for a in self.status().get("alarms", []) if a.get("kind") == "replication_unreadable"
        ]
        return found[0] if found else None

    def replication(self) -> dict:
        rows = self.status().get("replication") or [{}]
        return rows[0]

    def root_file(self, rel: str, text: str) -> Path:
        """A document another account wrote with a private umask (0600 root)."""
        path = self.source / rel
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path


@contextmanager
def open_room(sink: HttpSink) -> Iterator[Room]:
    # not under pytest's tmp_path: root's 0700 directory, which nobody cannot enter
    base = Path(tempfile.mkdtemp(prefix="sntunr"))
    base.chmod(0o755)
    r = Room(base, sink)
    try:
        yield r
    finally:
        r.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def probe_dirs() -> Iterator[tuple[Path, Path, Path, Path]]:
    """source, replica, state and runtime directories owned by nobody, removed after."""
    base = Path(tempfile.mkdtemp(prefix="sntunr"))
    try:
        base.chmod(0o755)
        dirs = tuple(base / n for n in ("src", "replica", "state", "run"))
        for d in dirs:
            d.mkdir()
            os.chown(d, NOBODY, NOBODY)
        yield dirs  # type: ignore[misc]
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def probe(dirs: tuple[Path, Path, Path, Path], *args: str) -> Iterator[subprocess.Popen[str]]:
    """The replicator probe as nobody on `dirs`, with its ASIDE_REL SHIP_REL [full] [events];
    killed if still running after the block."""
    source, replica, state, runtime = dirs
    proc = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            PYTHON,
            "-m",
            "tests.backup.unreadable_probe",
            *map(str, (state, source, replica, runtime)),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
