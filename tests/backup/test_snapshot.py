"""The keeper's snapshots (issue 11): real files on disk, real attacks on the landing area.

Every snapshot must keep the bytes it was taken with, whatever the writer does to the landing
area afterwards, and must never share an inode with it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import backup.snapshot as snapshot_mod
from backup.snapshot import SnapshotError, SnapshotResult, SnapshotStore

# landing files must be older than the racy window to be trusted as unchanged
SETTLE = snapshot_mod.RACY_NS / 1e9 + 0.05


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def take(store: SnapshotStore, landing: Path, settle: bool = True) -> SnapshotResult:
    if settle:
        time.sleep(SETTLE)
    return store.take(landing, now=time.time())


def tree(root: Path) -> dict[str, bytes | str]:
    """rel -> bytes of a file, "-> target" of a symlink ("dir/" for directories)."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            if full.is_symlink():
                out[rel] = "-> " + os.readlink(full)
            elif full.is_dir():
                out[rel] = "dir/"
            else:
                out[rel] = full.read_bytes()
    return out


def inodes(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(dirpath, name)
            out[str(full.relative_to(root))] = os.lstat(full).st_ino
    return out


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    land = tmp_path / "landing"
    write(land / "docs" / "a.txt", b"alpha\n")
    write(land / "docs" / "deep" / "b.bin", bytes(range(256)) * 40)
    write(land / "c.txt", b"charlie")
    write(land / ".sentinel-versions" / "docs" / "a.txt.20261201", b"old alpha")
    write(land / ".sentinel-heartbeat.json", b'{"room": "r"}')
    return land


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "snapshots" / "room1")


def assert_no_shared_inode(store: SnapshotStore, landing: Path) -> None:
    land = set(inodes(landing).values())
    for snap in store.list():
        shared = {rel for rel, ino in inodes(snap.path).items() if ino in land}
        assert not shared, f"{snap.name} shares inodes with the landing area: {shared}"


# -- basics ------------------------------------------------------------------------------------


def test_snapshot_is_a_private_copy_of_everything_the_landing_has(
    store: SnapshotStore, landing: Path
) -> None:
    result = take(store, landing)
    snap = result.snapshot
    assert store.list() == [snap]
    assert tree(snap.path) == tree(landing)  # versions and heartbeat included
    assert (result.files, result.copied, result.linked, result.added) == (5, 5, 0, 5)
    assert result.bytes_copied == sum(
        len(v) for v in tree(landing).values() if isinstance(v, bytes)
    )
    assert stat.S_IMODE(os.stat(store.root).st_mode) == 0o700
    assert_no_shared_inode(store, landing)


def test_modes_and_mtimes_kept_plus_owner_access(store: SnapshotStore, landing: Path) -> None:
    f = landing / "docs" / "a.txt"
    os.chmod(f, 0o444)
    os.utime(f, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    os.chmod(landing / "docs" / "deep", 0o500)
    snap = take(store, landing).snapshot
    copy = snap.path / "docs" / "a.txt"
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o644  # 0o444 | u+rw
    assert os.stat(copy).st_mtime_ns == 1_600_000_000_123_456_789
    assert stat.S_IMODE(os.stat(snap.path / "docs" / "deep").st_mode) == 0o700
    assert os.stat(snap.path / "docs").st_mtime_ns == os.stat(landing / "docs").st_mtime_ns


# -- the writer attacks the landing area after a snapshot ------------------------------------


def test_overwrite_by_rename_keeps_old_bytes(store: SnapshotStore, landing: Path) -> None:
    first = take(store, landing).snapshot
    write(landing / "new.tmp", b"ransom")
    os.replace(landing / "new.tmp", landing / "c.txt")
    second = take(store, landing)
    assert (first.path / "c.txt").read_bytes() == b"charlie"
    assert (second.snapshot.path / "c.txt").read_bytes() == b"ransom"
    assert (second.changed, second.added, second.removed) == (1, 0, 0)
    assert_no_shared_inode(store, landing)


def test_in_place_rewrite_same_size_same_mtime_is_seen(store: SnapshotStore, landing: Path) -> None:
    """A write to the landing file's own inode must not reach the snapshot (own inode), and
    the next snapshot must take the new bytes even with size and mtime forged back: the
    ctime in the manifest catches what rsync's quick check would miss."""
    f = landing / "c.txt"
    before = os.stat(f)
    first = take(store, landing).snapshot
    with open(f, "r+b") as out:
        out.write(b"CHARLIE")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(f).st_ino == before.st_ino
    second = take(store, landing)
    assert (first.path / "c.txt").read_bytes() == b"charlie"
    assert (second.snapshot.path / "c.txt").read_bytes() == b"CHARLIE"
    assert second.changed == 1 and second.copied == 1
    assert_no_shared_inode(store, landing)


def test_chmod_and_truncate_do_not_reach_the_snapshot(store: SnapshotStore, landing: Path) -> None:
    first = take(store, landing).snapshot
    os.chmod(landing / "c.txt", 0)
    os.truncate(landing / "docs" / "a.txt", 0)
    take(store, landing)
    assert stat.S_IMODE(os.stat(first.path / "c.txt").st_mode) == 0o644
    assert (first.path / "c.txt").read_bytes() == b"charlie"
    assert (first.path / "docs" / "a.txt").read_bytes() == b"alpha\n"
    newest = store.newest()
    assert newest is not None
    assert stat.S_IMODE(os.stat(newest.path / "c.txt").st_mode) == 0o600  # 0 | u+rw


def test_delete_everything_keeps_history_and_reports_mass_removal(
    store: SnapshotStore, landing: Path, tmp_path: Path
) -> None:
    expected = tree(landing)
    first = take(store, landing)
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["rsync", "-r", "--delete", f"{empty}/", f"{landing}/"], check=True)
    assert not any(landing.iterdir())
    second = take(store, landing)
    assert tree(first.snapshot.path) == expected
    assert second.files == 0
    assert second.previous_files == first.files == second.removed == 5
    # and after a keeper restart (no manifest) the counts are the same
    third = SnapshotStore(store.root).take(landing, now=time.time())
    assert (third.previous_files, third.removed) == (0, 0)
    assert len(store.list()) == 3


