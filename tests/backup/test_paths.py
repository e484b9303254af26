"""Hostile paths against real rsync and real files: names that are not UTF-8, paths longer
than PATH_MAX, a directory swapped for a file, a file too big for the target, sparse files
and hard links. None of them may stop replication of the rest."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from backup.journal import Journal
from backup.status import read_status
from backup.target import PARTIAL_DIR
from backup.transfer import PATTERN_MAX, exact_pattern, partial_paths, shipping_list, skip_args
from backup.transport import parse_target
from sensors.reading import Kind
from sentinel.cli.main import main
from sentinel.replication import replication_readings
from sentinel.store import Store
from tests.alarm.helpers import SENSORS, Outbox, config, events, started_engine
from tests.backup.helpers import caught_up, make_spec, running
from tests.fixtures.poll import until
from tests.fixtures.tmpfs import mounted_tmpfs


def status_of(store: Store) -> dict:
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        return read_status(conn, 0.0)["docs"]
    finally:
        conn.close()


def deep_dir(root: Path, min_bytes: int) -> tuple[bytes, int]:
    """Nested 250-byte directory names until the absolute path passes `min_bytes`; made
    with dir fds (a path that long cannot be passed to mkdir). Returns (rel, depth)."""
    name = b"n" * 250
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    parts: list[bytes] = []
    try:
        while len(os.fsencode(str(root))) + sum(len(p) + 1 for p in parts) <= min_bytes:
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            parts.append(name)
        leaf = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"deep")
        os.close(leaf)
    finally:
        os.close(fd)
    return b"/".join(parts), len(parts)


async def test_names_that_are_not_utf8_replicate_and_delete(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime)
    bsrc, bdst = os.fsencode(src), os.fsencode(dst)

    def at(root: bytes, rel: bytes) -> Path:
        return Path(os.fsdecode(root + b"/" + rel))

    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        # EUC-KR "한글" and a lone 0xff: valid Linux names, invalid UTF-8
        at(bsrc, b"\xc7\xd1\xb1\xdb.hwp").write_bytes(b"euc-kr")
        os.mkdir(bsrc + b"/dir\xff")
        at(bsrc, b"dir\xff/bad\xfe.txt").write_bytes(b"inside")
        at(bsrc, b"fine.txt").write_bytes(b"fine")
        at(bsrc, b"new\nline\t.txt").write_bytes(b"control characters")
        await caught_up(rep, src, dst)
        assert at(bdst, b"\xc7\xd1\xb1\xdb.hwp").read_bytes() == b"euc-kr"
        assert at(bdst, b"dir\xff/bad\xfe.txt").read_bytes() == b"inside"
        assert at(bdst, b"new\nline\t.txt").read_bytes() == b"control characters"
        os.unlink(bsrc + b"/dir\xff/bad\xfe.txt")
        await caught_up(rep, src, dst)
        assert not os.path.lexists(bdst + b"/dir\xff/bad\xfe.txt")
        assert rep.health()["consecutive_failures"] == 0


# How far the source sits from `/` decides at which depth the watch is refused. With a
# longer prefix (pytest-xdist's `popen-gw0/`) a full pass's retry shipped the refused
# directory with exit 0 and status then listed nothing set aside.
@pytest.mark.parametrize("prefix", [0, 100])
async def test_path_longer_than_path_max_is_quarantined_and_pages_not_crashes(
    tmp_path: Path,
    bstore: Store,
    runtime: Path,
    capsys: pytest.CaptureFixture[str],
    prefix: int,
) -> None:
    base = tmp_path / ("p" * prefix) if prefix else tmp_path
    src, dst = base / "src", base / "dst"
    src.mkdir(parents=True)
    _, depth = deep_dir(src, 4200)
    (src / "ok.txt").write_text("ok")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await until(lambda: rep.caught_up and (dst / "ok.txt").exists(), 30, "ok.txt")
        (src / "later.txt").write_text("later")
        await until(lambda: (dst / "later.txt").exists() and rep.caught_up, 30, "later.txt")
        # the full pass skips the refused path instead of failing on it for ever (the
        # start pass, begun before the walk refused it, may fail on it once and be retried)
        await until(lambda: rep._state.last_full_ok == 1, 30, "a full pass that worked")
        await until(lambda: rep.caught_up, 30, "caught up after it")
        health = rep.health()
        assert health["quarantined"] == 1
        assert health["consecutive_failures"] == 0
        again = await rep.reconcile("nightly")
        assert again is not None and again.ok
        if prefix:
            # the next full pass gives set-aside paths another try, but not this one: its
            # path below the source is short enough for rsync to ship the directory itself,
            # which would only hide it (and the list would flap to 0 until it went back).
            # With no prefix, the refused directory's own relative path is too long for
            # rsync as well: it is retried and fails loudly, as any refused path.
            assert rep.health()["quarantined"] == 1
        await until(lambda: rep.caught_up and rep.health()["quarantined"] == 1, 30, "aside")
        readings = {r.kind: r.value for r in replication_readings([rep], 0.0)}
        assert readings[Kind.REPLICATION_QUARANTINE] == 1.0
    shown = status_of(bstore)["quarantine"]
    assert shown["count"] == 1
    # the first directory down the chain that the kernel cannot watch by its full name
    refused = shown["paths"][0]["path"].count("n" * 250)
    assert refused <= depth
    assert len(str(src)) + 251 * (refused - 1) < 4096 <= len(str(src)) + 251 * refused
    # refused by the kernel's watch, or by rsync on the retry after the full pass
    assert any(
        why in shown["paths"][0]["reason"]
        for why in ("longer than", "File name too long", "overflows max-path")
    )
    # what an operator sees: the table and --json of `sentinel status`
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[[replication]]\n'
        f'name = "docs"\nsource = "{src}"\ntarget = "{dst}"\n'
    )
    main(["-c", str(cfg), "status", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["replication"][0]["quarantine"]["count"] == 1
    main(["-c", str(cfg), "status"])
    assert "1 path(s) cannot be replicated" in capsys.readouterr().out
    # the same reading raises a warning through the alarm engine
    engine = await started_engine(bstore, config(SENSORS), Outbox(), time.time)
    for reading in readings_of(rep):
        await engine.submit(reading)
    assert ("firing", "warning", "replication:docs") in await events(bstore)


def readings_of(rep: object) -> list:
    return replication_readings([rep], 0.0)  # type: ignore[list-item]


async def test_directory_swapped_for_a_file_and_back_ships(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "d").mkdir()
    (src / "d" / "x").write_text("x")
    (src / "f").write_text("file")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        (src / "d" / "x").unlink()
        (src / "d").rmdir()
        (src / "d").write_text("now a file")
        (src / "f").unlink()
        (src / "f").mkdir()
        (src / "f" / "inner").write_text("inner")
        await caught_up(rep, src, dst, limit=20)
        assert (dst / "d").read_text() == "now a file"
        assert (dst / "f" / "inner").read_text() == "inner"
        assert rep.health()["consecutive_failures"] == 0


async def test_directory_moved_away_and_recreated_leaves_no_stale_file(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d" / "sub").mkdir(parents=True)
    (src / "d" / "old.txt").write_text("old")
    (src / "d" / "sub" / "s.txt").write_text("s")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        (src / "d").rename(src / "d2")
        (src / "d" / "sub").mkdir(parents=True)
        (src / "d" / "new.txt").write_text("new")
        await caught_up(rep, src, dst, limit=20)
    assert not (dst / "d" / "old.txt").exists()
    assert not (dst / "d" / "sub" / "s.txt").exists()
    assert (dst / "d2" / "old.txt").read_text() == "old"


async def test_oversized_file_is_split_out_quarantined_and_its_partial_removed(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    small = [f"s{i:02d}.txt" for i in range(9)]
    for name in small:
        (src / name).write_text(name)
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    with mounted_tmpfs(tmp_path / "dst", "2m") as dst:
        # one batch, the big file in the middle of it
        spec = make_spec(src, parse_target(str(dst)), runtime, reconcile_at_start=False)
        journal = Journal("docs", bstore.db, bstore.write)
        await journal.load()
        await journal.record([*small[:4], "big.bin", *small[4:]])
        async with running(spec, bstore) as rep:
            await until(lambda: rep.journal.pending == 0 and rep.caught_up, 30, "the batch drains")
            assert all((dst / n).read_text() == n for n in small)
            assert "big.bin" in rep.quarantine
            assert not any(p.is_file() for p in dst.rglob("*") if PARTIAL_DIR in p.parts)
            assert rep.health()["consecutive_failures"] == 0
            reason = status_of(bstore)["quarantine"]["paths"][0]["reason"]
            assert "No space left on device" in reason
            # other files keep shipping; the gone big file leaves the quarantine
            (src / "after.txt").write_text("after")
            (src / "big.bin").unlink()
            await until(
                lambda: (dst / "after.txt").exists() and rep.caught_up and not len(rep.quarantine),
                30,
                "after.txt",
            )


async def test_full_pass_that_fails_on_one_file_ships_the_others(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """A file larger than the target stops rsync's whole pass (exit 11): the files changed
    while sentinel was down and sorted after it must still arrive."""
    src = tmp_path / "src"
    (src / "later").mkdir(parents=True)
    (src / "a-big.bin").write_bytes(os.urandom(3 << 20))
    names = [f"later/s{i}.txt" for i in range(5)]
    for name in names:
        (src / name).write_text(name)
    with mounted_tmpfs(tmp_path / "dst", "2m") as dst:
        (dst / "stale.txt").write_text("deleted while sentinel was down")
        spec = make_spec(src, parse_target(str(dst)), runtime)
        async with running(spec, bstore) as rep:
            await until(
                lambda: (
                    all((dst / n).exists() for n in names)
                    and rep.caught_up
                    and rep._state.last_full_ok == 1
                ),
                30,
                "the others",
            )
            assert "a-big.bin" in rep.quarantine
            assert not (dst / "stale.txt").exists()


async def test_partial_file_of_a_path_that_is_gone_is_removed(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "big.iso").write_text("v1")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        # what an interrupted transfer of a new version leaves on the target
        (dst / "sub" / PARTIAL_DIR).mkdir()
        (dst / "sub" / PARTIAL_DIR / "big.iso").write_bytes(b"\0" * 65536)
        (src / "sub" / "big.iso").unlink()
        await until(
            lambda: rep.caught_up and not (dst / "sub" / "big.iso").exists(), 10, "deletion shipped"
        )
        await until(
            lambda: not (dst / "sub" / PARTIAL_DIR / "big.iso").exists(), 10, "partial file removed"
        )
        # a whole directory gone: its partial dir is removed, not kept as a "version"
        (dst / "sub" / PARTIAL_DIR / "other.iso").write_bytes(b"\0" * 65536)
        (src / "sub").rmdir()
        await until(lambda: rep.caught_up and not (dst / "sub").exists(), 10, "sub gone")
        assert not [p for p in dst.rglob("other.iso")]


def make_sparse(path: Path) -> None:
    """100 MB with 4 KB of data in the middle."""
    with open(path, "wb") as f:
        f.truncate(100 << 20)
        f.seek(50 << 20)
        f.write(b"x" * 4096)


@pytest.mark.parametrize("live", [True, False], ids=["live-batch", "full-pass"])
async def test_sparse_files_stay_sparse_and_hard_links_stay_links(
    tmp_path: Path, bstore: Store, runtime: Path, live: bool
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    make_sparse(src / "disk.img")
    (src / "a.txt").write_text("linked")
    os.link(src / "a.txt", src / "b.txt")
    spec = make_spec(src, parse_target(str(dst)), runtime, reconcile_at_start=not live)
    if live:  # both names in one batch, as the watcher records a file and its new link
        journal = Journal("docs", bstore.db, bstore.write)
        await journal.load()
        await journal.record(["a.txt", "b.txt", "disk.img"])
    else:  # the link arrived as a copy (in a later batch): the full pass links it again
        dst.mkdir()
        for name in ("a.txt", "b.txt"):
            shutil.copy2(src / name, dst / name)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst, limit=60)
    img = os.stat(dst / "disk.img")
    assert img.st_size == 100 << 20
    assert img.st_blocks * 512 < 1 << 20  # the 4 KB of data, not 100 MB of zeros
    assert os.stat(dst / "a.txt").st_ino == os.stat(dst / "b.txt").st_ino


async def test_journal_keeps_a_row_changed_again_during_its_transfer(bstore: Store) -> None:
    """record, take, record again (the file changed while rsync ran), complete: the row
    must stay pending, or the second change would never ship."""
    journal = Journal("docs", bstore.db, bstore.write, clock=lambda: 100.0)
    await journal.load()
    await journal.record(["a.txt", "b.txt"], ts=10.0)
    taken = await journal.take(10)
    assert [e.path for e in taken] == ["a.txt", "b.txt"]
    await journal.record(["a.txt"], ts=20.0)
    await journal.complete(taken, started=15.0)
    assert journal.pending == 1
    again = await journal.take(10)
    assert [e.path for e in again] == ["a.txt"]
    assert again[0].seq > taken[0].seq
    # its unshipped change is no older than the transfer start
    assert again[0].first_seen == 15.0
    await journal.complete(again, started=30.0)
    assert journal.pending == 0


async def test_journal_migration_turns_text_rows_into_bytes(store: Store) -> None:
    from backup.schema import MIGRATIONS, OWNER

    await store.migrate(OWNER, MIGRATIONS[:1])
    async with store.write() as db:
        await db.execute("INSERT INTO backup_journal VALUES ('docs', '보고서/a.hwp', 1.0, 1)")
    await store.migrate(OWNER, MIGRATIONS)
    journal = Journal("docs", store.db, store.write)
    await journal.load()
    await journal.record(["보고서/a.hwp", os.fsdecode(b"x\xff")])
    assert sorted(e.path for e in await journal.take(10)) == [os.fsdecode(b"x\xff"), "보고서/a.hwp"]
    await journal.refresh()
    assert journal.pending == 2


def test_shipping_list_names_type_changes_and_directories(tmp_path: Path) -> None:
    (tmp_path / "was-dir").write_text("now a file")
    (tmp_path / "dir").mkdir()
    os.symlink("dir", tmp_path / "link")
    paths = ["was-dir/child", "was-dir/deeper/x", "dir", "link", "gone/a"]
    # a symlink to a directory is not followed ("link", not "link/")
    assert shipping_list(tmp_path, paths) == ["dir/", "gone", "link", "was-dir"]


def test_exact_patterns_escape_wildcards_and_fit_rsync() -> None:
    assert exact_pattern("a/b.txt") == "/a/b.txt"
    assert exact_pattern("a*/b\\c") == "/a\\*/b\\\\c"  # with a wildcard, "\" escapes
    assert exact_pattern("x\\y") == "/x\\y"  # without one, it is literal
    long = "/".join(["n" * 250] * 17)
    pattern = exact_pattern(long)
    assert len(pattern) <= PATTERN_MAX and pattern.endswith("/" + "n" * 250)
    assert skip_args(["."]) == []
    assert partial_paths(["a/b.iso", "top/", "."]) == [
        f"a/{PARTIAL_DIR}/b.iso",
        f"a/b.iso/{PARTIAL_DIR}",
        f"{PARTIAL_DIR}/top",
        f"top/{PARTIAL_DIR}",
    ]


async def test_a_directory_too_long_to_watch_warns_once_however_often_it_changes(
    tmp_path: Path, bstore: Store, runtime: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its changes (a chmod) journal it again, and it goes back aside each time: listed and
    paged once, not a new WARNING per change (found by a review)."""
    caplog.set_level(logging.INFO, logger="backup.replicator")
    base = tmp_path / ("p" * 100)  # its path below the source is short enough for rsync
    src, dst = base / "src", base / "dst"
    src.mkdir(parents=True)
    deep_dir(src, 4200)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await until(lambda: rep._state.last_full_ok == 1 and rep.caught_up, 30, "a full pass")
        await until(lambda: len(rep.quarantine) == 1, 30, "set aside")
        (refused,) = rep.quarantine.reasons
        parent, name = os.path.split(refused)
        caplog.clear()
        for mode in (0o700, 0o755, 0o700):
            fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for part in parent.split("/"):  # too long for one path: a dir fd at a time
                    deeper = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                    os.close(fd)
                    fd = deeper
                os.chmod(name, mode, dir_fd=fd)
            finally:
                os.close(fd)
            await asyncio.sleep(0.5)  # its event journaled and its batch taken
            await until(lambda: rep.caught_up, 30, "caught up")
        assert len(rep.quarantine) == 1
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
