"""`scripts/install.sh grant-read PATH --user NAME`: the documented ACLs, applied for real
(setfacl on this host's file system), then read as that user."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.markers import SOURCE_MARKER, source_problem

INSTALL = Path(__file__).parents[2] / "scripts" / "install.sh"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("setfacl", "getfacl", "setpriv")),
    reason="needs root, setpriv and setfacl/getfacl (Debian package acl)",
)


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(INSTALL), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DESTDIR": ""},
    )


def nobody_reads(path: Path) -> bool:
    return (
        subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat", str(path)],
            capture_output=True,
            timeout=10,
        ).returncode
        == 0
    )


def acls(path: Path) -> str:
    return subprocess.run(
        ["getfacl", "-R", "-p", str(path)], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def store() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="sntgrant"))
    base.chmod(0o755)
    store = base / "onnara"
    (store / "2026").mkdir(parents=True, mode=0o700)
    store.chmod(0o700)
    secret = store / "2026" / "salary.hwp"
    secret.write_text("salary\n")
    secret.chmod(0o600)
    try:
        yield store
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_grant_read_lets_the_service_user_read_now_and_later(store: Path) -> None:
    secret = store / "2026" / "salary.hwp"
    assert not nobody_reads(secret)
    proc = install("grant-read", str(store), "--user", "nobody")
    assert proc.returncode == 0, proc.stderr
    assert f"{store}: nobody may read its 2 files and enter its 2 directories" in proc.stdout
    assert "WARNING" not in proc.stdout
    # the marker the daemon's first sync cannot write itself, being only a reader
    assert source_problem(store, require_mountpoint=False, create=False) is None
    assert nobody_reads(store / SOURCE_MARKER)
    assert nobody_reads(secret)
    # idempotent: a second run changes nothing
    before = acls(store)
    assert install("grant-read", str(store), "--user", "nobody").returncode == 0
    assert acls(store) == before
    # a file made later by the application (mode 0640) inherits the default ACL
    fd = os.open(store / "2026" / "minutes.hwp", os.O_WRONLY | os.O_CREAT, 0o640)
    os.write(fd, b"minutes\n")
    os.close(fd)
    assert nobody_reads(store / "2026" / "minutes.hwp")
    (store / "2027").mkdir(mode=0o750)  # so does a new directory, and what it will hold
    (store / "2027" / "plan.hwp").write_text("plan\n")
    assert nobody_reads(store / "2027" / "plan.hwp")
    # running it again later gives no data file an execute bit
    assert install("grant-read", str(store), "--user", "nobody").returncode == 0
    assert "user:nobody:r--" in acls(store / "2027" / "plan.hwp")
    assert not os.stat(store / "2027" / "plan.hwp").st_mode & 0o111


def test_grant_read_refuses_a_missing_path_before_changing_anything(store: Path) -> None:
    before = acls(store)
    proc = install("grant-read", str(store), str(store.parent / "no-such-dir"), "--user", "nobody")
    assert proc.returncode == 1
    assert f"{store.parent / 'no-such-dir'} does not exist; nothing was changed" in proc.stderr
    assert acls(store) == before
    proc = install("grant-read", str(store), "--user", "no-such-account-x")
    assert proc.returncode == 1 and "no user 'no-such-account-x'" in proc.stderr


def test_grant_read_says_when_a_directory_above_still_blocks(store: Path) -> None:
    store.parent.chmod(0o700)
    proc = install("grant-read", str(store), "--user", "nobody")
    assert proc.returncode == 0, proc.stderr
    assert f"WARNING: nobody still cannot reach {store}" in proc.stdout


def test_grant_read_writes_no_marker_into_an_empty_directory(store: Path) -> None:
    # an unmounted disk leaves an empty mountpoint: a marker there would make it "the store"
    empty = store.parent / "unmounted"
    empty.mkdir()
    proc = install("grant-read", str(empty), "--user", "nobody")
    assert proc.returncode == 0, proc.stderr
    assert "is empty (an unmounted disk?)" in proc.stdout
    assert not (empty / SOURCE_MARKER).exists()


def test_grant_read_follows_no_link_a_writer_of_the_store_planted(store: Path) -> None:
    # grant-read runs as root; whoever writes the store must not steer it elsewhere
    victim = store.parent / "victim"
    victim.mkdir()
    outside = victim / "secret.conf"
    outside.write_text("root only\n")
    outside.chmod(0o600)
    (store / SOURCE_MARKER).symlink_to(victim / "created-by-root")  # dangling
    (store / "2026" / "link.hwp").symlink_to(outside)
    (store / "2026" / "linkdir").symlink_to(victim)
    proc = install("grant-read", str(store), "--user", "nobody")
    assert proc.returncode == 0, proc.stderr
    assert f"{store}/{SOURCE_MARKER} is a symbolic link" in proc.stdout
    assert not (victim / "created-by-root").exists()
    assert "nobody" not in acls(victim)
    assert not nobody_reads(outside)
    assert nobody_reads(store / "2026" / "salary.hwp")  # the store itself is granted


def test_grant_read_refuses_a_path_with_a_newline(store: Path) -> None:
    odd = store.parent / "a\nb"
    odd.mkdir()
    (store.parent / "a").mkdir()
    proc = install("grant-read", str(odd), "--user", "nobody")
    assert proc.returncode != 0
    assert "a path with a newline is not taken" in proc.stderr
    assert "nobody" not in acls(store.parent / "a")


def test_a_private_document_made_after_grant_read_stays_private_to_others(store: Path) -> None:
    # a default ACL makes the kernel ignore the application's umask: without d:o::--- the
    # "other" bits of new files would come from the directory's mode (0755 here)
    (store / "2026").chmod(0o755)
    assert install("grant-read", str(store), "--user", "nobody").returncode == 0
    old = os.umask(0o077)
    try:
        (store / "2026" / "private.hwp").write_text("citizen record\n")
    finally:
        os.umask(old)
    assert not os.stat(store / "2026" / "private.hwp").st_mode & 0o007
    assert nobody_reads(store / "2026" / "private.hwp")  # the service user still does
    stranger = subprocess.run(
        [
            "setpriv",
            "--reuid=54321",
            "--regid=54321",
            "--clear-groups",
            "cat",
            str(store / "2026" / "private.hwp"),
        ],
        capture_output=True,
        timeout=10,
    )
    assert stranger.returncode != 0


def test_grant_read_takes_a_path_as_written_not_as_a_pattern(store: Path) -> None:
    for name in ("a1", "a2"):
        (store.parent / name).mkdir()
        (store.parent / name / "doc.hwp").write_text("doc\n")
    proc = install("grant-read", str(store.parent / "a*"), "--user", "nobody")
    assert proc.returncode != 0
    assert "does not exist; nothing was changed" in proc.stderr
    assert "nobody" not in acls(store.parent / "a1")


@pytest.mark.parametrize("system", ["/", "/etc", "/home", "/usr/share"])
def test_grant_read_refuses_a_system_directory(system: str) -> None:
    proc = install("grant-read", system, "--user", "nobody")
    assert proc.returncode != 0
    assert "is a system directory, not a document store" in proc.stderr