def test_mass_removal_counted_after_restart(store: SnapshotStore, landing: Path) -> None:
    take(store, landing)
    for p in [landing / "c.txt", landing / "docs" / "a.txt"]:
        p.unlink()
    result = SnapshotStore(store.root).take(landing, now=time.time())
    assert (result.previous_files, result.removed, result.files) == (5, 2, 3)


# -- unchanged files: linked from the previous snapshot ---------------------------------------


def test_unchanged_files_share_inodes_with_previous_snapshot_only(
    store: SnapshotStore, landing: Path
) -> None:
    first = take(store, landing).snapshot
    write(landing / "docs" / "deep" / "b.bin", b"x" * 10_000)
    second = take(store, landing)
    old, new = inodes(first.path), inodes(second.snapshot.path)
    assert new["docs/a.txt"] == old["docs/a.txt"]
    assert new["c.txt"] == old["c.txt"]
    assert new["docs/deep/b.bin"] != old["docs/deep/b.bin"]
    assert (second.linked, second.copied, second.bytes_copied) == (4, 1, 10_000)
    # real disk added: only inodes that exist in the new snapshot alone, i.e. the changed file
    new_only = [
        p for p in second.snapshot.path.rglob("*") if p.is_file() and os.lstat(p).st_nlink == 1
    ]
    assert new_only == [second.snapshot.path / "docs" / "deep" / "b.bin"]
    assert (first.path / "docs" / "deep" / "b.bin").read_bytes() == bytes(range(256)) * 40
    assert_no_shared_inode(store, landing)


def test_after_restart_quick_check_links_unchanged_and_copies_changed(
    store: SnapshotStore, landing: Path
) -> None:
    first = take(store, landing).snapshot
    write(landing / "c.txt", b"charlie, longer now")
    fresh = SnapshotStore(store.root)  # keeper restarted: no manifest in memory
    result = take(fresh, landing)
    old, new = inodes(first.path), inodes(result.snapshot.path)
    assert new["docs/a.txt"] == old["docs/a.txt"]
    assert new["c.txt"] != old["c.txt"]
    assert (result.snapshot.path / "c.txt").read_bytes() == b"charlie, longer now"
    assert (result.linked, result.copied, result.changed, result.previous_files) == (4, 1, 1, 5)


def test_recently_changed_file_is_not_trusted_as_unchanged(
    store: SnapshotStore, landing: Path
) -> None:
    """A file changed within the racy window of a take may change again in the same
    timestamp tick unseen; the next take copies it instead of linking it."""
    time.sleep(SETTLE)
    write(landing / "c.txt", b"fresh")
    first = store.take(landing, now=time.time())  # c.txt is racy, the rest is settled
    second = take(store, landing)
    old, new = inodes(first.snapshot.path), inodes(second.snapshot.path)
    assert new["c.txt"] != old["c.txt"]
    assert new["docs/a.txt"] == old["docs/a.txt"]
    assert second.changed == 0  # copied again, but not reported as a change


