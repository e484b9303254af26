"""`sentinel web adduser|passwd|deluser|users`: the users file as an admin manages it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.cli.main import main
from sentinel.web.users import UserFile


def write_config(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    path = tmp_path / "sentinel.toml"
    path.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n\n[web]\n', encoding="utf-8")
    return path


def web(cfg: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", "--config", str(cfg), "web", *args],
        input=password,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_add_change_list_and_remove_users(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    users = tmp_path / "state" / "web-users"
    added = web(cfg, "adduser", "kim", "--password-stdin", password="correct horse\n")
    assert added.returncode == 0, added.stderr
    assert "added 'kim'" in added.stdout and "without a restart" in added.stdout
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
    assert "correct horse" not in users.read_text()
    assert web(cfg, "adduser", "lee", "--password-stdin", password="battery staple").returncode == 0
    assert web(cfg, "users").stdout.split() == ["kim", "lee"]

    again = web(cfg, "adduser", "kim", "--password-stdin", password="another one")
    assert again.returncode == 1 and "already a user" in again.stderr

    file = UserFile(users)
    assert await file.verify("kim", "correct horse")
    changed = web(cfg, "passwd", "kim", "--password-stdin", password="new password\n")
    assert changed.returncode == 0, changed.stderr
    assert not await file.verify("kim", "correct horse")
    assert await file.verify("kim", "new password")

    assert web(cfg, "deluser", "lee").returncode == 0
    assert web(cfg, "users").stdout.split() == ["kim"]
    missing = web(cfg, "deluser", "lee")
    assert missing.returncode == 1 and "no user 'lee'" in missing.stderr


@pytest.mark.parametrize("name", ["a:b", "kim lee", "link"])
def test_names_the_file_cannot_hold_are_refused(tmp_path: Path, name: str) -> None:
    cfg = write_config(tmp_path)
    proc = web(cfg, "adduser", name, "--password-stdin", password="correct horse")
    assert proc.returncode == 2 and repr(name) in proc.stderr, proc.stderr
    assert not (tmp_path / "state" / "web-users").exists()


def test_a_short_password_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    proc = web(cfg, "adduser", "kim", "--password-stdin", password="short\n")
    assert proc.returncode == 2 and "at least 8 characters" in proc.stderr
    assert not (tmp_path / "state" / "web-users").exists()


def test_two_different_passwords_at_the_prompt_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    answers = iter(["correct horse", "correct hose"])
    # the terminal: getpass reads /dev/tty, which a test run does not have
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["--config", str(cfg), "web", "adduser", "kim"]) == 2
    assert "differ" in capsys.readouterr().err
    assert not (tmp_path / "state" / "web-users").exists()


def test_a_broken_users_file_is_not_overwritten(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    users = tmp_path / "state" / "web-users"
    users.write_text("kim:$argon2id$...\nsomething else\n")
    proc = web(cfg, "adduser", "lee", "--password-stdin", password="correct horse")
    assert proc.returncode == 1 and "line(s) 2" in proc.stderr
    assert users.read_text() == "kim:$argon2id$...\nsomething else\n"


def test_a_state_directory_that_does_not_exist_yet_is_said_so(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    (tmp_path / "state").rmdir()
    proc = web(cfg, "adduser", "kim", "--password-stdin", password="correct horse")
    assert proc.returncode == 1 and "directory does not exist" in proc.stderr, proc.stderr
