"""`sentinel backup drill --database` against a real PostgreSQL 15: a base backup, rows
written after it with known times, their WAL archived and "shipped" (the archive copied into
a replica directory), then the database opened in a scratch directory up to a point in time.

The row written before the target is found, the one after it is not; a drill without a
target replays everything shipped; each drill is recorded and status shows it; a segment
missing from the replica, a broken check query and a scratch directory inside the replica
each fail the drill with the reason (and status turns CRITICAL for a failed one)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from backup.database_drill_record import MIGRATIONS, DrillRecord, drill_view, save_record
from backup.logname import LogNaming
from sentinel.cli.main import main
from sentinel.replication import DatabaseDrillFeed
from sentinel.store import Store
from tests.alarm.helpers import Outbox, sent, started_engine
from tests.alarm.helpers import config as alarm_config
from tests.fixtures.core import FakeClock
from tests.fixtures.databases import Postgres
from tests.fixtures.remote import RsyncDaemon

NAME = "pgdb"
CHECK = "select string_agg(name, ',' order by id) from approval"


class History:
    """What the module's server went through: a base backup (plain and tar), then a row
    'before', a point in time `between`, a row 'after', each segment archived."""

    def __init__(self, pg: Postgres) -> None:
        assert pg.archive is not None
        self.pg = pg
        pg.execute(
            "create table approval (id int primary key, name text, "
            "at timestamptz not null default clock_timestamp())"
        )
        self.plain = pg.base_backup("plain")
        self.tar = pg.base_backup("tar", tar=True)
        pg.execute("insert into approval(id, name) values (1, 'before')")
        pg.switch_wal()
        time.sleep(0.2)  # the target time must fall strictly between the two commits
        self.between = time.time()
        time.sleep(0.2)
        pg.execute("insert into approval(id, name) values (2, 'after')")
        (self.after_at,) = pg.query(
            "select extract(epoch from at)::float8 from approval where id = 2"
        )[0]
        pg.switch_wal()
        self.archive = pg.archive


@pytest.fixture(scope="module")
def history(postgres_archive: Postgres) -> History:
    return History(postgres_archive)


def ship(history: History, replica: Path) -> Path:
    """The archive as a replication would have shipped it (a plain copy: the drill only
    reads the replica)."""
    shutil.copytree(history.archive, replica)
    return replica


def config(
    tmp_path: Path,
    history: History,
    replica: Path,
    *,
    base: Path | None = None,
    drill: str = "",
    check: str = CHECK,
) -> list[str]:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[replication]]\nname = "{NAME}"\nkind = "archive-log"\n'
        f'source = "{history.archive}"\ntarget = "{replica}"\n'
        f'[replication.database]\npreset = "postgresql"\n'
        f'base_backup_dir = "{base or history.plain}"\n'
        f'[replication.database.drill]\ncheck_query = "{check}"\n{drill}'
    )
    return ["-c", str(cfg)]


def drill(cli: list[str], *extra: str) -> int:
    return main([*cli, "backup", "drill", "--database", *extra])


def status(cli: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    main([*cli, "status", "--json"])
    report = json.loads(capsys.readouterr().out)
    (row,) = [r for r in report["replication"] if r["name"] == NAME]
    return {"row": row, "overall": report["overall"]}


def test_drill_to_a_time_between_two_rows_finds_the_earlier_only_and_is_in_status(
    tmp_path: Path, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = config(tmp_path, history, ship(history, tmp_path / "replica"))
    capsys.readouterr()
    assert drill(cli, "--target-time", str(history.between)) == 0
    out = capsys.readouterr().out
    assert f"{NAME}: DATABASE DRILL OK: base backup plain, " in out, out
    assert "check: before; RTO " in out, out
    for part in ("restore", "logs", "start", "replay", "check"):
        assert f"{part} " in out.split("RTO", 1)[1], out
    drilled = status(cli, capsys)["row"]["database_drill"]
    assert drilled["problem"] is None
    last = drilled["last_ok"]
    assert last["check_result"] == "before"
    assert last["target_time"] == pytest.approx(history.between)
    assert last["newest_xact"] < history.between
    assert last["rto"] >= sum(last["parts"].values()) - 0.01
    assert drilled["summary"].startswith("last successful database drill: ")
    assert ", RTO " in drilled["summary"]
    capsys.readouterr()
    main([*cli, "status"])
    assert "last successful database drill:" in capsys.readouterr().out


def test_drill_without_a_target_replays_all_shipped_from_a_tar_backup(
    tmp_path: Path, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    # the tar backup alone in its directory: the drill restores base.tar and pg_wal.tar
    only_tar = tmp_path / "tar-backups"
    shutil.copytree(history.tar, only_tar / "tar")
    replica = ship(history, tmp_path / "replica")
    # a segment older than the base backup is not needed (nor pulled): its loss is no gap
    naming = LogNaming("postgresql")
    (replica / min(p.name for p in replica.iterdir() if naming.parse(p.name))).unlink()
    cli = config(tmp_path, history, replica, base=only_tar)
    capsys.readouterr()
    assert drill(cli) == 0
    out = capsys.readouterr().out
    assert "base backup tar, recovered up to the end of the shipped logs" in out, out
    assert "check: before,after;" in out, out
    last = status(cli, capsys)["row"]["database_drill"]["last_ok"]
    assert last["newest_xact"] >= history.after_at


def test_the_logs_are_pulled_from_an_rsync_daemon_replica(
    tmp_path: Path, history: History, rsyncd: RsyncDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    ship(history, rsyncd.module_dir / "replica")
    cli = config(tmp_path, history, Path("/unused"))
    cfg = Path(cli[1])
    cfg.write_text(
        cfg.read_text().replace(
            'target = "/unused"\n',
            f'target = "{rsyncd.url()}"\npassword_file = "{rsyncd.password_file}"\n',
        )
    )
    capsys.readouterr()
    assert drill(cli, "--target-time", str(history.between)) == 0
    out = capsys.readouterr().out
    assert "check: before; RTO " in out, out
    assert "s3cret" not in out


def test_a_segment_missing_from_the_replica_fails_the_drill_naming_it(
    tmp_path: Path, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    replica = ship(history, tmp_path / "replica")
    naming = LogNaming("postgresql")
    segments = sorted(p.name for p in replica.iterdir() if naming.parse(p.name))
    gone = segments[-2]  # the newest but one: later logs exist, so the gap is certain
    (replica / gone).unlink()
    cli = config(tmp_path, history, replica)
    capsys.readouterr()
    assert drill(cli) == 1
    out = capsys.readouterr().out
    assert (
        f"{NAME}: DATABASE DRILL FAILED: 1 WAL segment(s) missing from the replica ({gone})" in out
    ), out
    seen = status(cli, capsys)
    drilled = seen["row"]["database_drill"]
    assert drilled["level"] == "CRITICAL"
    assert gone in drilled["problem"]
    assert drilled["last_ok"] is None


def test_a_target_past_the_shipped_logs_fails_with_postgresqls_reason(
    tmp_path: Path, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = config(tmp_path, history, ship(history, tmp_path / "replica"))
    capsys.readouterr()
    assert drill(cli, "--target-time", str(time.time() + 3600)) == 1
    out = capsys.readouterr().out
    assert f"{NAME}: DATABASE DRILL FAILED: " in out, out
    assert "recovery ended before configured recovery target was reached" in out, out


def test_a_broken_check_query_fails_the_drill(
    tmp_path: Path, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = config(
        tmp_path,
        history,
        ship(history, tmp_path / "replica"),
        check="select count(*) from no_such_table",
    )
    capsys.readouterr()
    assert drill(cli) == 1
    out = capsys.readouterr().out
    assert (
        'DATABASE DRILL FAILED: the check query failed: relation "no_such_table" does not exist'
        in out
    ), out


def test_a_scratch_dir_inside_the_replica_is_refused(
    tmp_path: Path, history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    replica = ship(history, tmp_path / "replica")
    cli = config(tmp_path, history, replica, drill=f'scratch_dir = "{replica / "scratch"}"\n')
    capsys.readouterr()
    assert drill(cli) == 1
    assert f"drill.scratch_dir {replica / 'scratch'} is inside {replica}" in capsys.readouterr().out
    assert not (replica / "scratch").exists()


def test_oracle_drill_runs_the_configured_commands_with_the_shipped_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replica = tmp_path / "replica"
    replica.mkdir()
    for seq in (7, 8):
        (replica / f"1_{seq}_1152.arc").write_bytes(b"redo")
    source = tmp_path / "arch"
    source.mkdir()
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[replication]]\nname = "ora"\nkind = "archive-log"\nsource = "{source}"\n'
        f'target = "{replica}"\n[replication.database]\npreset = "oracle"\n'
        "[replication.database.drill]\n"
        "restore_command = 'mkdir {scratch}/db && cp {logs}/*.arc {scratch}/db/'\n"
        "recover_command = 'echo until {target_time} > {scratch}/db/recovered'\n"
        "check_command = 'ls {scratch}/db | wc -l; echo second line'\n"
    )
    cli = ["-c", str(cfg), "backup", "drill", "--database"]
    capsys.readouterr()
    assert main([*cli, "--target-time", "2026-12-01T10:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "ora: DATABASE DRILL OK: recovered up to 2026-12-01 10:00:00+00:00" in out, out
    assert "check: 3; RTO " in out, out  # two logs and the recover step's file

    cfg.write_text(cfg.read_text().replace("echo until", "false && echo until"))
    capsys.readouterr()
    assert main(cli) == 1
    assert "ora: DATABASE DRILL FAILED: drill.recover_command failed (exit 1)" in (
        capsys.readouterr().out
    )


def test_a_failing_drill_command_does_not_show_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tool that fails echoes its connect string; the drill record (shown by status) and
    the drill's own output carry the password masked."""
    replica = tmp_path / "replica"
    replica.mkdir()
    (replica / "1_7_1152.arc").write_bytes(b"redo")
    source = tmp_path / "arch"
    source.mkdir()
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[replication]]\nname = "ora"\nkind = "archive-log"\nsource = "{source}"\n'
        f'target = "{replica}"\n[replication.database]\npreset = "oracle"\n'
        "[replication.database.drill]\n"
        "restore_command = 'echo connect sys/Dr1llSecret9@onnara refused; exit 3'\n"
    )
    capsys.readouterr()
    assert main(["-c", str(cfg), "backup", "drill", "--database"]) == 1
    out = capsys.readouterr().out
    assert "drill.restore_command failed (exit 3)" in out, out
    assert "Dr1llSecret9" not in out
    stored = (
        sqlite3.connect(tmp_path / "state" / "sentinel.db")
        .execute("SELECT error FROM database_drill")
        .fetchall()
    )
    assert stored and all("Dr1llSecret9" not in str(e) for (e,) in stored), stored