def test_added_file_counted(store: SnapshotStore, landing: Path) -> None:
    take(store, landing)
    write(landing / "docs" / "new.txt", b"n")
    result = take(store, landing)
    assert (result.added, result.changed, result.removed, result.files) == (1, 0, 0, 6)


# -- hostile landing area ----------------------------------------------------------------------


def test_hostile_names(store: SnapshotStore, landing: Path) -> None:
    raw = os.fsencode(landing)
    names = [b"line\nbreak", b"bad\xff\xfeutf8", b"-rf", b"with space ", b"--delete", b"*"]
    for i, name in enumerate(names):
        with open(raw + b"/docs/" + name, "wb") as f:
            f.write(b"%d" % i)
    os.mkdir(raw + b"/dir\n\xff")
    with open(raw + b"/dir\n\xff/-x", "wb") as f:
        f.write(b"inside")
    first = take(store, landing)
    snap = os.fsencode(first.snapshot.path)
    for i, name in enumerate(names):
        with open(snap + b"/docs/" + name, "rb") as f:
            assert f.read() == b"%d" % i
    with open(snap + b"/dir\n\xff/-x", "rb") as f:
        assert f.read() == b"inside"
    second = take(store, landing)  # all unchanged, all linked
    assert second.copied == 0 and second.changed == 0
    assert second.linked == second.files == first.files


def test_symlink_to_outside_is_stored_as_symlink(
    store: SnapshotStore, landing: Path, tmp_path: Path
) -> None:
    secret = write(tmp_path / "secret", b"keeper host secret")
    os.symlink(secret, landing / "docs" / "link")
    os.symlink("/", landing / "root")
    snap = take(store, landing).snapshot
    assert os.readlink(snap.path / "docs" / "link") == str(secret)
    assert (snap.path / "docs" / "link").is_symlink()
    assert os.readlink(snap.path / "root") == "/"
    assert not any(
        b"keeper host secret" in v for v in tree(snap.path).values() if isinstance(v, bytes)
    )


def swap_after_listing(
    monkeypatch: pytest.MonkeyPatch, landing: Path, swap: Callable[[], None]
) -> None:
    """Makes the writer win a race: once the keeper has listed (and stat'ed) the landing
    area's top directory, `swap()` changes what a listed name is before it is opened."""
    real_scandir = os.scandir
    top_ino = os.stat(landing).st_ino

    class Listing(list):  # type: ignore[type-arg]
        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def scandir(fd):  # type: ignore[no-untyped-def]
        with real_scandir(fd) as it:
            entries = list(it)
        if isinstance(fd, int) and os.fstat(fd).st_ino == top_ino:
            for e in entries:
                e.stat(follow_symlinks=False)  # cached: the keeper saw what was listed
            swap()
        return Listing(entries)

    monkeypatch.setattr(os, "scandir", scandir)


