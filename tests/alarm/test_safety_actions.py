"""Safety actions (ack, silence, unsilence) have limits and leave a trail people see.

The real `sentinel` command in a subprocess against a real state database: a silence longer
than its limit is refused, every action is announced on the info route (through the daemon,
the outbox and Apprise to a loopback json:// sink) naming who (declared and real uid, sudo),
what, until when and why, `alarms --history` shows the same, and a user who may not write
the database is told so in one line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.store import Store
from tests.alarm.helpers import MakeEngine, config, events, silence
from tests.fixtures.core import FakeClock
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.mosquitto import Mosquitto
from tests.integration.test_page_survives_crash import wait_for

PYTHON = sys.executable
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}

TOML = """
[daemon]
state_dir = "{state}"

[mqtt]
host = "127.0.0.1"

[[sensors]]
id = "leak-1"
kind = "water_leak"
location = "under rack A"
topic = "zigbee2mqtt/leak-1"
max_age = "1d"
{extra}
"""


def sentinel(
    cfg: Path, *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, PYTHON, "-m", "sentinel", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or CLEAN_ENV,
    )


def write_config(path: Path, state: Path, extra: str = "") -> Path:
    path.write_text(TOML.format(state=state, extra=extra), encoding="utf-8")
    return path


def commands(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return [(r[0], r[1]) for r in conn.execute("SELECT command, args FROM alarm_commands")]
    finally:
        conn.close()


# -- limits -------------------------------------------------------------------------------


async def test_a_silence_longer_than_its_limit_is_refused(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    await make_engine(config([{"id": "leak-1", "kind": "water_leak", "max_age": "1d"}]))
    cfg = write_config(tmp_path / "sentinel.toml", store.path.parent)

    everything = sentinel(cfg, "silence", "--all", "--for", "3650d", "--reason", "quiet")
    assert everything.returncode == 2, everything
    assert "at most 4h" in everything.stderr and "max_silence_all" in everything.stderr
    assert "Traceback" not in everything.stderr

    one = sentinel(cfg, "silence", "leak-1", "--for", "2d", "--reason", "plumber")
    assert one.returncode == 2, one
    assert "at most 1d" in one.stderr and "[alarms] max_silence " in one.stderr
    assert commands(store.path) == []  # nothing was recorded

    # the limits come from [alarms]; within them a silence is recorded
    cfg = write_config(
        tmp_path / "short.toml",
        store.path.parent,
        '[alarms]\nmax_silence = "2h"\nmax_silence_all = "30m"\n',
    )
    refused = sentinel(cfg, "silence", "--all", "--for", "31m", "--reason", "x")
    assert refused.returncode == 2 and "at most 30m" in refused.stderr
    ok = sentinel(cfg, "silence", "leak-1", "--for", "2h", "--reason", "plumber")
    assert ok.returncode == 0, ok
    assert [c for c, _ in commands(store.path)] == ["silence"]


async def test_the_engine_applies_the_same_limit_to_a_row_from_elsewhere(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    engine = await make_engine(config([{"id": "leak-1", "kind": "water_leak", "max_age": "1d"}]))
    result = await silence(engine, store, clock, None, 10 * 86400, "forever", "mallory")
    assert result.startswith("rejected") and "max_silence_all" in result
    assert engine.health()["silences"] == 0 and await events(store) == []


async def test_a_silence_from_before_the_limit_ends_within_it(
    make_engine: MakeEngine, store: Store, clock: FakeClock
) -> None:
    cfg = config([{"id": "leak-1", "kind": "water_leak", "max_age": "1d"}])
    await make_engine(cfg)
    async with store.write() as db:  # `silence --all --for 3650d` as an older release took it
        await db.execute(
            "INSERT INTO alarm_silences(sensor_id, reason, created_by, created, "
            "until) VALUES (NULL, 'quiet', 'mallory', ?, ?)",
            (clock(), clock() + 3650 * 86400),
        )
    engine = await make_engine(cfg)  # the upgraded daemon starts
    assert engine.health()["silences"] == 1
    clock.advance(4 * 3600 + 1)
    await engine.tick()
    assert engine.health()["silences"] == 0


def test_max_silence_all_cannot_exceed_max_silence(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "sentinel.toml",
        tmp_path / "state",
        '[alarms]\nmax_silence = "1h"\nmax_silence_all = "2h"\n',
    )
    proc = sentinel(cfg, "check-config")
    assert proc.returncode == 2, proc
    assert "max_silence_all (silence --all) must not be longer than max_silence" in proc.stderr


# -- announcements and the trail, through the running daemon -------------------------------


class Daemon:
    """`sentinel run` on a temp dir with a leak sensor on mosquitto and two Apprise channels
    on one loopback sink: /page (critical, warning) and /info (info)."""

    def __init__(self, tmp: Path, broker: Mosquitto, sink: HttpSink) -> None:
        self.broker = broker
        self.sink = sink
        self.state = tmp / "state"
        self.log_path = tmp / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        apprise = tmp / "apprise.yml"
        apprise.write_text(
            "urls:\n"
            f'  - "{sink.json_url("/page", "cto=1&rto=1")}":\n      tag: critical, warning\n'
            # the info route is a messenger or mail in practice: the long form
            f'  - "{sink.json_url("/info", "cto=1&rto=1")}":\n      tag: info, lms\n',
            encoding="utf-8",
        )
        apprise.chmod(0o600)
        self.config = tmp / "sentinel.toml"
        self.config.write_text(
            f"""
