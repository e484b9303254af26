"""What one shipped batch and one full pass cost in bookkeeping (issue 18): commits and
statements per batch, no thread per rsync, no guard dry run into an empty replica, and no
full pass's itemized lines kept between passes. Timings are never asserted: the counts are
what the costs follow."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from backup.inotify import Inotify
from backup.journal import Journal
from backup.replicator import Replicator
from backup.rsync import RsyncResult, run_rsync
from backup.spec import GuardSettings
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running, tree_diff
from tests.fixtures.hops import hops
from tests.fixtures.poll import until


async def test_a_shipped_file_costs_two_commits_and_no_extra_reads(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One commit records the change, one drops it from the journal together with the
    success figures, each in one trip to the database thread; the journal's count is not
    read back and the quarantine table not read for a batch that holds no set-aside path."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, reconcile_at_start=False)
    async with running(
        spec, bstore, journal_write=bstore.fast_write, journal_run=bstore.fast_run
    ) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        await asyncio.sleep(0.2)  # the scheduler's first round (prune bookkeeping) is over
        statements: list[str] = []
        await bstore.db.set_trace_callback(statements.append)
        calls = hops(bstore, monkeypatch)
        try:
            for i in range(3):
                (src / f"doc{i}.txt").write_text(f"document {i}")
                await until(
                    lambda i=i: rep.health()["shipped_files"] == 2 + i and rep.caught_up,
                    30,
                    f"doc{i} shipped",
                )
        finally:
            monkeypatch.undo()
            await bstore.db.set_trace_callback(None)
        assert not tree_diff(src, dst)
        assert rep.health()["pending"] == 0 and rep.health()["rpo"] == 0
    commits = [s for s in statements if s.startswith("BEGIN")]
    assert len(commits) == 6, statements  # 2 per file, was 3
    # record, take, complete: 3 per file, was 9 (a hop per statement, BEGIN and COMMIT).
    # A scheduler round (every 5 s) may fall inside and add its reads
    transactions = [c for c in calls if "run_write" in getattr(c, "__qualname__", "")]
    assert len(transactions) == 6, calls  # each commit is one hop
    assert len(calls) <= 9 + 6, calls
    assert not [s for s in statements if "backup_quarantine" in s], statements
    assert not [s for s in statements if "COUNT(*)" in s], statements


async def test_the_shipped_figures_are_in_the_database_after_each_batch(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """Written in the journal's commit, the success figures are what another process (the
    status command) reads: last success and the count of shipped files."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, reconcile_at_start=False)
    async with running(spec, bstore, journal_write=bstore.fast_write) as rep:
        for i in range(3):
            (src / f"doc{i}.txt").write_text(f"document {i}")
            await until(lambda i=i: (dst / f"doc{i}.txt").exists() and rep.caught_up, 30, "ship")
        async with bstore.db.execute(
            "SELECT shipped_files, last_success, consecutive_failures FROM backup_state "
            "WHERE source = 'docs'"
        ) as cur:
            shipped, last_success, failures = await cur.fetchone()
        async with bstore.db.execute("SELECT COUNT(*) FROM backup_journal") as cur:
            assert (await cur.fetchone())[0] == 0
    assert shipped == 3 and last_success is not None and failures == 0


async def test_an_rsync_run_starts_no_thread() -> None:
    """Python 3.11's default waits for each subprocess in a thread of its own."""
    seen: list[str] = []
    result = await run_rsync(
        ["--version"], on_output=lambda _chunk: seen.extend(t.name for t in threading.enumerate())
    )
    assert result.ok and seen
    assert not [name for name in seen if "waitpid" in name], seen
    many = await asyncio.gather(*(run_rsync(["--version"]) for _ in range(4)))
    assert all(r.ok for r in many)


IN_OPEN, IN_CLOSE_NOWRITE = 0x20, 0x10  # inotify(7)


@contextmanager
def directory_reads(path: Path) -> Iterator[list[int]]:
    """How many times `path` itself is opened (rsync lists a directory once per walk) while
    the body runs: one number, appended when the body ends."""
    out: list[int] = []
    ino = Inotify()
    try:
        # with its close: two opens in a row would be merged into one event by the kernel
        ino.add_watch(str(path), IN_OPEN | IN_CLOSE_NOWRITE)
        yield out
        n = 0
        while True:
            try:
                events = ino.read()
            except BlockingIOError:
                break
            n += sum(name is None and bool(mask & IN_OPEN) for _wd, mask, name in events)
        out.append(n)
    finally:
        ino.close()


def fill(src: Path, n: int, text: str) -> None:
    (src / "docs").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (src / "docs" / f"f{i:03}.txt").write_text(f"{text} {i}\n")


GUARD = GuardSettings(max_files=20, window=60.0)