def test_directory_swapped_for_symlink_mid_walk_is_not_followed(
    store: SnapshotStore, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer lists docs/ as a directory, then swaps it for a symlink to / before the
    keeper descends: the fd-relative O_NOFOLLOW open refuses, nothing of / is read."""

    def swap() -> None:
        shutil.rmtree(landing / "docs")
        os.symlink("/", landing / "docs")

    swap_after_listing(monkeypatch, landing, swap)
    result = take(store, landing)
    monkeypatch.undo()
    snap = result.snapshot.path
    assert not (snap / "docs" / "etc").exists()
    assert not (snap / "docs" / "proc").exists()
    assert any(s.startswith("docs/") for s in result.skipped), result.skipped
    assert (snap / "c.txt").read_bytes() == b"charlie"


def test_file_swapped_for_fifo_is_not_opened(
    store: SnapshotStore, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listed as a file, a FIFO by the time it is opened: O_NONBLOCK keeps the open from
    blocking the keeper and the fstat check skips it."""

    def swap() -> None:
        os.unlink(landing / "c.txt")
        os.mkfifo(landing / "c.txt")

    swap_after_listing(monkeypatch, landing, swap)
    result = take(store, landing)
    monkeypatch.undo()
    assert not (result.snapshot.path / "c.txt").exists()
    assert any(s.startswith("c.txt") for s in result.skipped), result.skipped


def test_fifo_socket_device_skipped(store: SnapshotStore, landing: Path) -> None:
    os.mkfifo(landing / "fifo")
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(landing / "sock"))
    has_dev = True
    try:
        os.mknod(landing / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        has_dev = False
    try:
        result = take(store, landing)
    finally:
        sock.close()
    assert "fifo (fifo)" in result.skipped and "sock (socket)" in result.skipped
    assert ("null (device)" in result.skipped) == has_dev
    for name in ("fifo", "sock", "null"):
        assert not os.path.lexists(result.snapshot.path / name)


def test_partial_dirs_left_out_but_names_like_rsync_temp_files_kept(
    store: SnapshotStore, landing: Path
) -> None:
    write(landing / "docs" / ".a.txt.Xy3k9Q", b"half of a transfer")
    write(landing / "docs" / ".env.backup", b"a real document shaped like a temp name")
    write(landing / "docs" / ".rsync-partial" / "a.txt", b"partial")
    write(landing / ".~tmp~" / "c.txt", b"delayed")
    snap = take(store, landing).snapshot
    # a real ".env.backup" has the shape of rsync's ".<name>.XXXXXX": nothing of that shape
    # is left out (a half transfer kept costs bytes, a document left out is lost)
    assert (snap.path / "docs" / ".env.backup").read_bytes().startswith(b"a real document")
    assert (snap.path / "docs" / ".a.txt.Xy3k9Q").exists()
    assert not (snap.path / "docs" / ".rsync-partial").exists()
    assert not (snap.path / ".~tmp~").exists()
    assert (snap.path / ".sentinel-heartbeat.json").exists()


# -- crash and the store -----------------------------------------------------------------------


def test_crash_mid_take_leaves_nothing_listed_and_is_cleaned(
    store: SnapshotStore, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = take(store, landing).snapshot
    leftover = store.root / ".tmp-20261202T000000.000000Z"
    write(leftover / "half.txt", b"half")
    write(store.root / ".tmp-del-20261101T000000.000000Z" / "x", b"x")

    def boom(fd: int) -> None:
        raise OSError(5, "disk died")

    monkeypatch.setattr(snapshot_mod, "_syncfs", boom)
    with pytest.raises(SnapshotError, match="disk died"):
        take(store, landing)
    monkeypatch.undo()
    assert store.list() == [first]
    second = take(store, landing)
    assert store.list() == [first, second.snapshot]
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".tmp-")] == []


def test_missing_landing_is_a_clear_error(store: SnapshotStore, tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="cannot open the landing area"):
        store.take(tmp_path / "nope", now=time.time())
    os.symlink(tmp_path, tmp_path / "landing-link")
    with pytest.raises(SnapshotError, match="cannot open the landing area"):
        store.take(tmp_path / "landing-link", now=time.time())


def test_list_newest_and_at(store: SnapshotStore, landing: Path) -> None:
    times = [1_800_000_000.0, 1_800_000_600.5, 1_800_003_600.25]
    snaps = [store.take(landing, now=t).snapshot for t in times]
    (store.root / "not-a-snapshot").mkdir()
    os.symlink(snaps[0].path, store.root / "20991231T000000.000000Z")
    assert store.list() == snaps
    assert [s.ts for s in snaps] == times
    assert snaps[0].name == "20270115T080000.000000Z"
    assert store.newest() == snaps[-1]
    assert store.at(times[0] - 1) is None
    assert store.at(times[0]) == snaps[0]
    assert store.at(times[1] - 0.001) == snaps[0]
    assert store.at(times[1] + 100) == snaps[1]
    assert store.at(times[2] + 1e6) == snaps[2]


def test_names_never_collide_or_go_backwards(store: SnapshotStore, landing: Path) -> None:
    a = store.take(landing, now=1_800_000_000.0).snapshot
    b = store.take(landing, now=1_800_000_000.0).snapshot
    c = store.take(landing, now=1_700_000_000.0).snapshot  # clock stepped back
    assert a.ts < b.ts < c.ts
    assert store.list() == [a, b, c]


def test_takes_on_one_root_are_serialized_across_processes(
    store: SnapshotStore, landing: Path
) -> None:
    """A second keeper process on the same root waits for the first instead of removing its
    in-progress `.tmp-` dir."""
    import fcntl

    fd = os.open(store.root, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # stands for another process mid-take
    script = (
        "import sys, time; from pathlib import Path; from backup.snapshot import "
        "SnapshotStore; SnapshotStore(Path(sys.argv[1])).take(Path(sys.argv[2]), "
        "now=time.time())"
    )
    import sys

    proc = subprocess.Popen([sys.executable, "-c", script, str(store.root), str(landing)])
    try:
        time.sleep(1.0)
        assert proc.poll() is None and store.list() == []
    finally:
        os.close(fd)  # releases the lock
    assert proc.wait(timeout=30) == 0
    assert len(store.list()) == 1
