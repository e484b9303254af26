"""The state database in trouble, with the real daemon, a real SQLite file, a small tmpfs and a
loopback json:// sink: a corrupt file, a full disk, a read-only state directory and a file
deleted under the daemon each page someone, and alarms keep paging through all of them.

A read-only *remount* of a filesystem that the daemon holds open for writing is refused by
the kernel ("busy"), so "cannot write while running" is a full tmpfs; read-only is tested at
start, where it happens in practice (a filesystem remounted ro after errors, then a restart).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.http_sink import HttpSink
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until_sync
from tests.fixtures.tmpfs import fill, mounted_tmpfs
from tests.integration.test_page_survives_crash import PYTHON, Deployment

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (needs root)")


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """systemd's RuntimeDirectory (a tmpfs of its own in production); the daemon and the
    status command both see it, as they do under the unit."""
    path = tmp_path / "run"
    path.mkdir()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(path))
    return path


@pytest.fixture
def state_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """`<tmp>/state` is a 1 MB tmpfs: small enough to fill in a test."""
    with mounted_tmpfs(tmp_path / "state") as path:
        yield path


def pages_with(d: Deployment, text: str) -> list[str]:
    return [m for m in d.pages() if text in m]


def leak_pages(d: Deployment) -> list[str]:
    return [m for m in d.pages() if "leak-ups" in m or "UPS floor" in m]


def report(d: Deployment) -> tuple[int, dict]:
    proc = d.cli("status", "--json")
    return proc.returncode, json.loads(proc.stdout)


def alarm_in_file(state: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{state / 'sentinel.db'}?mode=ro", uri=True)
    try:
        return [
            r[0] for r in conn.execute("SELECT sensor_id FROM alarm_alarms WHERE closed IS NULL")
        ]
    finally:
        conn.close()


def assert_no_traceback(d: Deployment) -> None:
    assert "Traceback" not in d.logs(), d.logs()[-4000:]


def test_corrupt_database_is_set_aside_started_fresh_and_pages(deployment: Deployment) -> None:
    d = deployment
    d.start()
    d.terminate()
    db = d.tmp / "state" / "sentinel.db"
    os.truncate(db, 100)  # truncate -s 100 sentinel.db

    d.start()
    until_sync(lambda: pages_with(d, "상태 DB 손상"), 30, "the corrupt page")
    [page] = pages_with(d, "상태 DB 손상")
    assert "새 DB로 시작" in page
    aside = sorted(db.parent.glob("sentinel.db.corrupt-*"))
    assert aside and aside[0].stat().st_size == 100  # the damaged file is kept, not deleted
    code, status = report(d)
    assert status["daemon"]["state"] == "up"
    assert code == 1 and any("corrupt" in r for r in status["overall"]["reasons"])
    # and the fresh database pages as before
    d.publish(leak=True)
    until_sync(lambda: leak_pages(d), 30, "the leak page")
    assert_no_traceback(d)
    assert "state database" in d.logs() and "was corrupt" in d.logs()


def test_full_disk_pages_from_memory_then_returns_to_durable(
    deployment: Deployment, state_tmpfs: Path, runtime_dir: Path
) -> None:
    d = deployment
    d.start()
    filler = fill(state_tmpfs)
    until_sync(lambda: pages_with(d, "상태 DB 기록 불가"), 30, "the disk-full page")
    [page] = pages_with(d, "상태 DB 기록 불가")
    assert "디스크 공간 없음" in page

    d.publish(leak=True)
    until_sync(lambda: leak_pages(d), 30, "the leak page while the disk is full")
    code, status = report(d)
    assert status["daemon"]["state"] == "up", status["daemon"]
    assert code == 2
    reasons = "; ".join(status["overall"]["reasons"])
    assert "state database not writable" in reasons and "NOT durable" in reasons
    assert [a["sensor"] for a in status["alarms"]] == ["leak-ups"]
    human = d.cli("status").stdout
    assert "NOT DURABLE" in human and "leak" in human.lower()

    filler.unlink()
    until_sync(
        lambda: pages_with(d, "[해제] sentinel 상태 DB"), 30, "the all-clear for the database"
    )
    # back on the file: what happened meanwhile is in it now, and status reads it from there
    until_sync(lambda: alarm_in_file(state_tmpfs) == ["leak-ups"], 30, "the alarm in the file")
    code, status = report(d)
    assert status["components"]["state-db"]["durable"] is True
    assert code == 2 and [a["sensor"] for a in status["alarms"]] == ["leak-ups"]
    time.sleep(1.5)  # a wrong second page for the same leak would come now
    assert len(leak_pages(d)) == 1, d.pages()
    assert_no_traceback(d)
    d.terminate()


def test_read_only_state_dir_at_start_runs_from_memory_and_pages(
    deployment: Deployment, state_tmpfs: Path, runtime_dir: Path
) -> None:
    d = deployment
    d.start()
    d.terminate()
    subprocess.run(["mount", "-o", "remount,ro", str(state_tmpfs)], check=True)

    d.start()  # waits for status to show the daemon up and connected
    until_sync(lambda: pages_with(d, "상태 DB 기록 불가"), 30, "the read-only page")
    d.publish(leak=True)
    until_sync(lambda: leak_pages(d), 30, "the leak page with a read-only state dir")
    code, status = report(d)
    assert code == 2 and status["daemon"]["state"] == "up"
    assert any("state database not writable" in r for r in status["overall"]["reasons"])
    logs = d.logs()
    assert_no_traceback(d)
    assert len([line for line in logs.splitlines() if "not writable" in line]) == 1, logs

    subprocess.run(["mount", "-o", "remount,rw", str(state_tmpfs)], check=True)
    until_sync(
        lambda: pages_with(d, "[해제] sentinel 상태 DB"), 30, "the database is writable again"
    )
    until_sync(lambda: alarm_in_file(state_tmpfs) == ["leak-ups"], 30, "the alarm in the file")
    d.terminate()


def test_database_deleted_while_running_pages_and_is_restored(
    deployment: Deployment,
) -> None:
    d = deployment
    d.start()
    d.publish(leak=True)
    until_sync(lambda: leak_pages(d), 30, "the leak page")
    state = d.tmp / "state"
    (state / "sentinel.db").unlink()  # its -wal/-shm stay behind, as after a careless rm

    until_sync(lambda: pages_with(d, "상태 DB 기록 불가"), 30, "the deleted page")
    assert "삭제됨" in pages_with(d, "상태 DB 기록 불가")[0]
    until_sync(lambda: pages_with(d, "[해제] sentinel 상태 DB"), 30, "the file restored")
    # the restored file holds what the deleted one held
    assert alarm_in_file(state) == ["leak-ups"]
    code, status = report(d)
    assert code == 2 and [a["sensor"] for a in status["alarms"]] == ["leak-ups"]
    assert_no_traceback(d)
    d.terminate()


def test_broken_config_on_disk_still_shows_the_active_alarm(
    deployment: Deployment, runtime_dir: Path
) -> None:
    d = deployment
    d.start()
    d.publish(leak=True)
    until_sync(lambda: report(d)[1]["alarms"], 30, "the leak alarm")
    good = d.config.read_text(encoding="utf-8")
    d.config.write_text(good + "\n[daemon\nbroken = \n", encoding="utf-8")  # not even TOML

    nagios = d.cli("status", "--nagios")
    assert nagios.returncode == 2, nagios.stdout
    assert nagios.stdout.startswith("SENTINEL CRITICAL - ")
    assert "UPS floor" in nagios.stdout and "cannot be read" in nagios.stdout
    code, status = report(d)
    assert code == 2 and status["daemon"]["state"] == "up"
    assert [a["sensor"] for a in status["alarms"]] == ["leak-ups"]

    # the daemon stopped too: the state dir comes from --state-dir
    d.terminate()
    proc = d.cli("status", "--nagios", "--state-dir", str(d.tmp / "state"))
    assert proc.returncode == 2 and "UPS floor" in proc.stdout, proc.stdout
    assert "cannot be read" in proc.stdout
    # valid TOML that fails validation: the state dir it names is still used
    d.config.write_text(good.replace('heartbeat = "0.5s"', 'heartbeat = "soon"'), encoding="utf-8")
    proc = d.cli("status", "--nagios")
    assert proc.returncode == 2 and "UPS floor" in proc.stdout, proc.stdout
    assert "daemon stopped" in proc.stdout and "heartbeat" in proc.stdout


def test_without_a_runtime_dir_status_says_alive_but_not_writing(
    deployment: Deployment, state_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No $RUNTIME_DIRECTORY (not under systemd): the live status file is in the per-user
    runtime directory, not on the full disk, so status still sees the daemon up and paging
    from memory (it said "stale" and no alarms before the file moved there)."""
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    d = deployment
    d.start()
    fill(state_tmpfs)
    until_sync(lambda: pages_with(d, "상태 DB 기록 불가"), 30, "the disk-full page")
    d.publish(leak=True)
    until_sync(lambda: leak_pages(d), 30, "the leak page from memory")
    until_sync(lambda: report(d)[1]["alarms"], 30, "the leak in status")
    code, status = report(d)
    assert code == 2 and status["daemon"]["state"] == "up", status["daemon"]
    assert any("NOT durable" in r for r in status["overall"]["reasons"])
    assert [a["sensor"] for a in status["alarms"]] == ["leak-ups"]
    assert_no_traceback(d)
    d.terminate()


