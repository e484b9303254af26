"""A quiet database still has a bounded RPO (issue 16): the log switch and the base backup's
age, against a real PostgreSQL 15 archiving its WAL segments (temp name + rename) and the
real alarm engine on a real store. A switch that fails, hangs, or closes no log pages once
and resolves at the next switch that closes one; a base backup too old, missing, or whose
time cannot be told pages critical; the commands' passwords never reach a page or a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from backup.logname import LogNaming
from sentinel.alarm.engine import Engine
from sentinel.config import Config
from sentinel.database_watch import DatabaseWatch, build_database_watches, newest_log
from sentinel.store import Store
from sentinel.web.metrics import render
from tests.alarm.helpers import Outbox, sent, started_engine
from tests.fixtures.databases import Postgres
from tests.fixtures.poll import until

SENSOR = "database:pg"
NAMING = LogNaming("postgresql")


def pg_config(pg: Postgres, tmp_path: Path, **database: Any) -> Config:
    return Config.model_validate(
        {
            "replication": [
                {
                    "name": "pg",
                    "kind": "archive-log",
                    "source": str(pg.archive_dir),
                    "target": str(tmp_path / "replica"),
                    "database": {"preset": "postgresql", **database},
                }
            ]
        }
    )


def segments(pg: Postgres) -> set[str]:
    return {n for n in os.listdir(pg.archive_dir) if NAMING.parse(n) is not None}


def write(pg: Postgres) -> None:
    """A transaction, so the open WAL segment has something to switch (PostgreSQL does not
    switch a segment nothing was written to)."""
    pg.execute(
        [
            "create table if not exists approval (id serial primary key, at timestamptz)",
            "insert into approval (at) values (now())",
        ]
    )


@pytest.fixture
async def engine(store: Store, tmp_path: Path, postgres_archive: Postgres) -> Engine:
    # the real clock: the watch compares it with the segments' mtimes
    return await started_engine(store, pg_config(postgres_archive, tmp_path), Outbox(), time.time)


@contextlib.asynccontextmanager
async def running(watch: DatabaseWatch) -> AsyncIterator[DatabaseWatch]:
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def make_watch(pg: Postgres, tmp_path: Path, engine: Engine, **database: Any) -> DatabaseWatch:
    [watch] = build_database_watches(pg_config(pg, tmp_path, **database), engine.submit)
    watch._scan_interval = 0.1  # the test's switch_after is 2 s
    return watch


async def pages(store: Store, kind: str) -> list[dict[str, Any]]:
    return [e for e in await sent(store) if e["sensor_id"] == SENSOR and e["kind"] == kind]


async def test_a_quiet_database_gets_its_log_switched(
    postgres_archive: Postgres, engine: Engine, store: Store, tmp_path: Path
) -> None:
    pg = postgres_archive
    write(pg)
    before = segments(pg)
    watch = make_watch(
        pg, tmp_path, engine, switch_after="2s", switch_command=pg.psql("select pg_switch_wal()")
    )
    async with running(watch):
        await until(
            lambda: (watch.last_result or "").startswith("ok"),
            30,
            lambda: f"a log switch that closes a segment ({watch.health()})",
        )
        # the switch ran once, and waits for switch_after again before the next
        assert watch.switches == 1
    new = segments(pg) - before
    assert new, "pg_switch_wal() shipped no new segment to the archive"
    newest = newest_log(pg.archive_dir, NAMING)
    assert newest is not None and newest.name in new
    assert watch.health()["newest_log"] == newest.name
    assert watch.health()["switch_failing"] is None
    assert await pages(store, "database_switch_failing") == []


# docs/database.md: PostgreSQL switches no segment nothing was written to; one logical
# message first makes every switch ship one
EMIT_AND_SWITCH = (
    "select pg_switch_wal() from (select pg_logical_emit_message(false, 'sentinel', 'switch')) m"
)


async def test_on_an_idle_database_the_documented_command_still_closes_a_log(
    postgres_archive: Postgres, engine: Engine, store: Store, tmp_path: Path
) -> None:
    pg = postgres_archive
    pg.query("select pg_switch_wal()")  # whatever was written: shipped now, idle from here
    await until(
        lambda: not any(n.startswith(".") for n in os.listdir(pg.archive_dir)), 30, "archiving"
    )
    before = segments(pg)
    watch = make_watch(
        pg, tmp_path, engine, switch_after="2s", switch_command=pg.psql(EMIT_AND_SWITCH)
    )
    async with running(watch):
        await until(
            lambda: (watch.last_result or "").startswith("ok"),
            30,
            lambda: f"a log switch that closes a segment ({watch.health()})",
        )
    assert segments(pg) - before
    assert await pages(store, "database_switch_failing") == []


@pytest.mark.parametrize(
    ("broken", "switch_timeout", "says"),
    [
        ("echo 'permission denied for function pg_switch_wal' >&2; exit 1", "10s", "exit status 1"),
        ("sleep 30", "3s", "no answer within 3 s"),
        # the command "works" but no log closes: a broken archive_command looks like this
        ("true", "3s", "no new log closed within 3 s"),
    ],
    ids=["exit-1", "hangs", "no-new-log"],
)
async def test_a_failing_switch_pages_once_and_the_next_success_resolves_it(
    postgres_archive: Postgres,
    engine: Engine,
    store: Store,
    tmp_path: Path,
    broken: str,
    switch_timeout: str,
    says: str,
) -> None:
    pg = postgres_archive
    fixed = tmp_path / "fixed"
    command = f"if [ -e {fixed} ]; then {pg.psql('select pg_switch_wal()')}; else {broken}; fi"
    watch = make_watch(
        pg, tmp_path, engine, switch_after="2s", switch_timeout=switch_timeout,
        switch_command=command,
    )  # fmt: skip
    async with running(watch):
        await until(
            lambda: watch.switch_failures >= 2,
            60,
            lambda: f"two failed switches ({watch.health()})",
        )
        firing = await pages(store, "database_switch_failing")
        # failing twice is one alarm, one page
        assert [(p["event"], p["severity"]) for p in firing] == [("firing", "warning")]
        assert says in firing[0]["reason"]
        assert says in str(watch.health()["last_switch_result"])
        fixed.touch()
        write(pg)
        await until(
            lambda: watch.switch_failing is None,
            60,
            lambda: f"a switch that works ({watch.health()})",
        )
        await until(lambda: _events(store), 10, "the resolve", interval=0.05)
    assert [p["event"] for p in await pages(store, "database_switch_failing")] == [
        "firing",
        "resolved",
    ]


async def _events(store: Store) -> bool:
    return [p["event"] for p in await pages(store, "database_switch_failing")][-1:] == ["resolved"]


async def test_the_switch_commands_password_never_reaches_a_page_or_the_log(
    postgres_archive: Postgres,
    engine: Engine,
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    command = "PGPASSWORD=hunter2x sh -c 'echo \"auth failed with $PGPASSWORD\" >&2; exit 2'"
    watch = make_watch(
        postgres_archive, tmp_path, engine, switch_after="1s", switch_command=command
    )
    with caplog.at_level(logging.INFO, logger="sentinel.database"):
        await watch.switch(time.time())
    [page] = await pages(store, "database_switch_failing")
    assert "exit status 2" in page["reason"] and "auth failed" in page["reason"]
    shown = [page["reason"], str(watch.health()), caplog.text]
    assert all("hunter2x" not in text for text in shown), shown


# -- the base backup ---------------------------------------------------------------------------


@pytest.fixture
def base_dir(postgres_archive: Postgres, tmp_path: Path) -> Iterator[Path]:
    base = tmp_path / "basebackup"
    base.mkdir()
    yield base


async def check(watch: DatabaseWatch) -> dict[str, Any]:
    await watch.check_base_backup(time.time())
    return watch.health()


async def test_a_fresh_base_backup_is_quiet_and_an_old_one_pages(
    postgres_archive: Postgres, engine: Engine, store: Store, tmp_path: Path, base_dir: Path
) -> None:
    postgres_archive.basebackup(base_dir / "2026-12-02")
    watch = make_watch(
        postgres_archive, tmp_path, engine, base_backup_dir=str(base_dir), base_backup_max_age="8d"
    )
    health = await check(watch)
    assert health["base_backup_error"] is None
    assert 0 <= health["base_backup_age"] < 600
    assert await pages(store, "database_base_backup_age") == []
    assert (
        'sentinel_database_base_backup_age_seconds{replication="pg"}'
        in render({"components": {SENSOR: health}}).decode()
    )

    ten_days_ago = time.time() - 10 * 86400
    os.utime(base_dir / "2026-12-02", (ten_days_ago, ten_days_ago))
    health = await check(watch)
    assert health["base_backup_age"] > 8 * 86400
    [page] = await pages(store, "database_base_backup_age")
    assert (page["event"], page["severity"]) == ("firing", "critical")
    assert "10 d" in page["reason"] and "8 d" in page["reason"]

    postgres_archive.basebackup(base_dir / "2026-12-03")  # the next weekly base backup
    await check(watch)
    assert [p["event"] for p in await pages(store, "database_base_backup_age")] == [
        "firing",
        "resolved",
    ]


async def test_no_base_backup_pages(
    postgres_archive: Postgres, engine: Engine, store: Store, tmp_path: Path, base_dir: Path
) -> None:
    (base_dir / ".in-progress").mkdir()  # an unfinished copy is not a base backup
    watch = make_watch(postgres_archive, tmp_path, engine, base_backup_dir=str(base_dir))
    health = await check(watch)
    assert health["base_backup"] is None
    [page] = await pages(store, "database_base_backup_age")
    assert page["severity"] == "critical"
    assert "no base backup of pg" in page["reason"]


@pytest.mark.parametrize(
    ("printed", "age"),
    [("{t:.0f}", 3600.0), ("{iso}", 3600.0)],
    ids=["unix-seconds", "iso-8601"],
)
async def test_base_backup_command_prints_its_time(
    postgres_archive: Postgres,
    engine: Engine,
    store: Store,
    tmp_path: Path,
    printed: str,
    age: float,
) -> None:
    from datetime import UTC, datetime

    then = time.time() - age
    text = printed.format(t=then, iso=datetime.fromtimestamp(then, UTC).isoformat())
    watch = make_watch(
        postgres_archive, tmp_path, engine, base_backup_command=f"echo backup done; echo {text}"
    )
    health = await check(watch)
    assert health["base_backup_error"] is None
    assert abs(health["base_backup_age"] - age) < 60
    assert await pages(store, "database_base_backup_age") == []


async def test_a_base_backup_command_printing_garbage_is_a_clear_error(
    postgres_archive: Postgres, engine: Engine, store: Store, tmp_path: Path
) -> None:
    watch = make_watch(
        postgres_archive, tmp_path, engine, base_backup_command="echo 'last backup: yesterday'"
    )
    health = await check(watch)
    assert health["base_backup_error"] == (
        "base_backup_command printed 'last backup: yesterday', which is not a time "
        "(expected ISO 8601 or Unix seconds)"
    )
    [page] = await pages(store, "database_base_backup_age")
    assert page["severity"] == "critical"
    assert "not a time" in page["reason"]


def test_only_archive_log_replications_get_a_database_watch(tmp_path: Path) -> None:
    config = Config.model_validate(
        {
            "replication": [
                {"name": "docs", "source": str(tmp_path / "d"), "target": str(tmp_path / "a")},
                {
                    "name": "onnara-db",
                    "kind": "archive-log",
                    "source": str(tmp_path / "wal"),
                    "target": str(tmp_path / "b"),
                },
            ]
        }
    )

    async def submit(_: object) -> None:
        return None

    watches = build_database_watches(config, submit)
    assert [w.name for w in watches] == ["database:onnara-db"]
    # without switch_command or a base backup source it only watches the logs
    assert watches[0].health()["switch_command"] is False


async def test_a_hung_archive_directory_is_reported_and_does_not_freeze_the_daemon(
    postgres_archive: Postgres,
    engine: Engine,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The archive directory is often an NFS mount; a hung one stands in here as a scan that
    never returns (no hung NFS server can be made on this machine). Before, the scan ran on
    the daemon's loop: every alarm and page would have waited with it."""
    import threading

    from sentinel import database_watch

    release = threading.Event()

    def hung(*_args: Any) -> None:
        release.wait(30)

    monkeypatch.setattr(database_watch, "newest_log", hung)
    monkeypatch.setattr(database_watch, "SCAN_TIMEOUT", 0.5)
    watch = make_watch(postgres_archive, tmp_path, engine, switch_after="2s")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.05)

    ticker = asyncio.create_task(tick())
    try:
        async with running(watch):
            await until(lambda: watch.scan_error, 10, "the hung scan reported")
            assert "took over 0.5s" in str(watch.health()["last_error"])
            assert ticks > 5  # the loop kept running meanwhile
    finally:
        release.set()
        ticker.cancel()