def _table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(MIGRATIONS[0])
    return conn


def _insert(conn: sqlite3.Connection, ts: float, ok: bool, error: str | None = None) -> None:
    conn.execute(
        "INSERT INTO database_drill(source, ts, ok, rto, parts, max_age, error) "
        "VALUES (?, ?, ?, ?, '{}', ?, ?)",
        (NAME, ts, int(ok), 134.0, 86400.0, error),
    )


def test_status_warns_when_never_drilled_or_too_long_ago_and_is_critical_after_a_failure() -> None:
    now = 1_800_000_000.0
    conn = _table()
    never = drill_view(conn, NAME, now, 86400.0)
    assert (never["level"], never["problem"]) == ("WARNING", "no successful database drill yet")
    _insert(conn, now - 3 * 86400, ok=True)
    old = drill_view(conn, NAME, now, 86400.0)
    assert old["level"] == "WARNING"
    assert (
        old["problem"]
        == "the last successful database drill is 3 days old (drill.max_age 24 hours)"
    )
    assert old["summary"] == "last successful database drill: 3 days ago, RTO 2m14s"
    assert drill_view(conn, NAME, now, 7 * 86400.0)["problem"] is None
    _insert(conn, now - 60, ok=False, error="the check query failed: boom")
    failed = drill_view(conn, NAME, now, 7 * 86400.0)
    assert failed["level"] == "CRITICAL"
    assert failed["problem"] == "the last database drill failed: the check query failed: boom"