async def test_a_first_pass_into_an_empty_replica_walks_the_source_once(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """Nothing on the replica to delete or overwrite: no dry run for the guard (it would be
    a second walk of the whole tree), and the replica equals the source."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    fill(src, 60, "new")
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GUARD)
    rep = Replicator(spec, bstore.db, bstore.write)
    await rep.load()
    with directory_reads(src / "docs") as reads:
        result = await rep.reconcile("first")
    assert result is not None and result.ok
    assert reads == [1]  # the pass alone; a dry run first made it 2
    assert result.changed >= 60 and result.output == []
    assert not tree_diff(src, dst)
    assert not rep.health()["guard_tripped"]


async def test_a_replica_with_files_is_still_measured_and_trips_on_a_mass_change(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    fill(src, 60, "original")
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GUARD)
    rep = Replicator(spec, bstore.db, bstore.write)
    await rep.load()
    assert (await rep.reconcile("first")) is not None
    before = {p.name: p.read_bytes() for p in (dst / "docs").iterdir()}
    fill(src, 60, "encrypted")  # every file overwritten while nobody watched
    with directory_reads(src / "docs") as reads:
        assert (await rep.reconcile("after the attack")) is None
    # the quick look (a dry run without --delete and the name comparison beside it, see
    # backup/orphans.py) found a change, the measured dry run looked, and no pass followed
    assert reads == [3]
    assert rep.health()["guard_tripped"]
    assert {p.name: p.read_bytes() for p in (dst / "docs").iterdir()} == before


async def test_a_replica_holding_only_a_directory_is_measured(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """Holding files is decided conservatively: any entry but sentinel's own counts."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    fill(src, 5, "new")
    (dst / "old").mkdir(parents=True)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GUARD)
    rep = Replicator(spec, bstore.db, bstore.write)
    await rep.load()
    with directory_reads(src / "docs") as reads:
        result = await rep.reconcile("first")
    assert result is not None and result.ok
    # the quick look's dry run (its name comparison stopped at the root's `old`), the
    # measured dry run, then the pass
    assert reads == [3]
    assert not (dst / "old").exists()  # --delete as ever


async def test_the_last_full_pass_is_not_kept_between_passes(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """A full pass itemizes every file of a fresh tree (~18 MB per 100k files): neither its
    lines nor its result stay resident until the next pass."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    fill(src, 120, "doc")
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GUARD)
    async with running(spec, bstore) as rep:
        await until(lambda: rep.health()["last_full"] is not None, 30, "first pass")
        await caught_up(rep, src, dst)
        gc.collect()
        kept = [
            o
            for o in gc.get_objects()
            if isinstance(o, RsyncResult)
            and max(len(o.output), len(o.transferred), getattr(o, "counted", 0)) >= 120
        ]
        assert not kept
        assert rep.health()["shipped_files"] >= 120  # counted all the same


def test_directory_reads_counts_a_listing(tmp_path: Path) -> None:
    """The observable above: listing a directory is one open of it."""
    (tmp_path / "d").mkdir()
    with directory_reads(tmp_path / "d") as reads:
        os.listdir(tmp_path / "d")
        os.listdir(tmp_path / "d")
    assert reads == [2]


async def test_the_journal_count_in_memory_matches_the_table(bstore: Store) -> None:
    """`pending`/`oldest` follow completes without reading the table back, and still say
    what the table says: a path recorded twice, one changed again during its transfer."""
    journal = Journal("docs", bstore.db, bstore.fast_write)
    await journal.load()

    async def table() -> tuple[int, float | None]:
        async with bstore.db.execute(
            "SELECT COUNT(*), MIN(first_seen) FROM backup_journal WHERE source = 'docs'"
        ) as cur:
            count, oldest = await cur.fetchone()
        return count, oldest

    await journal.record(["a", "b"], ts=100.0)
    await journal.record(["a"], ts=101.0)  # counted twice in memory until a read
    batch = await journal.take(10)
    await journal.record(["b"], ts=102.0)  # changed while its batch was being shipped
    await journal.complete(batch, started=105.0)
    assert (journal.pending, journal.oldest) == await table() == (1, 105.0)
    await journal.complete(await journal.take(10), started=110.0)
    assert (journal.pending, journal.oldest) == await table() == (0, None)
    assert journal.rpo(200.0) == 0


async def test_a_pass_into_an_empty_replica_reads_no_line_per_file(
    tmp_path: Path, bstore: Store, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root is there and holds nothing: rsync prints its --stats, not a line per file
    for the daemon to read (100,000 lines were ~1 s of its CPU), and the count still comes
    out right. A missing root keeps the itemized lines: its re-creation must be seen."""
    import backup.transfer

    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    fill(src, 60, "new")
    (src / "docs" / "link").symlink_to("f000.txt")
    seen: list[str] = []
    real = backup.transfer.run_rsync

    async def counting(args: list[str], **kw: Any) -> RsyncResult:
        lines = kw.get("lines")
        if lines is not None:
            kw["lines"] = lambda line: (seen.append(line), lines(line))
        return await real(args, **kw)

    monkeypatch.setattr(backup.transfer, "run_rsync", counting)
    spec = make_spec(src, parse_target(str(dst)), runtime, guard=GUARD)
    rep = Replicator(spec, bstore.db, bstore.write)
    await rep.load()
    result = await rep.reconcile("first")
    assert result is not None and result.ok
    assert not tree_diff(src, dst)
    assert result.changed == 62  # 60 files, the link and their directory, as itemized
    assert len(seen) < 30 and not any(line.endswith("f000.txt") for line in seen)
    assert rep.health()["shipped_files"] == 62