[daemon]
state_dir = "{self.state}"
heartbeat = "0.5s"

[mqtt]
host = "{broker.host}"
port = {broker.port}

[[sensors]]
id = "leak-1"
kind = "water_leak"
location = "under rack A"
topic = "zigbee2mqtt/leak-1"

[alerts]
apprise_config = "apprise.yml"
language = "en"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"
""",
            encoding="utf-8",
        )
        self.config.chmod(0o600)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "sentinel", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=CLEAN_ENV,
            )
        wait_for(self.connected, what="the daemon connected to the broker")

    def connected(self) -> bool:
        # the heartbeat row `sentinel status` reads (cheaper to poll than a process each time)
        try:
            [[components]] = self.query("SELECT components FROM heartbeat WHERE id = 1")
        except (sqlite3.Error, ValueError):
            return False
        mqtt = json.loads(str(components)).get("source:mqtt", {})
        return bool(mqtt.get("state") == "connected")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def publish(self, leak: bool) -> None:
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                self.broker.host,
                "-p",
                str(self.broker.port),
                "-t",
                "zigbee2mqtt/leak-1",
                "-m",
                json.dumps({"water_leak": leak}),
            ],
            check=True,
            timeout=10,
        )

    def messages(self, path: str) -> list[str]:
        """Each message as a person reads it: its title, then its body."""
        return [f"{r.title}\n{r.message}" for r in self.sink.delivered(path)]

    def query(self, sql: str) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(f"file:{self.state / 'sentinel.db'}?mode=ro", uri=True)
        try:
            return [tuple(r) for r in conn.execute(sql)]
        finally:
            conn.close()


@pytest.fixture
def daemon(tmp_path: Path, mosquitto: Mosquitto, http_sink: HttpSink) -> Iterator[Daemon]:
    d = Daemon(tmp_path, mosquitto, http_sink)
    try:
        yield d
    finally:
        d.stop()


def as_sudo(name: str, uid: int) -> dict[str, str]:
    """The environment sudo gives a command (the test runs as root, as `sudo sentinel` does)."""
    return {**CLEAN_ENV, "SUDO_USER": name, "SUDO_UID": str(uid), "SUDO_GID": str(uid)}


def local(ts: float) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(ts))


def test_every_action_is_announced_on_the_info_route_with_the_real_identity(
    daemon: Daemon,
) -> None:
    d = daemon
    d.start()
    me = f"uid {os.getuid()} root"
    sudo = as_sudo("alice", 1000)

    # a silence: who (declared and real), what, until when, why
    proc = sentinel(
        d.config,
        "silence",
        "leak-1",
        "--for",
        "2h",
        "--reason",
        "plumber fixing the pipe",
        "--by",
        "mallory",
        env=sudo,
    )
    assert proc.returncode == 0, proc
    wait_for(lambda: d.messages("/info"), what="the silence announcement")
    [until] = d.query("SELECT until FROM alarm_silences")[0]
    [silenced] = d.messages("/info")
    for fact in (
        "alarms silenced",
        "under rack A",
        "leak-1",
        "mallory",
        me,
        "sudo from uid 1000 alice",
        "plumber fixing the pipe",
        local(float(until)),
        "sentinel unsilence S1",
    ):
        assert fact in silenced, (fact, silenced)

    # the leak while silenced pages nobody; ending the silence is announced, then it pages
    d.publish(leak=True)
    wait_for(lambda: d.query("SELECT id FROM alarm_alarms"), what="the leak alarm")
    proc = sentinel(d.config, "unsilence", "S1", "--reason", "pipe fixed", env=sudo)
    assert proc.returncode == 0, proc
    wait_for(lambda: len(d.messages("/info")) == 2, what="the unsilence announcement")
    unsilenced = d.messages("/info")[1]
    for fact in (
        "silence ended",
        "under rack A",
        "alice",
        me,
        "sudo from uid 1000 alice",
        "pipe fixed",
    ):
        assert fact in unsilenced, (fact, unsilenced)
    wait_for(lambda: d.messages("/page"), what="the page once the silence ended")
    [[alarm]] = d.query("SELECT id FROM alarm_alarms")
    assert alarm in d.messages("/page")[0]

    # an ack reaches those who were paged and the info route, naming who
    proc = sentinel(
        d.config, "ack", str(alarm), "--by", "kim", "--reason", "on my way", env=CLEAN_ENV
    )
    assert proc.returncode == 0, proc
    wait_for(lambda: len(d.messages("/info")) == 3, what="the ack announcement")
    acked = d.messages("/info")[2]
    for fact in ("acknowledged", str(alarm), "kim", me, "on my way"):
        assert fact in acked, (fact, acked)
    wait_for(lambda: len(d.messages("/page")) == 2, what="the ack on the paging route")
    assert "kim(root)" in d.messages("/page")[1]  # the SMS form: declared name and real user

    # a silence of everything names it so
    proc = sentinel(d.config, "silence", "--all", "--for", "1h", "--reason", "move racks", env=sudo)
    assert proc.returncode == 0, proc
    wait_for(lambda: len(d.messages("/info")) == 4, what="the --all announcement")
    assert "all alarms" in d.messages("/info")[3] and "move racks" in d.messages("/info")[3]

    # the trail: the database keeps the real identity beside the declared name ...
    rows = d.query(
        "SELECT command, declared_by, uid, user, sudo_uid, sudo_user FROM alarm_actions ORDER BY id"
    )
    assert rows == [
        ("silence", "mallory", os.getuid(), "root", 1000, "alice"),
        ("unsilence", "alice", os.getuid(), "root", 1000, "alice"),
        ("ack", "kim", os.getuid(), "root", None, None),
        ("silence", "alice", os.getuid(), "root", 1000, "alice"),
    ]
    # ... and `alarms --history` shows it
    history = sentinel(d.config, "alarms", "--history")
    assert history.returncode == 0, history
    lines = history.stdout.splitlines()
    [silence_line] = [line for line in lines if "silence leak-1" in line]
    assert "by mallory (" in silence_line and me in silence_line
    assert "sudo from uid 1000 alice" in silence_line and "plumber fixing the pipe" in silence_line
    assert any(f"ack {alarm}" in line and "kim (" in line for line in lines), lines
    assert any("unsilence 1" in line and "pipe fixed" in line for line in lines), lines
    trail = json.loads(sentinel(d.config, "alarms", "--history", "--json").stdout)
    assert {"silence", "unsilence", "ack"} <= {r.get("command") for r in trail}


# -- a user who may not write the database -----------------------------------------------


UNPRIVILEGED = (
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    # read (and reach) everything like a member of group sentinel would, but write nothing
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root to become an unprivileged user",
)
async def test_a_user_who_may_not_write_the_database_is_told_so(
    make_engine: MakeEngine, store: Store, tmp_path: Path
) -> None:
    await make_engine(config([{"id": "leak-1", "kind": "water_leak", "max_age": "1d"}]))
    cfg = write_config(tmp_path / "sentinel.toml", store.path.parent)
    cfg.chmod(0o644)
    for args in (
        ("silence", "--all", "--for", "1h", "--reason", "x"),
        ("unsilence", "--all"),
        ("ack", "A7F3"),
    ):
        proc = sentinel(cfg, *args, prefix=UNPRIVILEGED)
        assert proc.returncode == 2, proc
        assert proc.stderr.strip() == (
            f"sentinel: cannot write the state database {store.path}: permission denied; "
            "run the command with sudo (members of group sentinel may read status but not "
            "change alarms)"
        ), proc.stderr
    assert commands(store.path) == []


@pytest.fixture
def read_only_state(store: Store, tmp_path: Path) -> Iterator[Path]:
    """The state directory again, bind-mounted read-only (root cannot write it either)."""
    mount = tmp_path / "ro-state"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(store.path.parent), str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


async def test_a_read_only_state_directory_is_named_as_such(
    make_engine: MakeEngine, store: Store, tmp_path: Path, read_only_state: Path
) -> None:
    await make_engine(config([{"id": "leak-1", "kind": "water_leak", "max_age": "1d"}]))
    cfg = write_config(tmp_path / "sentinel.toml", read_only_state)
    proc = sentinel(cfg, "silence", "leak-1", "--for", "1h", "--reason", "x")
    assert proc.returncode == 2, proc
    assert "cannot write the state database" in proc.stderr
    assert "read-only file system" in proc.stderr and "Traceback" not in proc.stderr
    assert commands(store.path) == []


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root to become an unprivileged user",
)
def test_sudo_identity_is_believed_only_from_root() -> None:
    """sudo sets SUDO_USER/SUDO_UID in the root process it starts; any other user can set
    them too, so the SMS would name whoever they chose."""
    script = (
        "from sentinel.alarm.actor import Actor; a = Actor.current(None); "
        "print(a.sudo_user, a.sudo_uid, a.short())"
    )
    env = {**CLEAN_ENV, "SUDO_USER": "alice", "SUDO_UID": "1000"}
    fake = subprocess.run(
        [*UNPRIVILEGED, sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parents[2],
    )
    assert fake.returncode == 0, fake.stderr
    assert fake.stdout.split()[:2] == ["None", "None"]
    assert "alice" not in fake.stdout
    real = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parents[2],
    )
    assert real.stdout.split()[:2] == ["alice", "1000"]