async def test_the_daemon_pages_a_failed_drill_critical_and_a_missing_one_as_a_warning(
    store: Store, clock: FakeClock
) -> None:
    engine = await started_engine(store, alarm_config(), Outbox(), clock)
    feed = DatabaseDrillFeed([(NAME, 86400.0)], store.path.parent, engine.submit, clock)
    sensor = f"replication:{NAME}"

    async def pages() -> list[tuple[str, str, str]]:
        return [(e["event"], e["severity"], e["kind"]) for e in await sent(store)]

    await feed.once()  # never drilled
    assert await pages() == [("firing", "warning", "database_drill_overdue")]
    await save_record(
        store.write, DrillRecord(NAME, clock(), 86400.0, ok=False, error="the check query failed")
    )
    clock.advance(DatabaseDrillFeed.READ_EVERY)
    await feed.once()
    assert (await pages())[1:] == [
        ("firing", "critical", "database_drill_failed"),
        ("resolved", "warning", "database_drill_overdue"),
    ]
    await save_record(store.write, DrillRecord(NAME, clock(), 86400.0, ok=True, rto=12.0))
    clock.advance(DatabaseDrillFeed.READ_EVERY)
    await feed.once()
    assert (await pages())[3:] == [("resolved", "critical", "database_drill_failed")]
    assert {e["sensor_id"] for e in await sent(store)} == {sensor}
    clock.advance(86400.0 + DatabaseDrillFeed.READ_EVERY)  # the success grows too old
    await feed.once()
    assert (await pages())[4:] == [("firing", "warning", "database_drill_overdue")]