def test_a_second_daemon_on_the_same_state_dir_refuses_to_start(deployment: Deployment) -> None:
    d = deployment
    d.start()
    assert d.proc is not None
    second = subprocess.run(
        [PYTHON, "-m", "sentinel", "--config", str(d.config), "run"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 2, second.stderr
    refusals = [line for line in second.stderr.splitlines() if "refusing to start" in line]
    assert len(refusals) == 1, second.stderr
    assert f"pid {d.proc.pid}" in refusals[0] and "in use by another sentinel daemon" in refusals[0]
    assert "Traceback" not in second.stderr
    # the first one is undisturbed: still connected, and a leak pages once
    assert d.mqtt_connected()
    d.publish(leak=True)
    until_sync(lambda: leak_pages(d), 30, "the leak page")
    time.sleep(1.5)  # a second daemon's page or a flapping session would show now
    assert len(leak_pages(d)) == 1, d.pages()
    # the kernel frees the lock of a killed daemon: the next start is not refused
    d.kill9()
    d.start()
    d.terminate()


def test_kill_9_while_not_durable_pages_what_was_lost_at_the_next_start(
    deployment: Deployment, state_tmpfs: Path
) -> None:
    d = deployment
    d.start()
    filler = fill(state_tmpfs)
    until_sync(lambda: pages_with(d, "상태 DB 기록 불가"), 30, "the disk-full page")
    d.publish(leak=True)
    until_sync(lambda: leak_pages(d), 30, "the leak page from memory")
    until_sync(
        lambda: [a["sensor"] for a in report(d)[1]["alarms"]] == ["leak-ups"],
        30,
        "the leak in the live status",
    )
    d.kill9()  # the in-memory state, the leak alarm with it, is gone
    filler.unlink()

    d.start()
    lost = "sentinel restarted after running without a durable state database since"
    until_sync(lambda: pages_with(d, "비보존 실행"), 30, "the page about the lost state")
    [page] = pages_with(d, "비보존 실행")
    assert "UPS floor" in page, page
    [line] = [line for line in d.logs().splitlines() if lost in line]
    assert "alarms active then: critical UPS floor #" in line and "may not page again" in line
    # a clean restart after that says nothing more: the new run was durable
    d.terminate()
    d.start()
    time.sleep(1.5)
    assert len(pages_with(d, "비보존 실행")) == 1, d.pages()
    assert_no_traceback(d)
    d.terminate()


def test_without_a_runtime_dir_a_read_only_state_dir_shows_the_daemon_up_and_its_alarms(
    deployment: Deployment, state_tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain `sentinel run` (no $RUNTIME_DIRECTORY): the live status file goes to the private
    per-user runtime directory, not to the read-only state directory."""
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    d = deployment
    d.start()
    d.terminate()
    subprocess.run(["mount", "-o", "remount,ro", str(state_tmpfs)], check=True)

    d.start()
    d.publish(leak=True)
    until_sync(lambda: leak_pages(d), 30, "the leak page with a read-only state dir")
    code, status = report(d)
    assert code == 2 and status["daemon"]["state"] == "up", status["daemon"]
    assert [a["sensor"] for a in status["alarms"]] == ["leak-ups"]
    assert any("NOT durable" in r for r in status["overall"]["reasons"])
    # and with a config that is not even TOML, status still finds that daemon and its leak
    good = d.config.read_text(encoding="utf-8")
    d.config.write_text(good + "\n[daemon\nbroken = \n", encoding="utf-8")
    nagios = d.cli("status", "--nagios")
    assert nagios.returncode == 2 and "UPS floor" in nagios.stdout, nagios.stdout
    assert "never run" not in nagios.stdout and "stopped" not in nagios.stdout
    d.config.write_text(good, encoding="utf-8")
    assert "live status" not in d.logs()
    assert_no_traceback(d)
    d.terminate()


def test_an_unwritable_live_status_dir_is_logged_once(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mounted_tmpfs(tmp_path / "run") as run:
        subprocess.run(["mount", "-o", "remount,ro", str(run)], check=True)
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(run))
        d = deployment
        d.start()
        time.sleep(2.5)  # five heartbeats
        d.terminate()
    warnings = [
        line for line in d.logs().splitlines() if "cannot write the live status file" in line
    ]
    assert len(warnings) == 1, d.logs()
    assert "Read-only file system" in warnings[0]


DAEMON_UID = 4991  # the unit's User=sentinel / Group=sentinel
MEMBER_UID = 4992  # an admin in group sentinel


@pytest.fixture
def group_lab(mosquitto: Mosquitto, http_sink: HttpSink) -> Iterator[Deployment]:
    """The unit's layout with real permissions: the daemon runs as its own user with
    UMask=0027, the state and runtime directories are 0750 of that user, and status runs as
    another user who is only in the daemon's group. Not under pytest's 0700 temp dir, which
    that user could not enter."""
    lab = Path(tempfile.mkdtemp(prefix="sentinel-group-"))
    lab.chmod(0o755)
    d = Deployment(lab, mosquitto, http_sink)
    for name in ("state", "run"):
        (lab / name).mkdir(mode=0o750)
    for path in (lab / "state", lab / "run", d.config, lab / "apprise.yml"):
        os.chown(path, DAEMON_UID, DAEMON_UID)
    d.config.chmod(0o640)
    (lab / "apprise.yml").chmod(0o640)
    try:
        yield d
    finally:
        d.kill_leftover()
        shutil.rmtree(lab, ignore_errors=True)


def start_as_daemon_user(d: Deployment) -> None:
    log = d.log_path.open("ab")
    d.proc = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={DAEMON_UID}",
            f"--regid={DAEMON_UID}",
            "--clear-groups",
            PYTHON,
            "-m",
            "sentinel",
            "--config",
            str(d.config),
            "run",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        umask=0o027,
        env={**os.environ, "RUNTIME_DIRECTORY": str(d.tmp / "run")},
    )
    log.close()


def member_status(
    d: Deployment, *args: str, command: str = "status"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={MEMBER_UID}",
            f"--regid={MEMBER_UID}",
            f"--groups={DAEMON_UID}",
            PYTHON,
            "-m",
            "sentinel",
            "--config",
            str(d.config),
            command,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "RUNTIME_DIRECTORY": str(d.tmp / "run")},
    )


def member_sees(d: Deployment) -> dict:
    proc = member_status(d, "--json")
    return json.loads(proc.stdout) if proc.stdout else {}


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_a_member_of_group_sentinel_sees_the_true_status(group_lab: Deployment) -> None:
    d = group_lab
    start_as_daemon_user(d)
    until_sync(
        lambda: (
            member_sees(d).get("daemon", {}).get("state") == "up"
            and member_sees(d)["components"].get("source:mqtt", {}).get("state") == "connected"
        ),
        30,
        "the member to see the daemon up",
    )
    d.publish(leak=True)
    until_sync(lambda: leak_pages(d), 30, "the leak page")
    until_sync(lambda: member_sees(d).get("alarms"), 30, "the member to see the leak")

    # stopped cleanly (SQLite removed -wal/-shm): not "never run", and the leak is shown
    d.terminate()
    proc = member_status(d, "--nagios")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "daemon stopped" in proc.stdout and "UPS floor" in proc.stdout, proc.stdout
    proc = member_status(d, command="alarms")
    assert proc.returncode == 0 and "leak-ups" in proc.stdout, proc.stdout + proc.stderr

    # not durable (the daemon may no longer write its state directory): the member reads the
    # live status file in the runtime directory, as root does
    (d.tmp / "state").chmod(0o550)
    start_as_daemon_user(d)
    # (the SMS shortens the location to "state … not writable")
    until_sync(lambda: pages_with(d, "상태 DB 기록 불가"), 30, "the not-writable page")
    until_sync(
        lambda: member_sees(d).get("daemon", {}).get("state") == "up",
        30,
        "the member to see the daemon up while not durable",
    )
    proc = member_status(d, "--nagios")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "NOT durable" in proc.stdout and "UPS floor" in proc.stdout, proc.stdout
    [live] = (d.tmp / "run").glob("status-*.json")
    assert live.stat().st_mode & 0o777 == 0o640
    d.terminate()
    assert_no_traceback(d)
