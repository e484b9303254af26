"""`sentinel receive DIR` spoken to directly, as a compromised or broken sender would:
it writes only plain files below DIR, keeps what it replaces, refuses a replica whose
marker is not the sender's, and stops with a reason on malformed input."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backup.markers import TARGET_MARKER, target_text
from backup.stream_frames import MAX_ENTRIES, PATH_MAX, VERSION, encode
from backup.target import VERSIONS_DIR
from backup.versions import stamp

TS = 1_790_000_000.0


def _file(path: str, data: bytes, mode: int = 0o100644) -> bytes:
    header = {"op": "file", "path": path, "mode": mode, "uid": 0, "gid": 0}
    return encode({**header, "size": len(data), "mtime_ns": 1_700_000_000 * 10**9}, data)


def _session(
    root: Path, *frames: bytes, name: str = "docs"
) -> tuple[int, list[dict[str, Any]], str]:
    """Runs the receiver on one session's input; (exit code, its replies, stderr)."""
    data = encode({"op": "hello", "version": VERSION, "marker": target_text(name)})
    data += b"".join(frames)
    done = subprocess.run(
        [sys.executable, "-m", "sentinel", "receive", str(root)],
        input=data,
        capture_output=True,
        timeout=60,
    )
    replies, out = [], done.stdout

    while out:
        (n,) = struct.unpack(">I", out[:4])
        replies.append(json.loads(out[4 : 4 + n]))
        out = out[4 + n :]
    return done.returncode, replies, done.stderr.decode()


def _replica(tmp_path: Path, name: str = "docs") -> Path:
    root = tmp_path / "replica"
    root.mkdir()
    (root / TARGET_MARKER).write_text(target_text(name))
    return root


def _batch(*entries: bytes, dirs: dict[str, Any] | None = None) -> bytes:
    return (
        encode({"op": "batch", "ts": TS})
        + b"".join(entries)
        + encode({"op": "end", "dirs": dirs or {}})
    )


def test_writes_plain_files_and_keeps_what_it_replaces(tmp_path: Path) -> None:
    root = _replica(tmp_path)
    (root / "a.txt").write_text("old")
    code, replies, err = _session(
        root,
        _batch(_file("a.txt", b"new"), _file("b.txt", b"bee")),
        _batch(encode({"op": "delete", "path": "b.txt"})),
    )
    assert code == 0, err
    assert replies[1]["done"] == ["a.txt", "b.txt"] and not replies[1]["rest"]
    assert (root / "a.txt").read_bytes() == b"new"
    assert not (root / "b.txt").exists()
    stamp_dir = next((root / VERSIONS_DIR).iterdir())
    assert (stamp_dir / "a.txt").read_bytes() == b"old"
    assert (stamp_dir / "b.txt").read_bytes() == b"bee"


def test_names_that_leave_the_root_or_touch_protected_ones_are_handed_back(
    tmp_path: Path,
) -> None:
    root = _replica(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)  # planted by an earlier rsync run of a symlink
    hostile = [
        "../escape.txt",
        "/etc/escape.txt",
        "a/../../escape.txt",
        "link/escape.txt",
        f"{VERSIONS_DIR}/x.txt",
        TARGET_MARKER,
        ".rsync-partial/x",
        "d/.rsync-partial/x",
        "nul\0byte",
        "",
    ]
    code, replies, err = _session(root, _batch(*(_file(p, b"evil") for p in hostile)))
    assert code == 0, err
    assert replies[1]["done"] == []
    assert sorted(replies[1]["rest"]) == sorted(hostile)
    assert not list(outside.iterdir())
    assert not (tmp_path / "escape.txt").exists()
    assert (root / TARGET_MARKER).read_text() == target_text("docs")
    assert not (root / VERSIONS_DIR).exists()


def test_a_replica_whose_marker_names_another_replication_is_not_written(
    tmp_path: Path,
) -> None:
    root = _replica(tmp_path, name="other-room")
    code, replies, _err = _session(root, _batch(_file("a.txt", b"x")))
    assert code == 0
    assert replies[1]["refused"] and replies[1]["rest"] == ["a.txt"]
    assert not (root / "a.txt").exists()
    (root / TARGET_MARKER).unlink()  # an empty mount point: no marker at all
    code, replies, _err = _session(root, _batch(_file("a.txt", b"x")))
    assert "no .sentinel-target" in replies[1]["refused"]
    assert not (root / "a.txt").exists()


