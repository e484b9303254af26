"""A version costs what changed: an append leaves no full copy per close (issue 18), a
rewrite still keeps the replaced content, and point-in-time restores still find it."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from backup.append_record import RECORD_DIR, AppendRecord, rebuild, record_path, remove_beneath
from backup.append_versions import drop_in
from backup.restore import restore
from backup.target import VERSIONS_DIR
from backup.transport import parse_target
from backup.versions import prune_versions
from sentinel.cli.main import main
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running
from tests.fixtures.remote import RsyncDaemon

KIB = 1024
MIB = 1024 * KIB


def _versions(replica: Path) -> dict[str, list[bytes]]:
    """Kept versions by path (relative to the replica), oldest stamp first."""
    out: dict[str, list[bytes]] = {}
    root = replica / VERSIONS_DIR
    if not root.exists():
        return out
    for stamp_dir in sorted(root.iterdir()):
        for p in sorted(stamp_dir.rglob("*")):
            if p.parts[len(stamp_dir.parts)] == RECORD_DIR:
                continue  # an append record, no version
            if p.is_file() and not p.is_symlink():
                out.setdefault(p.relative_to(stamp_dir).as_posix(), []).append(p.read_bytes())
    return out


def _bytes_on_replica(replica: Path) -> int:
    """Bytes of every regular file under the replica, versions included (a file with
    several names counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for here, _dirs, files in os.walk(replica):
        for name in files:
            st = os.lstat(os.path.join(here, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


async def test_a_growing_log_costs_at_most_twice_its_final_size(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """The issue's pattern: 10 MB grown by 100 KiB per close, each close shipped. Every
    version used to be a full copy (12 ships: ~130 MB); now replica plus versions stay
    within twice the final file."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    log_file = src / "app.log"
    log_file.write_bytes(os.urandom(10 * MIB))
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        for _ in range(12):
            with log_file.open("ab") as f:
                f.write(os.urandom(100 * KIB))
            await caught_up(rep, src, dst)
        shipped = rep.transfers
    final = log_file.stat().st_size
    assert shipped >= 12  # every append went out on its own: the pattern was exercised
    assert (dst / "app.log").read_bytes() == log_file.read_bytes()
    assert _bytes_on_replica(dst) <= 2 * final, _versions(dst).keys()
    assert "app.log" not in _versions(dst)
    # no stamp directory is left behind empty
    versions = dst / VERSIONS_DIR
    assert not versions.exists() or all(any(d.iterdir()) for d in versions.iterdir())


async def test_rewrites_keep_their_version_and_restore_as_of_finds_it(
    tmp_path: Path, bstore: Store, runtime: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same prefix with a changed middle, a truncation, a same-size rewrite: each replaced
    content is a real earlier state, kept, and `sentinel backup restore --as-of` returns
    it. An append shipped in the same batches loses its version."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    head, middle, tail = b"H" * 300 * KIB, b"original middle", b"T" * 200 * KIB
    (src / "doc.db").write_bytes(head + middle + tail)
    (src / "short.txt").write_bytes(b"a long line that will be cut")
    (src / "same.txt").write_bytes(b"same size 1")
    (src / "grows.log").write_bytes(b"line 1\n")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        await asyncio.sleep(0.05)
        as_of = time.time()
        await asyncio.sleep(0.05)
        # the middle rewritten and the file grown: the old content is no prefix of the new
        (src / "doc.db").write_bytes(head + b"CHANGED middle!" + tail + b"more")
        (src / "short.txt").write_bytes(b"a long line")  # truncated: a prefix, but shorter
        (src / "same.txt").write_bytes(b"same size 2")
        with (src / "grows.log").open("ab") as f:
            f.write(b"line 2\n")
        await caught_up(rep, src, dst)

    kept = _versions(dst)
    assert kept["doc.db"] == [head + middle + tail]
    assert kept["short.txt"] == [b"a long line that will be cut"]
    assert kept["same.txt"] == [b"same size 1"]
    assert "grows.log" not in kept

    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[replication]]\nname = "docs"\nsource = "{src}"\ntarget = "{dst}"\n'
    )
    out = tmp_path / "restored"
    cmd = ["-c", str(cfg), "backup", "restore"]
    as_of_cmd = [*cmd, "--to", str(out), "--as-of", str(as_of)]
    assert await asyncio.to_thread(main, as_of_cmd) == 0, capsys.readouterr()  # main runs a loop
    assert (out / "doc.db").read_bytes() == head + middle + tail
    assert (out / "short.txt").read_bytes() == b"a long line that will be cut"
    assert (out / "same.txt").read_bytes() == b"same size 1"
    # the appended file's version went, its record brings its first line back
    assert (out / "grows.log").read_bytes() == b"line 1\n"


async def test_versions_prune_still_removes_what_is_kept(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    (src / "a.txt").write_bytes(b"first")
    target = parse_target(str(dst))
    spec = make_spec(src, target, runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        (src / "a.txt").write_bytes(b"other")
        await caught_up(rep, src, dst)
    assert _versions(dst) == {"a.txt": [b"first"]}
    pruned = await prune_versions(target, runtime, older_than=time.time() + 1)
    assert len(pruned) == 1
    assert _versions(dst) == {}


def _stamp_dir(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "replica"
    stamp_dir = root / VERSIONS_DIR / "20261202T000000.000000Z"
    stamp_dir.mkdir(parents=True)
    return root, stamp_dir


def test_only_a_strict_prefix_below_the_cap_is_dropped(tmp_path: Path) -> None:
    root, stamp_dir = _stamp_dir(tmp_path)
    cases = {
        # name: (version, current), dropped?
        "append": ((b"x" * 5000, b"x" * 5000 + b"y"), True),
        "empty": ((b"", b"anything"), True),
        "late-diff": ((b"x" * 4999 + b"z", b"x" * 5000 + b"y"), False),
        "truncated": ((b"abcdef", b"abc"), False),
        "same": ((b"abc", b"abc"), False),
        "big": ((b"x" * 9000, b"x" * 9001), False),  # over the cap of this call
    }
    for name, ((version, current), _) in cases.items():
        (root / "d").mkdir(exist_ok=True)
        (root / "d" / name).write_bytes(current)
        (stamp_dir / "d").mkdir(exist_ok=True)
        (stamp_dir / "d" / name).write_bytes(version)
    (stamp_dir / "gone.txt").write_bytes(b"deleted since")  # no current file: kept
    dropped = drop_in(root, stamp_dir, cap=8192)
    assert sorted(dropped.paths) == ["d/append", "d/empty"]
    assert dropped.bytes == 5000
    left = {p.name for p in stamp_dir.rglob("*") if p.is_file()}
    assert left == {n for n, (_, gone) in cases.items() if not gone} | {
        "gone.txt",
        record_path(stamp_dir).name,
    }
    # a second pass over the same stamp leaves the record alone and drops nothing more
    assert drop_in(root, stamp_dir, cap=8192).paths == []
    assert record_path(stamp_dir).exists()


def test_links_and_special_files_keep_their_version(tmp_path: Path) -> None:
    """A directory replaced by a link since: the path now leads elsewhere, not to the file
    the version was of; a version that is a link or a FIFO is no content to compare."""
    root, stamp_dir = _stamp_dir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "f").write_bytes(b"prefix and more")
    os.symlink(elsewhere, root / "d")
    (stamp_dir / "d").mkdir()
    (stamp_dir / "d" / "f").write_bytes(b"prefix")
    (root / "fifo").write_bytes(b"some content")
    os.mkfifo(stamp_dir / "fifo")
    (root / "link").write_bytes(b"target plus")
    os.symlink("target", stamp_dir / "link")
    dropped = drop_in(root, stamp_dir)
    assert dropped.paths == []
    assert (stamp_dir / "d" / "f").exists() and (stamp_dir / "fifo").exists()


def test_emptied_stamp_dirs_go_and_the_others_stay(tmp_path: Path) -> None:
    root, stamp_dir = _stamp_dir(tmp_path)
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "log").write_bytes(b"12345")
    (root / "keep").write_bytes(b"new")
    (stamp_dir / "a" / "b").mkdir(parents=True)
    (stamp_dir / "a" / "b" / "log").write_bytes(b"123")
    drop_in(root, stamp_dir)
    # only the record of what went stays
    assert [p for p in stamp_dir.rglob("*") if p.is_file()] == [record_path(stamp_dir)]

    shutil.rmtree(stamp_dir)
    stamp_dir.mkdir()
    (stamp_dir / "a" / "b").mkdir(parents=True)
    (stamp_dir / "a" / "b" / "log").write_bytes(b"123")
    (stamp_dir / "keep").write_bytes(b"old")
    drop_in(root, stamp_dir)
    assert not (stamp_dir / "a").exists()
    assert (stamp_dir / "keep").read_bytes() == b"old"


def _config(tmp_path: Path, src: Path, dst: Path) -> Path:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[replication]]\nname = "docs"\nsource = "{src}"\ntarget = "{dst}"\n'
    )
    return cfg


async def _restore_as_of(
    cfg: Path, out: Path, as_of: float, capsys: pytest.CaptureFixture[str], *path: str
) -> tuple[str, str]:
    """`sentinel backup restore --as-of` (main runs its own loop: in a thread); its stdout
    and stderr."""
    capsys.readouterr()
    argv = ["-c", str(cfg), "backup", "restore", *path, "--to", str(out), "--as-of", str(as_of)]
    code = await asyncio.to_thread(main, argv)
    got = capsys.readouterr()
    assert code == 0, got
    return got.out, got.err


def _stamps(dst: Path) -> list[Path]:
    return sorted((dst / VERSIONS_DIR).iterdir())


async def test_restore_as_of_between_appends_returns_the_content_then(
    tmp_path: Path, bstore: Store, runtime: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A chain of dropped versions: as of each moment between two appends, the restore
    returns that moment's bytes and mtime (the oldest record's first N bytes of the next
    one's, of ... the replica's file), for the whole tree and for one path."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "logs").mkdir(parents=True)
    app, arc = src / "app.log", src / "logs" / "db.arc"
    app.write_bytes(os.urandom(3000))
    arc.write_bytes(b"arc 0\n")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    states: list[tuple[float, dict[str, tuple[bytes, int]]]] = []
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        for i in range(4):
            await asyncio.sleep(0.02)
            now = {
                f.relative_to(src).as_posix(): (f.read_bytes(), f.stat().st_mtime_ns)
                for f in (app, arc)
            }
            states.append((time.time(), now))
            await asyncio.sleep(0.02)
            with app.open("ab") as f:
                f.write(os.urandom(1000 + i))
            with arc.open("ab") as f:
                f.write(f"arc {i + 1}\n".encode())
            if i == 1:
                (src / "later.txt").write_bytes(b"created after the first two moments")
            await caught_up(rep, src, dst)
    assert _versions(dst) == {}  # every version was an append: only records are kept
    assert len(_stamps(dst)) == 4

    cfg = _config(tmp_path, src, dst)
    for n, (as_of, expected) in enumerate(states):
        out = tmp_path / f"as-of-{n}"
        stdout, stderr = await _restore_as_of(cfg, out, as_of, capsys)
        for rel, (content, mtime_ns) in expected.items():
            assert (out / rel).read_bytes() == content, (n, rel)
            assert (out / rel).stat().st_mtime_ns == mtime_ns, (n, rel)
        assert "2 of them rebuilt" in stdout, stdout
        assert stderr == ""
        # a file created after the moment is left out, and the count says so
        assert (out / "later.txt").exists() == (n >= 2)
        assert ("1 files left out: only content written after then" in stdout) == (n < 2)
    out = tmp_path / "one-path"
    await _restore_as_of(cfg, out, states[1][0], capsys, "logs/db.arc")
    assert [p.name for p in out.rglob("*") if p.is_file()] == ["db.arc"]
    assert (out / "logs" / "db.arc").read_bytes() == b"arc 0\narc 1\n"


async def test_a_record_whose_later_content_is_gone_is_named_not_garbage(
    tmp_path: Path, bstore: Store, runtime: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The record says "the first N bytes of the next content". When that content is no
    longer kept (its version set removed by hand, the next one a rewrite), the first N
    bytes of what is there now are not the file as it was: it is left out and named."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    app = src / "app.log"
    app.write_bytes(b"one\n")
    (src / "other.txt").write_bytes(b"unchanged")
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        await asyncio.sleep(0.02)
        as_of = time.time()
        await asyncio.sleep(0.02)
        with app.open("ab") as f:
            f.write(b"two\n")  # dropped: a record
        await caught_up(rep, src, dst)
        app.write_bytes(b"ONE\ntwo\nthree\n")  # a rewrite: "one\ntwo\n" kept
        await caught_up(rep, src, dst)
    appended, rewritten = _stamps(dst)
    assert record_path(appended).exists()
    assert _versions(dst) == {"app.log": [b"one\ntwo\n"]}
    cfg = _config(tmp_path, src, dst)
    await _restore_as_of(cfg, tmp_path / "whole", as_of, capsys)
    assert (tmp_path / "whole" / "app.log").read_bytes() == b"one\n"

    shutil.rmtree(rewritten)  # the next content is gone: the replica's file follows
    out = tmp_path / "out"
    stdout, stderr = await _restore_as_of(cfg, out, as_of, capsys)
    assert not (out / "app.log").exists()  # not "ONE\n"
    assert (out / "other.txt").read_bytes() == b"unchanged"
    assert "restored 1 files" in stdout
    assert "left out app.log: its later content does not start with it" in stderr, stderr

    record_path(appended).write_text("{not json")
    stdout, stderr = await _restore_as_of(cfg, tmp_path / "out2", as_of, capsys)
    assert not (tmp_path / "out2" / "app.log").exists()
    assert f"version set {appended.name}: its append record cannot be read" in stderr


async def test_pruning_a_stamp_prunes_its_records(
    tmp_path: Path, bstore: Store, runtime: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    app = src / "app.log"
    app.write_bytes(b"a\n")
    target = parse_target(str(dst))
    spec = make_spec(src, target, runtime)
    moments = []
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        for line in (b"b\n", b"c\n"):
            await asyncio.sleep(0.02)
            moments.append(time.time())
            await asyncio.sleep(0.02)
            with app.open("ab") as f:
                f.write(line)
            await caught_up(rep, src, dst)
    first, second = _stamps(dst)
    pruned = await prune_versions(target, runtime, older_than=moments[1])
    assert pruned == [first.name]
    assert not first.exists() and record_path(second).exists()
    cfg = _config(tmp_path, src, dst)
    # the moment the pruned record described: only newer content is kept, and it is said
    stdout, stderr = await _restore_as_of(cfg, tmp_path / "old", moments[0], capsys)
    assert not (tmp_path / "old" / "app.log").exists()
    assert "1 files left out: only content written after then" in stdout
    assert stderr == ""  # the record went with its stamp: nothing points at it any more
    stdout, _ = await _restore_as_of(cfg, tmp_path / "kept", moments[1], capsys)
    assert (tmp_path / "kept" / "app.log").read_bytes() == b"a\nb\n"

    await prune_versions(target, runtime, older_than=time.time() + 1)
    assert list((dst / VERSIONS_DIR).iterdir()) == []


def test_rebuild_takes_only_a_regular_file_that_starts_with_the_bytes(tmp_path: Path) -> None:
    """What a restore finds at the path is checked before it is cut: the digest, the
    length, the kind, no link on the way; on success the record's attributes are set."""
    start = b"0123456789"
    record = AppendRecord(
        length=len(start),
        sha256=hashlib.sha256(start).hexdigest(),
        mtime_ns=1_700_000_000_123_456_789,
        mode=0o100640,
        uid=os.getuid(),
        gid=os.getgid(),
    )
    root = tmp_path / "dest"
    (root / "d").mkdir(parents=True)
    (root / "d" / "ok").write_bytes(start + b" and more")
    assert rebuild(root, "d/ok", record) is None
    st = (root / "d" / "ok").stat()
    assert (root / "d" / "ok").read_bytes() == start
    assert (st.st_mtime_ns, st.st_mode) == (record.mtime_ns, record.mode)

    (root / "d" / "other").write_bytes(b"9123456789 and more")
    (root / "d" / "short").write_bytes(start[:5])
    (root / "d" / "dir").mkdir()
    os.symlink(root / "d", root / "link")
    cases = {
        "d/other": "does not start with it",
        "d/short": "shorter",
        "d/dir": "cannot be opened",
        "link/ok": "cannot be opened",
        "d/missing": "no longer kept",
    }
    for rel, why in cases.items():
        assert why in (rebuild(root, rel, record) or ""), rel
    assert (root / "d" / "other").read_bytes() == b"9123456789 and more"  # left as it was
    remove_beneath(root, "d/dir")  # a directory is no such file: it stays
    assert (root / "d" / "dir").is_dir()
    with pytest.raises(OSError):
        remove_beneath(root, "link/ok")
    assert (root / "d" / "ok").exists()


async def test_records_are_read_through_a_remote_transport(
    tmp_path: Path, bstore: Store, runtime: Path, rsyncd: RsyncDaemon
) -> None:
    """A replica written locally (records there) and read back through an rsync daemon
    serving the same directory: the records come over the wire like the versions."""
    src, replica = tmp_path / "src", rsyncd.module_dir / "replica"
    src.mkdir()
    app = src / "app.log"
    app.write_bytes(b"first line\n")
    spec = make_spec(src, parse_target(str(replica)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, replica)
        await asyncio.sleep(0.02)
        as_of = time.time()
        await asyncio.sleep(0.02)
        with app.open("ab") as f:
            f.write(b"second line\n")
        await caught_up(rep, src, replica)
    assert _versions(replica) == {}
    remote = parse_target(rsyncd.url(), password_file=rsyncd.password_file)
    out = tmp_path / "out"
    result = await restore(remote, runtime, out, as_of=as_of)
    assert (out / "app.log").read_bytes() == b"first line\n"
    assert result.rebuilt == 1 and result.unrebuilt == [] and result.problems == []
