"""The ssh ControlMaster socket must fit the 108-byte unix socket limit, whatever the
state directory is called: a long path used to pass check-config and then fail every
transfer (`unix_listener: path ... too long for Unix domain socket`, rsync exit 255)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.control_socket import MAX_DIR_LEN, SOCKET_NAME, control_dir_problem
from backup.transport import parse_target
from sentinel.config import load_config
from sentinel.replication import runtime_dir, spec_from_config
from sentinel.store import Store
from tests.backup.helpers import caught_up, running
from tests.fixtures.remote import SshServer

NOBODY = 65534


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory in /tmp (pytest's tmp_path is already ~60 bytes long)."""
    path = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _close_master(ssh: list[str]) -> None:
    """Stop the ControlPersist master now instead of 60 s after the test."""
    subprocess.run([*ssh, "-O", "exit", "root@127.0.0.1"], capture_output=True, timeout=30)


def _config(path: Path, state_dir: Path, src: Path, sshd: SshServer) -> Path:
    path.write_text(
        f'[daemon]\nstate_dir = "{state_dir}"\n'
        f'[[replication]]\nname = "docs"\nsource = "{src}"\ntarget = "{sshd.address()}"\n'
        f'ssh_port = {sshd.port}\nidentity_file = "{sshd.identity}"\n'
        f'known_hosts = "{sshd.known_hosts}"\n'
    )
    return path


def _check_config(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "RUNTIME_DIRECTORY"}
    return subprocess.run(
        [sys.executable, "-m", "sentinel", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
    )


async def test_long_state_dir_still_ships_over_ssh(
    tmp_path: Path,
    bstore: Store,
    sshd: SshServer,
    monkeypatch: pytest.MonkeyPatch,
    short_tmp: Path,
) -> None:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))
    state_dir = tmp_path / ("a-state-directory-with-a-long-name-" * 3)
    assert len(str(state_dir)) > 100
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "report.hwp").write_bytes(os.urandom(3000))
    config_file = _config(tmp_path / "sentinel.toml", state_dir, src, sshd)

    checked = _check_config(config_file, TMPDIR=str(short_tmp))
    assert checked.returncode == 0, checked.stderr

    config = load_config(config_file)
    runtime = runtime_dir(config)
    spec = spec_from_config(config.replication[0], runtime)
    spec = dataclasses.replace(spec, retry_max=1.0)
    try:
        async with running(spec, bstore) as rep:
            await caught_up(rep, src, sshd.root_dir / "replica", limit=30)
        sockets = [p for p in runtime.iterdir() if p.name.startswith("cm-")]
    finally:
        _close_master(spec.target.ssh_command(runtime))
    assert (sshd.root_dir / "replica" / "d" / "report.hwp").read_bytes() == (
        src / "d" / "report.hwp"
    ).read_bytes()
    assert not str(runtime).startswith(str(state_dir))
    assert sockets, "no ControlMaster socket: every batch would pay a handshake"


def test_check_config_refuses_a_socket_dir_too_long_for_ssh(
    tmp_path: Path, sshd: SshServer
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    config = _config(tmp_path / "sentinel.toml", tmp_path / "state", src, sshd)
    long_runtime = tmp_path / ("r" * 60)
    result = _check_config(config, RUNTIME_DIRECTORY=str(long_runtime))
    assert result.returncode == 2
    line = next(x for x in result.stderr.splitlines() if "control socket" in x)
    assert str(long_runtime) in line
    assert "unix socket limit" in line and f"at most {MAX_DIR_LEN} bytes" in line
    assert "Traceback" not in result.stderr


def test_check_config_refuses_a_socket_dir_another_user_owns(
    tmp_path: Path, sshd: SshServer, short_tmp: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    config = _config(tmp_path / "sentinel.toml", tmp_path / "state", src, sshd)
    planted = short_tmp / f"sentinel-{os.geteuid()}"
    planted.mkdir(mode=0o777)
    os.chown(planted, NOBODY, NOBODY)
    result = _check_config(config, TMPDIR=str(short_tmp))
    assert result.returncode == 2
    assert f"{planted} belongs to uid {NOBODY}" in result.stderr


@pytest.mark.parametrize("extra", [0, 1])
def test_the_length_limit_is_exactly_where_ssh_fails(
    short_tmp: Path, sshd: SshServer, extra: int
) -> None:
    runtime = short_tmp / ("x" * (MAX_DIR_LEN + extra - len(str(short_tmp)) - 1))
    runtime.mkdir(mode=0o700)
    assert len(str(runtime)) == MAX_DIR_LEN + extra
    target = parse_target(
        sshd.address(),
        ssh_port=sshd.port,
        identity_file=sshd.identity,
        known_hosts=sshd.known_hosts,
    )
    cmd = target.ssh_command(runtime)
    try:
        result = subprocess.run(
            [*cmd, "root@127.0.0.1", "true"], capture_output=True, text=True, timeout=30
        )
    finally:
        _close_master(cmd)
    if extra:
        assert control_dir_problem(runtime) is not None
        assert result.returncode != 0 and "too long" in result.stderr
    else:
        assert control_dir_problem(runtime) is None
        assert result.returncode == 0, result.stderr


def test_docs_and_unit_name_the_socket_sentinel_uses() -> None:
    root = Path(__file__).parents[2]
    for doc in ("docs/install.md", "systemd/sentinel.service"):
        text = (root / doc).read_text(encoding="utf-8")
        assert f"ControlPath=/run/sentinel/{SOCKET_NAME}" in text, doc
