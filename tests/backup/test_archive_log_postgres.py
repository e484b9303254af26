"""Archive-log replication of a real PostgreSQL 15 (archive_mode=on, archive_command copies
each closed WAL segment to a temporary name and renames it into the watched directory):
a forced switch ships the segment whole, the data RPO is its close time, a segment lost
before it shipped is a CRITICAL gap naming it, a truncated segment is held back."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

from backup.logname import PG_SEGMENT_SIZE, LogNaming
from backup.transport import parse_target
from sentinel.replication import replication_readings
from sentinel.store import Store
from tests.backup.helpers import make_spec, running
from tests.fixtures.databases import PG_BIN, Postgres
from tests.fixtures.poll import until

PG = LogNaming("postgresql")


def switch(pg: Postgres, n: int) -> str:
    """Writes a row and closes the current segment; the closed segment's file name."""
    pg.execute(
        [
            "create table if not exists approval (id serial primary key, doc text)",
            f"insert into approval(doc) values ('document {n}')",
        ]
    )
    return str(pg.query("select pg_walfile_name(pg_switch_wal())")[0][0])


async def archived(pg: Postgres, name: str) -> Path:
    assert pg.archive_dir is not None
    path = pg.archive_dir / name
    await until(lambda: path.exists(), 60, f"{name} archived by PostgreSQL")
    return path


def base_backup(pg: Postgres, into: Path) -> subprocess.CompletedProcess[bytes]:
    """pg_basebackup over the unix socket; it waits until its label is archived."""
    command = [str(PG_BIN / "pg_basebackup"), "-h", str(pg.workdir), "-p", str(pg.port)]
    command += ["-U", "postgres", "-D", str(into), "-X", "none", "-c", "fast"]
    return subprocess.run(command, capture_output=True, timeout=120, check=False)


def move_in(path: Path, src: Path) -> None:
    """What archive_command does, into the watched directory: copy aside, rename in."""
    tmp = src / f".{path.name}.tmp"
    shutil.copy2(path, tmp)
    os.rename(tmp, src / path.name)


async def test_a_switched_segment_arrives_whole_and_sets_the_data_rpo(
    tmp_path: Path, bstore: Store, runtime: Path, postgres_archive: Postgres
) -> None:
    pg = postgres_archive
    assert pg.archive_dir is not None
    dst = tmp_path / "dst"
    # the watched directory is the one PostgreSQL's archive_command writes to
    spec = make_spec(pg.archive_dir, parse_target(str(dst)), runtime, name="pg", log_naming=PG)
    async with running(spec, bstore) as rep:
        assert rep.archive is not None
        name = switch(pg, 1)
        source = await archived(pg, name)
        await until(lambda: rep.archive.sequence.head_name == name, 60, f"{name} arrived")
        shipped = dst / name
        assert shipped.stat().st_size == PG_SEGMENT_SIZE
        assert shipped.read_bytes() == source.read_bytes()
        # the data RPO is counted from the segment's close (its mtime in the archive)
        assert rep.archive.sequence.head_closed == source.stat().st_mtime
        h = rep.replication_health()
        assert h.archive_log and h.log_gap == () and h.data_rpo is not None
        assert h.data_rpo >= time.time() - source.stat().st_mtime - 1
        # the next switch moves the head on
        later = switch(pg, 2)
        await until(lambda: rep.archive.sequence.head_name == later, 60, f"{later} arrived")
        assert rep.archive.sequence.gap == ()


async def test_a_lost_segment_is_a_critical_gap_naming_it_and_a_truncated_one_waits(
    tmp_path: Path, bstore: Store, runtime: Path, postgres_archive: Postgres
) -> None:
    pg = postgres_archive
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    # three closed segments; the test plays archive_command into `src`, losing the middle one
    first, lost, third = [await archived(pg, switch(pg, 10 + i)) for i in range(3)]
    assert PG.parse(lost.name) is not None and PG.parse(first.name) is not None
    spec = make_spec(src, parse_target(str(dst)), runtime, name="pg2", log_naming=PG)
    async with running(spec, bstore) as rep:
        assert rep.archive is not None
        move_in(first, src)
        await until(lambda: rep.archive.sequence.head_name == first.name, 60, "first arrived")

        # a truncated copy of the middle segment (the archive disk filled up): held back
        (src / f".{lost.name}.tmp").write_bytes(lost.read_bytes()[: 1024 * 1024])
        os.rename(src / f".{lost.name}.tmp", src / lost.name)
        await until(lambda: lost.name in rep.quarantine.reasons, 30, "truncated segment held")
        assert "partial log" in rep.quarantine.reasons[lost.name]
        assert not (dst / lost.name).exists()
        # ... and then lost for good; the next segment ships
        (src / lost.name).unlink()
        move_in(third, src)
        await until(lambda: (dst / third.name).exists(), 60, "third at the target")
        await until(lambda: rep.archive.sequence.gap == (lost.name,), 30, "the gap")
        # the head stays at the first: no restore crosses the hole
        assert rep.archive.sequence.head_name == first.name
        gaps = [
            r for r in replication_readings([rep], time.time()) if r.kind == "replication_log_gap"
        ]
        assert len(gaps) == 1 and gaps[0].value is True
        assert gaps[0].detail == f"log sequence gap: {lost.name} missing"

        # found again (copied back from the database server): the gap closes
        move_in(lost, src)
        await until(lambda: rep.archive.sequence.head_name == third.name, 60, "head at third")
        assert rep.archive.sequence.gap == ()
        assert (dst / lost.name).stat().st_size == PG_SEGMENT_SIZE


async def test_a_base_backup_after_the_gap_makes_it_moot(
    tmp_path: Path, bstore: Store, runtime: Path, postgres_archive: Postgres
) -> None:
    pg = postgres_archive
    assert pg.archive_dir is not None
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    first, lost, third = [await archived(pg, switch(pg, 20 + i)) for i in range(3)]
    spec = make_spec(src, parse_target(str(dst)), runtime, name="pg3", log_naming=PG)
    async with running(spec, bstore) as rep:
        assert rep.archive is not None
        move_in(first, src)
        move_in(third, src)
        await until(lambda: rep.archive.sequence.gap == (lost.name,), 60, "the gap")
        # a real pg_basebackup: PostgreSQL archives its <segment>.<offset>.backup label
        before = set(pg.archive_dir.iterdir())
        done = await asyncio.to_thread(base_backup, pg, tmp_path / "base")
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        labels = [p for p in set(pg.archive_dir.iterdir()) - before if p.suffix == ".backup"]
        assert len(labels) == 1, labels
        move_in(labels[0], src)
        # recovery from that base backup never needs the lost segment: the gap is moot
        await until(lambda: rep.archive.sequence.gap == (), 60, "the gap made moot")
        assert rep.archive.sequence.head_name == third.name
        # the label itself replicates like any file (recovery reads it)
        await until(lambda: (dst / labels[0].name).exists(), 30, "the label at the target")