def test_malformed_input_ends_the_session_with_a_reason(tmp_path: Path) -> None:
    root = _replica(tmp_path)
    cases = {
        "huge header": struct.pack(">I", 1 << 31),
        "truncated": encode({"op": "batch", "ts": TS}) + _file("a.txt", b"abcdef")[:-3],
        "not json": struct.pack(">I", 3) + b"{{{",
        "size over the cap": encode({"op": "batch", "ts": TS})
        + encode({"op": "file", "path": "a", "mode": 0, "uid": 0, "gid": 0, "size": 1 << 40}),
        "a bool for an int": encode({"op": "batch", "ts": True}),
        "no time": encode({"op": "batch", "ts": 1e300}),
    }
    for what, frames in cases.items():
        code, _replies, err = _session(root, frames)
        assert code == 1, what
        assert err.startswith("sentinel receive: "), (what, err)
        assert "Traceback" not in err, (what, err)
    assert sorted(os.listdir(root)) == [".rsync-partial", TARGET_MARKER]


def test_a_second_receiver_on_the_same_replica_is_refused(tmp_path: Path) -> None:
    root = _replica(tmp_path)
    first = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "receive", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert first.stdin is not None and first.stdout is not None
        first.stdin.write(encode({"op": "hello", "version": VERSION, "marker": "x"}))
        first.stdin.flush()
        first.stdout.read(4)  # its hello: it holds the replica now
        code, _replies, err = _session(root)
        assert code == 1
        assert "another sentinel receive is writing" in err
    finally:
        first.kill()
        first.wait()


