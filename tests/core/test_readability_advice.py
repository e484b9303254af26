"""`sentinel check-config --user sentinel`, run by root, names the first document the
service account may not read, checked as that account (root itself reads everything)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.advice.readability import UnknownUser, readability_advice
from sentinel.config import load_config

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setfacl"),
    reason="needs root (to act as nobody) and setfacl (Debian package acl)",
)


@pytest.fixture
def store() -> Iterator[Path]:
    # not under pytest's tmp_path: root's 0700 directory, which nobody cannot enter
    base = Path(tempfile.mkdtemp(prefix="sntadv"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def config_for(base: Path, *extra: str, marker: bool = True) -> Path:
    source = base / "onnara"
    (source / "2026").mkdir(parents=True, exist_ok=True)
    (source / "2026" / "minutes.hwp").write_text("minutes\n")
    if marker:  # written by root once (docs/install.md): sentinel only reads the store
        (source / ".sentinel-source").write_text("replicated by sentinel\n")
    (base / "replica").mkdir(exist_ok=True)
    path = base / "sentinel.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{base / "state"}"\n\n[[replication]]\n'
        f'name = "docs"\nsource = "{source}"\ntarget = "{base / "replica"}"\n'
        + "".join(f"{line}\n" for line in extra)
    )
    return path


def private(path: Path) -> Path:
    """A document another account wrote with a private umask (0600 root)."""
    path.write_text("secret\n")
    path.chmod(0o600)
    return path


def test_check_config_names_the_first_document_the_service_user_cannot_read(
    store: Path,
) -> None:
    path = config_for(store)
    secret = private(store / "onnara" / "2026" / "salary.hwp")
    proc = subprocess.run(
        [sys.executable, "-m", "sentinel", "check-config", str(path), "--user", "nobody"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"nobody may not read {secret} (the first such path" in proc.stderr
    assert "scripts/install.sh grant-read" in proc.stderr
    assert proc.stdout.startswith("OK ")

    # root's own walk proves nothing, and says nothing
    assert readability_advice(load_config(path), None) == []

    # the documented ACLs make it readable, and later files stay readable (default ACL)
    source = store / "onnara"
    subprocess.run(["setfacl", "-R", "-m", "u:nobody:rX", source], check=True)
    subprocess.run(["setfacl", "-R", "-d", "-m", "u:nobody:rX", source], check=True)
    assert readability_advice(load_config(path), "nobody") == []
    private(source / "2026" / "later.hwp")  # chmod 600 after the default ACL: hidden again
    later = readability_advice(load_config(path), "nobody")
    assert len(later) == 1 and f"may not read {source}/2026/later.hwp" in later[0], later
    os.remove(source / "2026" / "later.hwp")
    fd = os.open(source / "2026" / "new.hwp", os.O_WRONLY | os.O_CREAT, 0o640)
    os.close(fd)  # a new file with a sane mode inherits the default ACL
    assert readability_advice(load_config(path), "nobody") == []


def test_a_directory_it_cannot_enter_is_named_and_excluded_paths_are_not(
    store: Path,
) -> None:
    path = config_for(store, 'exclude = ["cache/"]')
    source = store / "onnara"
    (source / "cache").mkdir(mode=0o700)  # excluded: never replicated, never judged
    (source / "hr").mkdir(mode=0o700)
    private(source / "hr" / "payroll.xls")
    [line] = readability_advice(load_config(path), "nobody")
    assert f"nobody may not read {source}/hr (the first such path" in line, line


def test_a_store_it_may_only_read_needs_its_marker_written_by_root(store: Path) -> None:
    path = config_for(store, marker=False)
    [line] = readability_advice(load_config(path), "nobody")
    assert "no .sentinel-source marker" in line, line
    assert "its first sync cannot write it" in line
    # the safe way to write it (grant-read follows no link a writer planted), not `tee`
    assert f"sudo scripts/install.sh grant-read {store / 'onnara'}" in line
    (store / "onnara" / ".sentinel-source").write_text("replicated by sentinel\n")
    assert readability_advice(load_config(path), "nobody") == []


def test_an_unknown_user_is_one_clear_error(store: Path) -> None:
    path = config_for(store)
    with pytest.raises(UnknownUser):
        readability_advice(load_config(path), "no-such-account-x")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentinel",
            "check-config",
            str(path),
            "--user",
            "no-such-account-x",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr == ("sentinel: --user no-such-account-x: no such account on this host\n"), (
        proc.stderr
    )


def test_the_walk_keeps_its_budget_among_directories_and_names_the_first_path_in_order(
    store: Path,
) -> None:
    """A store of directories alone never reached the clock (it was read after every 1024th
    file): 150,000 directories took 23 s of a 5 s budget. And "the first such path" was the
    last of its directory (the entries were checked in reverse)."""
    path = config_for(store)
    source = store / "onnara"
    for i in range(3000):
        (source / "d" / f"{i:05d}").mkdir(parents=True)
    private(source / "zzz.hwp")
    [line] = readability_advice(load_config(path), "nobody", budget=0.0)
    assert "then the time ran out" in line, line
    private(source / "2026" / "a.hwp")
    private(source / "2026" / "b.hwp")
    [line] = readability_advice(load_config(path), "nobody")
    assert f"nobody may not read {source}/2026/a.hwp (the first such path" in line, line
