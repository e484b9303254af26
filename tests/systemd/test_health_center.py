"""The health-center examples work as documented: the rsyncd.conf module and the rrsync
authorized_keys line accept a push with versions, and refuse what they promise to refuse."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensors.sim.broker import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "systemd"
PASSWORD = "replica-pass-123"


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}: {log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sources(tmp_path: Path) -> Path:
    src = tmp_path / "onnara"
    (src / "2026" / "approvals").mkdir(parents=True)
    (src / "2026" / "approvals" / "doc-001.hwp").write_text("version 1")
    (src / "index.txt").write_text("index")
    return src


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


# --- rsyncd ------------------------------------------------------------------------------


@dataclass
class Rsyncd:
    port: int
    replica: Path
    password_file: Path


@pytest.fixture
def rsyncd(tmp_path: Path) -> Iterator[Rsyncd]:
    if os.geteuid() != 0:
        pytest.skip("the example's `use chroot` and uid switch need root")
    replica = tmp_path / "replica"
    replica.mkdir()
    secrets = tmp_path / "rsyncd.secrets"
    secrets.write_text(
        (EXAMPLES / "rsyncd.secrets.example")
        .read_text()
        .replace("change-this-long-random-password", PASSWORD)
    )
    secrets.chmod(0o600)
    conf = (EXAMPLES / "rsyncd.conf.example").read_text()
    for old, new in [
        ("/run/rsyncd.pid", str(tmp_path / "rsyncd.pid")),
        ("/srv/replica/onnara", str(replica)),
        ("uid = sentinel-replica", "uid = root"),
        ("gid = sentinel-replica", "gid = root"),
        ("/etc/rsyncd.secrets", str(secrets)),
        ("hosts allow = 192.0.2.10", "hosts allow = 127.0.0.1"),
    ]:
        assert old in conf, old
        conf = conf.replace(old, new)
    config = tmp_path / "rsyncd.conf"
    config.write_text(conf)
    port = free_port()
    log = tmp_path / "rsyncd.log"
    proc = subprocess.Popen(
        [
            "rsync",
            "--daemon",
            "--no-detach",
            f"--config={config}",
            "--address=127.0.0.1",
            f"--port={port}",
            f"--log-file={log}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        log.touch()
        wait_listening(port, proc, log)
        client_password = tmp_path / "rsync.password"
        client_password.write_text(PASSWORD + "\n")
        client_password.chmod(0o600)
        yield Rsyncd(port, replica, client_password)
    finally:
        stop(proc)


def push_rsyncd(
    d: Rsyncd, src: Path, *extra: str, password_file: Path | None = None, bind: str = "127.0.0.1"
) -> subprocess.CompletedProcess[str]:
    return run(
        "rsync",
        "-a",
        f"--password-file={password_file or d.password_file}",
        f"--address={bind}",
        *extra,
        f"{src}/",
        f"rsync://sentinel@127.0.0.1:{d.port}/onnara/",
    )


def test_rsyncd_module_takes_a_push_and_keeps_versions(tmp_path: Path, rsyncd: Rsyncd) -> None:
    src = sources(tmp_path)
    first = push_rsyncd(rsyncd, src)
    assert first.returncode == 0, first.stderr
    doc = rsyncd.replica / "2026/approvals/doc-001.hwp"
    assert doc.read_text() == "version 1"

    (src / "2026/approvals/doc-001.hwp").write_text("version 2 (longer)")
    second = push_rsyncd(rsyncd, src, "--backup", "--backup-dir=.sentinel-versions/batch-2")
    assert second.returncode == 0, second.stderr
    assert doc.read_text() == "version 2 (longer)"
    kept = rsyncd.replica / ".sentinel-versions/batch-2/2026/approvals/doc-001.hwp"
    assert kept.read_text() == "version 1"


def test_rsyncd_module_refuses_a_wrong_password(tmp_path: Path, rsyncd: Rsyncd) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    result = push_rsyncd(rsyncd, sources(tmp_path), password_file=wrong)
    assert result.returncode == 5, result.stderr
    assert "auth failed" in result.stderr
    assert not any(rsyncd.replica.iterdir())


def test_rsyncd_module_refuses_other_hosts(tmp_path: Path, rsyncd: Rsyncd) -> None:
    result = push_rsyncd(rsyncd, sources(tmp_path), bind="127.0.0.2")
    assert result.returncode != 0
    assert not any(rsyncd.replica.iterdir())


def test_rsyncd_module_cannot_be_read_back(tmp_path: Path, rsyncd: Rsyncd) -> None:
    assert push_rsyncd(rsyncd, sources(tmp_path)).returncode == 0
    out = tmp_path / "stolen"
    result = run(
        "rsync",
        "-a",
        f"--password-file={rsyncd.password_file}",
        f"rsync://sentinel@127.0.0.1:{rsyncd.port}/onnara/",
        f"{out}/",
    )
    assert result.returncode != 0
    assert not out.exists() or not any(out.rglob("*.hwp"))


# --- ssh + rrsync ----------------------------------------------------------------------------


@dataclass
class Sshd:
    port: int
    replica: Path
    ssh: str  # the -e argument for rsync


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    if os.geteuid() != 0:
        pytest.skip("sshd with privilege separation needs root")
    if not (
        shutil.which("ssh") and Path("/usr/sbin/sshd").exists() and Path("/usr/bin/rrsync").exists()
    ):
        pytest.skip("openssh-server, ssh or rrsync missing")
    # What Debian's ssh.service would create: sshd refuses to start without it.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True
        )
    replica = tmp_path / "replica"
    replica.mkdir()
    # The documented line, pointed at this test's replica and carrying the test's key.
    line = next(
        raw
        for raw in (EXAMPLES / "authorized_keys.example").read_text().splitlines()
        if raw.startswith("command=")
    )
    options, _keytype, _key, comment = line.rsplit(" ", 3)
    options = options.replace("/srv/replica/onnara", str(replica))
    pub = (keys / "client.pub").read_text().split()
    authorized = keys / "authorized_keys"
    authorized.write_text(f"{options} {pub[0]} {pub[1]} {comment}\n")
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
        f"PidFile {tmp_path / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\nStrictModes no\n"
        "PermitRootLogin forced-commands-only\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nLogLevel VERBOSE\n"
    )
    log = tmp_path / "sshd.log"
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(log)])
    try:
        log.touch()
        wait_listening(port, proc, log)
        known = keys / "known_hosts"
        host_pub = (keys / "host.pub").read_text().split()
        known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        ssh = (
            f"ssh -F none -p {port} -i {keys / 'client'} -o BatchMode=yes "
            f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
        )
        yield Sshd(port, replica, ssh)
    finally:
        stop(proc)


def test_rrsync_key_takes_a_push_and_keeps_versions(tmp_path: Path, sshd: Sshd) -> None:
    src = sources(tmp_path)
    first = run("rsync", "-a", "-e", sshd.ssh, f"{src}/", "root@127.0.0.1:")
    assert first.returncode == 0, first.stderr
    doc = sshd.replica / "2026/approvals/doc-001.hwp"
    assert doc.read_text() == "version 1"

    (src / "2026/approvals/doc-001.hwp").write_text("version 2 (longer)")
    (src / "index.txt").unlink()
    second = run(
        "rsync",
        "-a",
        "--delete",
        "--backup",
        "--backup-dir=.sentinel-versions/b2",
        "--filter=P /.sentinel-versions/",
        "-e",
        sshd.ssh,
        f"{src}/",
        "root@127.0.0.1:",
    )
    assert second.returncode == 0, second.stderr
    assert doc.read_text() == "version 2 (longer)"
    assert not (sshd.replica / "index.txt").exists()
    versions = sshd.replica / ".sentinel-versions/b2"
    assert (versions / "2026/approvals/doc-001.hwp").read_text() == "version 1"
    assert (versions / "index.txt").read_text() == "index"


def test_rrsync_key_cannot_read_back_or_get_a_shell(tmp_path: Path, sshd: Sshd) -> None:
    assert (
        run("rsync", "-a", "-e", sshd.ssh, f"{sources(tmp_path)}/", "root@127.0.0.1:").returncode
        == 0
    )
    out = tmp_path / "stolen"
    pull = run("rsync", "-a", "-e", sshd.ssh, "root@127.0.0.1:", f"{out}/")
    assert pull.returncode != 0
    assert "write-only" in pull.stderr
    assert not out.exists() or not any(out.rglob("*.hwp"))

    shell = run(*sshd.ssh.split(), "root@127.0.0.1", "cat /etc/shadow")
    assert shell.returncode != 0
    assert "root:" not in shell.stdout


def test_rrsync_key_cannot_write_outside_its_directory(tmp_path: Path, sshd: Sshd) -> None:
    src = sources(tmp_path)
    assert run("rsync", "-a", "-e", sshd.ssh, f"{src}/", "root@127.0.0.1:").returncode == 0
    for target in ("root@127.0.0.1:../outside/", f"root@127.0.0.1:{tmp_path}/outside/"):
        result = run("rsync", "-a", "-e", sshd.ssh, f"{src}/", target)
        assert not (tmp_path / "outside").exists(), (target, result.stderr)


# --- credential ownership the docs recommend -------------------------------------------------

NOBODY = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can enter (pytest's tmp_path is root-only)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as another user")
    with tempfile.TemporaryDirectory() as name:
        Path(name).chmod(0o755)
        yield Path(name)


def as_daemon_user(*args: str) -> subprocess.CompletedProcess[str]:
    """Run as an unprivileged user in the file's group, like the daemon in group sentinel."""
    return run("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *args)


def test_ssh_uses_a_root_owned_0640_key_as_the_daemon_user(shared_dir: Path) -> None:
    key = shared_dir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    os.chown(key, 0, NOBODY)  # root:sentinel
    key.chmod(0o640)
    result = as_daemon_user("ssh-keygen", "-y", "-f", str(key))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ssh-ed25519 ")


def test_rsync_uses_a_root_owned_0640_password_file_as_the_daemon_user(
    shared_dir: Path, rsyncd: Rsyncd
) -> None:
    password = shared_dir / "rsync.password"
    password.write_text(PASSWORD + "\n")
    os.chown(password, 0, NOBODY)
    password.chmod(0o640)
    src = sources(shared_dir)
    for path in [src, *src.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
    result = as_daemon_user(
        "rsync",
        "-r",
        f"--password-file={password}",
        f"{src}/",
        f"rsync://sentinel@127.0.0.1:{rsyncd.port}/onnara/",
    )
    assert result.returncode == 0, result.stderr
    assert (rsyncd.replica / "index.txt").read_text() == "index"


async def test_rrsync_key_lets_sentinel_check_and_write_its_target_marker(
    tmp_path: Path, sshd: Sshd
) -> None:
    """The marker check is a dry-run push, so the write-only key allows it."""
    from backup.markers import TARGET_MARKER, check_target, write_target_marker
    from backup.spec import ReplicationSpec
    from backup.transport import parse_target

    keys = tmp_path / "keys"
    target = parse_target(
        "root@127.0.0.1:",
        ssh_port=sshd.port,
        identity_file=keys / "client",
        known_hosts=keys / "known_hosts",
    )
    runtime = Path(tempfile.mkdtemp(prefix="snt"))
    try:
        spec = ReplicationSpec("onnara", sources(tmp_path), target, runtime_dir=runtime)
        first = await check_target(spec)
        assert first.present is False, first.result and first.result.error
        assert (await write_target_marker(spec)).ok
        assert (sshd.replica / TARGET_MARKER).is_file()
        assert (await check_target(spec)).present is True
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