def test_the_receiver_needs_only_the_standard_library() -> None:
    """The backup host may have sentinel's code but not its dependencies' versions (or runs
    it with Debian's python3): `sentinel receive` imports nothing beyond the stdlib."""
    probe = (
        "import sys, sentinel.cli.main, sentinel.cli.receive, backup.receiver\n"
        "ours = {'sentinel', 'backup', 'common', '__main__', '_distutils_hack'}\n"
        "tops = {m.split('.')[0] for m in sys.modules if not m.startswith('__editable__')}\n"
        "print(' '.join(sorted(tops - set(sys.stdlib_module_names) - ours)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_a_delete_never_unlinks_through_a_planted_partial_dir_link(tmp_path: Path) -> None:
    root = _replica(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("not the replica's")
    (root / "sub").mkdir()
    (root / "sub" / "victim").write_text("replica copy")
    (root / "sub" / ".rsync-partial").symlink_to(outside)  # the rsync key can plant it
    sub = [0o40755, 0, 0, (root / "sub").stat().st_mtime_ns]
    code, replies, err = _session(
        root, _batch(encode({"op": "delete", "path": "sub/victim"}), dirs={"sub": sub})
    )
    assert code == 0, err
    assert replies[1]["done"] == ["sub/victim"]
    assert (outside / "victim").read_text() == "not the replica's"
    stamp_dir = next((root / VERSIONS_DIR).iterdir())
    assert (stamp_dir / "sub" / "victim").read_text() == "replica copy"


def test_implied_directories_are_not_reached_through_a_link_swapped_in(tmp_path: Path) -> None:
    """The file is written, then (before the batch ends) its directory's parent becomes a
    link elsewhere: the directories' attributes must not be set there."""
    root = _replica(tmp_path)
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True)
    (outside / "b").chmod(0o755)
    (root / "a" / "b").mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "receive", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(encode({"op": "hello", "version": VERSION, "marker": target_text("docs")}))
        proc.stdin.write(encode({"op": "batch", "ts": TS, "seq": 1}) + _file("a/b/f", b"x"))
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        while not (root / "a" / "b" / "f").exists():
            assert time.monotonic() < deadline, "the file never arrived"
            time.sleep(0.02)
        (root / "a").rename(tmp_path / "a-aside")
        (root / "a").symlink_to(outside)
        dirs = {"a/b": [0o46777, 4242, 4242, 0], "a": [0o40777, 4242, 4242, 0]}
        proc.stdin.write(encode({"op": "end", "dirs": dirs}))
        proc.stdin.close()
        out = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
    assert out  # it answered
    st = (outside / "b").stat()
    assert (st.st_mode & 0o7777, st.st_uid) == (0o755, 0)


@pytest.mark.parametrize("level", ["versions", "stamp"])
def test_a_versions_dir_that_is_a_link_is_never_written_through(tmp_path: Path, level: str) -> None:
    root = _replica(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("")  # an empty file is the start of anything
    if level == "versions":
        (root / VERSIONS_DIR).symlink_to(outside)
    else:
        (root / VERSIONS_DIR).mkdir()
        (root / VERSIONS_DIR / stamp(TS)).symlink_to(outside)
    (root / "f").write_text("old")
    code, replies, err = _session(root, _batch(_file("f", b"old and more")))
    assert code == 0, err
    assert replies[1]["rest"] == ["f"]  # rsync's call (through the rsync key)
    assert sorted(p.name for p in outside.iterdir()) == ["f"]
    assert (outside / "f").read_text() == ""
    assert (root / "f").read_text() == "old"


def test_a_batch_back_dated_to_an_older_stamp_loses_no_version(tmp_path: Path) -> None:
    root = _replica(tmp_path)
    (root / "f").write_text("v0")
    (root / "g").write_text("g")
    later = (
        encode({"op": "batch", "ts": TS + 60})
        + _file("f", b"v1 v1")
        + encode({"op": "end", "dirs": {}})
    )
    back = _batch(encode({"op": "delete", "path": "g"}))  # TS again: the first stamp
    code, _replies, err = _session(root, _batch(_file("f", b"v1")), later, back)
    assert code == 0, err
    kept = {
        p.relative_to(root / VERSIONS_DIR).as_posix(): p.read_bytes()
        for p in (root / VERSIONS_DIR).rglob("*")
        if p.is_file()
    }
    assert sorted(kept.values()) == [b"g", b"v0", b"v1"], kept


def test_a_batch_may_not_grow_without_bound(tmp_path: Path) -> None:
    root = _replica(tmp_path)
    many = b"".join(encode({"op": "delete", "path": f"x{i}"}) for i in range(MAX_ENTRIES + 1))
    code, _replies, err = _session(root, encode({"op": "batch", "ts": TS}) + many)
    assert code == 1 and f"more than {MAX_ENTRIES} entries" in err
    long_name = encode({"op": "delete", "path": "x" * (PATH_MAX + 1)})
    code, _replies, err = _session(root, encode({"op": "batch", "ts": TS}) + long_name)
    assert code == 1 and "a name of" in err


def test_a_batch_left_by_its_sender_is_not_written(tmp_path: Path) -> None:
    """The sender timed out and handed the batch to rsync: frames still buffered here must
    not be renamed over what rsync writes meanwhile."""
    root = _replica(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "receive", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    hello = encode({"op": "hello", "version": VERSION, "marker": target_text("docs")})
    proc.stdin.write(hello)
    proc.stdin.flush()
    proc.stdout.read(4)  # its hello began: the batch comes after the sender left
    proc.stdout.close()
    proc.stdin.write(_batch(_file("late.txt", b"stale")))
    proc.stdin.close()
    assert proc.wait(30) == 1
    assert b"the sender closed the session" in proc.stderr.read()
    assert not (root / "late.txt").exists()


def test_a_fifo_in_place_of_a_checked_file_does_not_hang_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Swapped in between the lstat and the open (simulated: the lstat is the old file's)."""
    from backup import replica_writer
    from backup.replica_writer import Fallback, ReplicaWriter

    root = _replica(tmp_path)
    (root / "f").write_text("old")
    old = os.stat(root / "f")
    (root / "f").unlink()
    os.mkfifo(root / "f")
    monkeypatch.setattr(replica_writer, "lstat_or_none", lambda name, dir_fd: old)
    writer = ReplicaWriter(root, "stamp")
    try:
        want = writer.wanted(0o600, 0, 0, old.st_size, old.st_mtime_ns)
        with pytest.raises(Fallback):
            writer.put("f", ["f"], writer.dst, want, lambda fd: None)
    finally:
        writer.close()


def test_a_file_whose_directories_the_sender_could_not_describe_is_handed_back(
    tmp_path: Path,
) -> None:
    root = _replica(tmp_path)
    (root / "d").mkdir()
    d = [0o40750, 0, 0, 1_700_000_000 * 10**9]
    code, replies, err = _session(
        root, _batch(_file("d/a", b"a"), _file("d/b", b"b"), _file("top", b"t"), dirs={"x": d})
    )
    assert code == 0, err
    assert replies[1]["done"] == ["top"]
    assert replies[1]["rest"] == ["d/a", "d/b"]  # rsync sets d's attributes (and finds a, b)
