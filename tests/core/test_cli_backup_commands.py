"""`sentinel backup sync|resume|discard` hand their work to the running daemon as command
rows (sentinel/command_rows.py); the daemon's BackupCommandRunner applies them to its own
replicators and the CLI prints the result. Malformed rows never stop the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backup.state import load_state, save_state
from sentinel import migrations
from sentinel.backup_commands import BackupCommandRunner, CommandResult
from sentinel.cli import backup as cli_backup
from sentinel.cli.main import main
from sentinel.config import Config, load_config
from sentinel.heartbeat import beat
from sentinel.replication import build_replicators
from sentinel.store import DB_NAME, Store


def _config(tmp_path: Path) -> tuple[Path, Config]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a.txt").write_text("one")
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[replication]]\nname = "docs"\nsource = "{src}"\ntarget = "{dst}"\n'
    )
    return cfg, load_config(cfg)


@contextlib.asynccontextmanager
async def _daemon(config: Config, *, runner: bool = True) -> AsyncIterator[BackupCommandRunner]:
    """What the daemon has for backup commands: a fresh heartbeat, its replicators, the
    runner (the replicators' own loops are not needed to apply a command)."""
    store = await Store.open(config.daemon.state_dir)
    await migrations.migrate(store)
    now = time.time()
    await beat(store.write, now=now, started=now, status="ok", components={}, config={})
    reps = build_replicators(config, store)
    for rep in reps:
        await rep.load()
    commands = BackupCommandRunner(store, reps)
    task = asyncio.create_task(commands.run()) if runner else None
    try:
        yield commands
    finally:
        crashed = task is not None and task.done()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a crash: see below
                await task
        await store.close()  # first: an open store's thread keeps a failed run from exiting
        assert not crashed, task  # the runner keeps running, whatever the rows said


def _rows(config: Config) -> list[sqlite3.Row]:
    conn = sqlite3.connect(config.daemon.state_dir / DB_NAME)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM backup_commands ORDER BY id").fetchall()
    finally:
        conn.close()


async def test_sync_runs_in_the_daemon_and_the_cli_prints_its_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, config = _config(tmp_path)
    async with _daemon(config) as commands:
        rc = await asyncio.to_thread(main, ["-c", str(cfg), "backup", "sync", "--full"])
        assert rc == 0
        assert commands.applied == 1  # the daemon ran it, not the CLI
    assert "docs: full reconcile done in" in capsys.readouterr().out
    assert (tmp_path / "dst" / "a.txt").read_text() == "one"
    [row] = _rows(config)
    assert row["command"] == "sync" and row["progress"] == 100.0
    assert CommandResult.from_json(row["result"]).ok


async def test_resume_is_applied_by_the_daemon_and_records_who_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, config = _config(tmp_path)
    async with _daemon(config) as commands:
        store = await Store.open(config.daemon.state_dir)
        await save_state(store.write, "docs", guard_tripped=1, guard_reason="test")
        rc = await asyncio.to_thread(
            main, ["-c", str(cfg), "backup", "resume", "docs", "--by", "kim"]
        )
        assert rc == 0 and commands.applied == 1
        assert not (await load_state(store.db, "docs")).guard_tripped
        await store.close()
    assert "docs: guard cleared" in capsys.readouterr().out
    [row] = _rows(config)
    args = json.loads(row["args"])
    assert (args["name"], args["by"], args["uid"]) == ("docs", "kim", os.getuid())


async def test_malformed_rows_get_a_clear_result_and_the_daemon_carries_on(
    tmp_path: Path,
) -> None:
    _, config = _config(tmp_path)
    async with _daemon(config) as commands:
        conn = sqlite3.connect(config.daemon.state_dir / DB_NAME, isolation_level=None)
        bad = [
            ("sync", "not json"),
            ("explode", '{"name": "docs"}'),
            ("resume", "{}"),
            ("resume", "[1, 2]"),
            ("discard", '{"name": "nosuch"}'),
            ("resume", '{"name": "docs"}'),
        ]
        conn.executemany(
            "INSERT INTO backup_commands(command, args, created) VALUES (?, ?, ?)",
            [(c, a, time.time()) for c, a in bad],
        )
        conn.close()
        deadline = time.monotonic() + 10
        while commands.applied < len(bad):
            assert time.monotonic() < deadline, commands.health()
            await asyncio.sleep(0.05)
    results = [CommandResult.from_json(r["result"]) for r in _rows(config)]
    assert [r.ok for r in results] == [False] * 5 + [True]
    assert all(r.error and r.message.startswith("command rejected: ") for r in results[:5])
    assert "unknown command 'explode'" in results[1].message
    assert "no replication named 'nosuch'" in results[4].message


async def test_a_result_or_progress_that_cannot_be_written_does_not_stop_the_runner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, config = _config(tmp_path)
    async with _daemon(config) as commands:
        conn = sqlite3.connect(config.daemon.state_dir / DB_NAME, isolation_level=None)
        # row 1's result cannot be written (but an error result can); no progress can be
        conn.executescript(
            """
            CREATE TRIGGER no_result BEFORE UPDATE OF applied ON backup_commands
            WHEN NEW.id = 1 AND NEW.result NOT LIKE '%could not write the result%'
            BEGIN SELECT RAISE(ABORT, 'disk full'); END;
            CREATE TRIGGER no_progress BEFORE UPDATE OF progress ON backup_commands
            BEGIN SELECT RAISE(ABORT, 'disk full'); END;
            """
        )
        conn.executemany(
            "INSERT INTO backup_commands(command, args, created) VALUES (?, ?, ?)",
            [(c, '{"name": "docs"}', time.time()) for c in ("resume", "resume", "sync")],
        )
        conn.close()
        deadline = time.monotonic() + 10
        while sum(r["applied"] is not None for r in _rows(config)) < 3:
            assert time.monotonic() < deadline, commands.health()
            await asyncio.sleep(0.05)
    first, second, sync = (CommandResult.from_json(r["result"]) for r in _rows(config))
    assert first.error and "could not write the result" in first.message
    assert second.ok and sync.ok  # the runner carried on
    logged = [r.getMessage() for r in caplog.records]
    assert sum("result could not be written" in m for m in logged) == 1
    assert sum("progress could not be written" in m for m in logged) == 1


async def test_with_no_daemon_running_the_cli_runs_the_command_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, config = _config(tmp_path)
    async with _daemon(config, runner=False):
        store = await Store.open(config.daemon.state_dir)
        now = time.time()
        await beat(
            store.write, now=now, started=now, status="", components={}, config={}, stopped=True
        )
        await store.close()
        rc = await asyncio.to_thread(main, ["-c", str(cfg), "backup", "sync", "--full"])
    assert rc == 0
    assert "docs: full reconcile done in" in capsys.readouterr().out
    assert (tmp_path / "dst" / "a.txt").read_text() == "one"
    [row] = _rows(config)
    assert row["claimed_by"] == os.getpid() and CommandResult.from_json(row["result"]).ok


async def test_a_running_daemon_that_does_not_take_the_row_gets_it_withdrawn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_backup, "CLAIM_WAIT", 0.2)
    monkeypatch.setattr(cli_backup, "TAKE_WAIT", 0.6)
    cfg, config = _config(tmp_path)
    async with _daemon(config, runner=False):
        rc = await asyncio.to_thread(main, ["-c", str(cfg), "backup", "sync", "--full"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "the daemon has not taken the sync command yet" in err
    assert "did not take the sync command within 1s: withdrawn" in err
    assert not (tmp_path / "dst" / "a.txt").exists()  # this process did not run it
    [row] = _rows(config)
    result = CommandResult.from_json(row["result"])
    assert result.message == "cancelled: the daemon did not take the command"
    assert row["claimed"] is not None  # no daemon takes it at a later start


async def test_ctrl_c_withdraws_a_row_nobody_took(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_backup, "_sleep", ctrl_c)
    cfg, config = _config(tmp_path)
    async with _daemon(config, runner=False):
        rc = await asyncio.to_thread(main, ["-c", str(cfg), "backup", "discard"])
    assert rc == 130
    assert "docs: interrupted: the discard command was withdrawn" in capsys.readouterr().err
    [row] = _rows(config)
    assert CommandResult.from_json(row["result"]).message.startswith("cancelled: interrupted")


async def test_the_cli_stops_waiting_when_the_daemon_stops_mid_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, config = _config(tmp_path)
    async with _daemon(config, runner=False):
        store = await Store.open(config.daemon.state_dir)

        async def takes_it_and_dies() -> None:
            """A daemon that claims the row, then stops (its heartbeat says so)."""
            while True:
                async with store.write() as db:
                    cur = await db.execute(
                        "UPDATE backup_commands SET claimed = ?, claimed_by = 1 "
                        "WHERE claimed IS NULL",
                        (time.time(),),
                    )
                    if cur.rowcount:
                        break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            now = time.time()
            await beat(
                store.write, now=now, started=now, status="", components={}, config={}, stopped=True
            )

        dying = asyncio.create_task(takes_it_and_dies())
        rc = await asyncio.to_thread(main, ["-c", str(cfg), "backup", "resume"])
        await dying
        await store.close()
    assert rc == 1
    assert "docs: the daemon stopped before the command finished" in capsys.readouterr().err
    [row] = _rows(config)
    assert row["applied"] is None  # and this process did not run it either


async def test_rows_a_runner_never_finished_are_closed_at_its_start(tmp_path: Path) -> None:
    _, config = _config(tmp_path)
    async with _daemon(config, runner=False):
        conn = sqlite3.connect(config.daemon.state_dir / DB_NAME, isolation_level=None)
        gone_pid = _ended_pid()
        now = time.time()
        conn.executemany(
            "INSERT INTO backup_commands(command, args, created, claimed, claimed_by) "
            "VALUES ('sync', '{\"name\": \"docs\"}', ?, ?, ?)",
            [(now, now, os.getpid()), (now, now, gone_pid), (now, now, os.getppid())],
        )
        conn.close()
    async with _daemon(config) as commands:
        deadline = time.monotonic() + 10
        while sum(r["applied"] is not None for r in _rows(config)) < 2:
            assert time.monotonic() < deadline, commands.health()
            await asyncio.sleep(0.05)
    rows = _rows(config)
    for row in rows[:2]:  # this daemon's before a reload, and a dead one's
        assert CommandResult.from_json(row["result"]).message.startswith("interrupted: ")
    assert rows[2]["applied"] is None  # a living process (a CLI) still runs it


def _ended_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
