"""scripts/install.sh on the real system, as root, without DESTDIR (issue 12, item 5).

The reported failure first: root's `python3` a private build (pyenv under /root, 0700), so
a venv made with it links to an interpreter the service user may not run. Then a whole
install with that python3 first on root's PATH: the user, owners and modes, the unit
enabled and verified, the daemon run as the created user with the installed unit's
environment until status says it is up, an upgrade, and `uninstall --purge` leaving nothing.

These tests change the machine (/etc, /opt, /var/lib, /run, the accounts). They run only as
root on a host with no trace of a sentinel installation (else they skip, naming what they
found), and remove everything they made in a finally.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.systemd.test_install import EXPECTED, SCRIPT, kind_of, manifest
from tests.systemd.test_unit import QUIET_ENV, unit_settings

# they add the accounts and /etc files other tests may look at: not beside them
pytestmark = pytest.mark.serial

UNIT = Path("/etc/systemd/system/sentinel.service")
WANTS = Path("/etc/systemd/system/multi-user.target.wants/sentinel.service")
VENV = Path("/opt/sentinel/venv")
SYSTEM_PYTHON = Path("/usr/bin/python3")
# Every path a room installation makes (the manifest's, the venv, what systemd or the test
# adds): none may exist before, none after the purge.
TRACES = [*(Path(p) for p in EXPECTED), VENV, Path("/run/sentinel"), WANTS]
ACCOUNT_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")
TOOLS = (
    "runuser",
    "systemctl",
    "systemd-analyze",
    "systemd-sysusers",
    "systemd-tmpfiles",
    "userdel",
    "groupdel",
)
# install.sh's settings: the test's environment must not redirect the real install.
SETTINGS = (
    "DESTDIR",
    "PREFIX",
    "BINDIR",
    "UNITDIR",
    "PYTHON",
    "PIP_INSTALL_ARGS",
    "SENTINEL_NO_VENV",
)


def found_installation() -> list[str]:
    found = [str(path) for path in TRACES if os.path.lexists(path)]
    for lookup, kind in ((pwd.getpwnam, "user"), (grp.getgrnam, "group")):
        try:
            lookup("sentinel")
        except KeyError:
            continue
        found.append(f"{kind} sentinel")
    return found


def require_a_host_without_sentinel() -> None:
    if os.geteuid() != 0:
        pytest.skip("installs for real: needs root")
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    if (
        not SYSTEM_PYTHON.exists()
        or subprocess.run([SYSTEM_PYTHON, "-c", "import venv, ensurepip"]).returncode != 0
    ):
        pytest.skip("needs /usr/bin/python3 with venv and ensurepip (python3-venv)")
    try:
        pwd.getpwnam("nobody")  # the installer's stand-in before the user exists
    except KeyError:
        pytest.skip("needs the nobody account")
    found = found_installation()
    if found:
        pytest.skip(
            f"sentinel is (partly) installed on this host ({', '.join(found)}); this "
            "test would install over it and purge it"
        )


def install(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in SETTINGS} | env
    return subprocess.run(
        ["sh", str(SCRIPT), *args], env=environ, capture_output=True, text=True, timeout=300
    )


def as_user(user: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    # runuser, as an operator would check it. Not setpriv: it execs with root's capabilities
    # still in effect, so a path only root may enter passes the exec.
    return subprocess.run(
        ["runuser", "-u", user, "--", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
        cwd="/",
    )


@contextmanager
def interpreter_in(parent: Path | None, mode: int) -> Iterator[Path]:
    """`<dir>/bin/python3`, a link to the system's, in a fresh root-owned dir of `mode`."""
    base = Path(tempfile.mkdtemp(prefix=".fakepyenv-", dir=parent))
    try:
        base.chmod(mode)
        (base / "bin").mkdir(mode=0o755)
        (base / "bin/python3").symlink_to(SYSTEM_PYTHON)
        yield base / "bin/python3"
    finally:
        shutil.rmtree(base)


@contextmanager
def interpreter_with_private_stdlib() -> Iterator[Path]:
    """A python3 binary everyone may run whose standard library only root may reach (as a
    pyenv binary copied out of /root): others start it on another Python's library."""
    stdlib = Path(
        subprocess.run(
            [SYSTEM_PYTHON, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    base = Path(tempfile.mkdtemp(prefix=".fakepyenv-"))
    try:
        base.chmod(0o755)
        (base / "bin").mkdir(mode=0o755)
        shutil.copy(SYSTEM_PYTHON.resolve(), base / "bin/python3")
        (base / "lib").mkdir(mode=0o700)
        (base / "lib" / stdlib.name).symlink_to(stdlib)
        yield base / "bin/python3"
    finally:
        shutil.rmtree(base)


def scrub(made_sysusers_d: bool) -> None:
    """Whatever the test left: the host had no trace of sentinel when it started."""
    if Path("/opt/sentinel/install-manifest").exists():
        install("uninstall", "--purge")
    for path in TRACES:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
    if "user sentinel" in found_installation():
        subprocess.run(["userdel", "sentinel"], capture_output=True)
    if "group sentinel" in found_installation():
        subprocess.run(["groupdel", "sentinel"], capture_output=True)
    sysusers_d = Path("/etc/sysusers.d")
    if made_sysusers_d and sysusers_d.is_dir() and not any(sysusers_d.iterdir()):
        sysusers_d.rmdir()


HOME = Path("/root") if Path("/root").is_dir() else None


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        # the report: a pyenv build under /root (0700)
        ("private-dir", r"(?P<path>/\S*) \(drwx------ root:root\) is not searchable by nobody"),
        # readable by all, but the unit's PrivateTmp=yes hides /tmp from the service
        ("private-tmp", r"is in (?P<path>/tmp/\S*), which the unit's PrivateTmp=yes hides"),
        # it runs for everyone, but not as the same Python
        (
            "private-stdlib",
            r"is Python (\S+) from (?P<path>/\S+) for root but \1 from /usr for "
            r"nobody .*: its library or standard library is where nobody may not "
            r"read",
        ),
    ],
    ids=["private-dir", "private-tmp", "private-stdlib"],
)
def test_an_interpreter_the_service_cannot_use_is_refused(kind: str, reason: str) -> None:
    require_a_host_without_sentinel()
    interpreters = {
        "private-dir": lambda: interpreter_in(HOME, 0o700),
        "private-tmp": lambda: interpreter_in(Path("/tmp"), 0o755),
        "private-stdlib": interpreter_with_private_stdlib,
    }
    with interpreters[kind]() as python:
        if kind == "private-dir":
            # The reported failure, reproduced: a venv made with this python3 links into the
            # private directory, and every other user gets "Permission denied".
            probe = Path(tempfile.mkdtemp())
            try:
                probe.chmod(0o755)
                subprocess.run([python, "-m", "venv", "--without-pip", probe / "v"], check=True)
                assert os.readlink(probe / "v/bin/python3") == str(python)
                denied = as_user("nobody", probe / "v/bin/python3", "-c", "")
                assert denied.returncode != 0
                assert "Permission denied" in denied.stderr
            finally:
                shutil.rmtree(probe)
        made_sysusers_d = not Path("/etc/sysusers.d").exists()
        try:
            result = install("install", PYTHON=str(python))

            assert result.returncode != 0, result.stdout
            named = re.search(reason, result.stderr)
            assert named, result.stderr
            # the directory to change or avoid is one on the interpreter's way
            assert python.is_relative_to(named["path"])
            assert "fix: use the system interpreter, PYTHON=/usr/bin/python3" in result.stderr
            assert "nothing else was changed" in result.stderr
            assert found_installation() == []
        finally:
            scrub(made_sysusers_d)


def owner(st: os.stat_result) -> str:
    return f"{pwd.getpwuid(st.st_uid).pw_name}:{grp.getgrgid(st.st_gid).gr_name}"


def assert_installed_as_documented() -> None:
    account = pwd.getpwnam("sentinel")
    assert account.pw_uid < 1000
    assert (account.pw_dir, account.pw_shell) == ("/var/lib/sentinel", "/usr/sbin/nologin")
    for name, (kind, mode, owners) in EXPECTED.items():
        st = os.lstat(name)
        assert kind_of(st) == kind, name
        if kind != "link":
            assert (stat.S_IMODE(st.st_mode), owner(st)) == (mode, owners), name
    assert manifest(Path("/")) == {**EXPECTED, str(VENV): ("venv", 0o755, "root:root")}
    # The program is root's: the service user runs it and can change none of it.
    for dirpath, dirnames, filenames in os.walk(VENV):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            st = os.lstat(name)
            assert st.st_uid == 0 and (stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o022), name
    # The system interpreter, not the private one first on root's PATH.
    assert (VENV / "bin/python3").resolve() == SYSTEM_PYTHON.resolve()


def seconds(text: str) -> float:
    return float(text.removesuffix("s"))


def run_as_the_unit_runs_it() -> None:
    """The installed unit's user, groups, umask, environment and directories, reproduced
    with runuser (systemd is not PID 1 here); up until status says so, then stopped."""
    unit = unit_settings(UNIT.read_text())
    user, group = unit["Service.User"][0], unit["Service.Group"][0]
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    }
    for assignment in unit["Service.Environment"]:
        env |= dict(pair.split("=", 1) for pair in assignment.split())
    made = []
    for kind, variable, top in (
        ("State", "STATE_DIRECTORY", "/var/lib"),
        ("Runtime", "RUNTIME_DIRECTORY", "/run"),
        ("Configuration", "CONFIGURATION_DIRECTORY", "/etc"),
    ):
        directory = Path(top) / unit[f"Service.{kind}Directory"][0]
        mode = int(unit[f"Service.{kind}DirectoryMode"][0], 8)
        if kind == "Runtime":  # systemd makes it at start, owned by the service
            directory.mkdir(mode=mode)
            shutil.chown(directory, user, group)
            made.append(directory)
        # What install left is what systemd would make at start.
        st = directory.stat()
        expected_owner = "root:" + group if kind == "Configuration" else f"{user}:{group}"
        assert (stat.S_IMODE(st.st_mode), owner(st)) == (mode, expected_owner), directory
        env[variable] = str(directory)

    notify_dir = Path(tempfile.mkdtemp())
    notify_dir.chmod(0o755)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_dir / "notify"))
    shutil.chown(notify_dir / "notify", user, group)
    env["NOTIFY_SOCKET"] = str(notify_dir / "notify")
    env["WATCHDOG_USEC"] = str(int(seconds(unit["Service.WatchdogSec"][0]) * 1_000_000))
    umask = int(unit["Service.UMask"][0], 8)
    groups = [arg for g in unit.get("Service.SupplementaryGroups", []) for arg in ("-G", g)]
    proc = subprocess.Popen(
        ["runuser", "-u", user, "-g", group, *groups, "--", *unit["Service.ExecStart"][0].split()],
        env=env,
        cwd=unit.get("Service.WorkingDirectory", ["/"])[0],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(umask),
    )
    try:
        sock.settimeout(30)
        while "READY=1" not in sock.recv(4096).decode():
            pass
        # status as an admin's shell runs it (no $RUNTIME_DIRECTORY), as the service user
        deadline = time.monotonic() + 15
        while True:
            status = as_user(user, "/usr/local/bin/sentinel", "status", "--json")
            report = json.loads(status.stdout)
            if report["daemon"]["state"] == "up" or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the first heartbeat is written just after READY
        assert (report["daemon"]["state"], report["overall"]["state"]) == ("up", "OK"), report
        assert status.returncode == 0
        db = Path(env["STATE_DIRECTORY"]) / "sentinel.db"
        st = db.stat()
        assert owner(st) == f"{user}:{group}"
        assert st.st_mode & 0o040 and not st.st_mode & 0o007, f"{st.st_mode:o}"

        # As systemd stops it: SIGTERM to the daemon (the pid status reports). runuser, its
        # parent here, then exits with the daemon's status.
        os.kill(report["daemon"]["pid"], signal.SIGTERM)
        assert proc.wait(timeout=seconds(unit["Service.TimeoutStopSec"][0])) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
        shutil.rmtree(notify_dir)
        for directory in made:  # systemd removes the runtime directory at stop
            shutil.rmtree(directory)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.timeout(600)
def test_real_install_runs_as_the_user_upgrades_and_purges_to_nothing() -> None:
    require_a_host_without_sentinel()
    made_sysusers_d = not Path("/etc/sysusers.d").exists()
    with interpreter_in(HOME, 0o700) as private:
        # root's python3 is the private build, as on the host in the report
        path = f"{private.parent}:{os.environ['PATH']}"
        try:
            result = install("install", PATH=path)
            assert result.returncode == 0, result.stderr
            # what failed in the report: the service user running the installed program
            ran = as_user("sentinel", "/usr/local/bin/sentinel", "check-config")
            assert ran.returncode == 0, ran.stderr
            assert "checked: sentinel runs /opt/sentinel/venv/bin/sentinel" in result.stdout
            assert "check-config as sentinel accepts /etc/sentinel/sentinel.toml" in result.stdout
            assert_installed_as_documented()

            enabled = subprocess.run(
                ["systemctl", "enable", "sentinel.service"], capture_output=True, text=True
            )
            assert enabled.returncode == 0, enabled.stderr
            assert WANTS.resolve() == UNIT
            verified = subprocess.run(
                ["systemd-analyze", "verify", "--man=no", "--generators=no", str(UNIT)],
                capture_output=True,
                text=True,
                env=QUIET_ENV,
                timeout=60,
            )
            assert (verified.returncode, verified.stderr) == (0, "")

            run_as_the_unit_runs_it()

            # The admin's edit, one this release refuses (as a stricter new release might).
            config = Path("/etc/sentinel/sentinel.toml")
            config.write_text(config.read_text() + "\n[mistyped]\nkey = 1\n")
            kept = {p: digest(p) for p in (config, Path("/var/lib/sentinel/sentinel.db"))}
            (VENV / "the-release-before").touch()

            result = install("upgrade", PATH=path)

            assert result.returncode == 1, result.stdout
            assert "checked: sentinel runs /opt/sentinel/venv/bin/sentinel" in result.stdout
            assert "check-config as sentinel refuses /etc/sentinel/sentinel.toml" in result.stdout
            assert "mistyped: unknown key" in result.stdout
            # not restarted into a config it would refuse, and the running daemon is not left
            # on a release it was not started from: the release before is back
            assert "the release before is back in /opt/sentinel/venv" in result.stderr
            assert {p: digest(p) for p in kept} == kept
            assert (VENV / "the-release-before").exists()
            assert not Path(f"{VENV}.sentinel-old").exists()
            assert_installed_as_documented()

            # The document store opened to the service user; the purge must take that back,
            # or the next system account, given the freed uid, reads every record.
            store = Path(tempfile.mkdtemp(prefix="sntstore"))
            store.chmod(0o700)
            (store / "minutes.hwp").write_text("minutes\n")
            (store / "minutes.hwp").chmod(0o600)
            uid = pwd.getpwnam("sentinel").pw_uid
            granted = install("grant-read", str(store), PATH=path)
            assert granted.returncode == 0, granted.stderr
            assert as_user("sentinel", "cat", store / "minutes.hwp").returncode == 0

            result = install("uninstall", "--purge", PATH=path)

            assert result.returncode == 0, result.stderr
            assert f"{store}: removed sentinel's read access" in result.stdout
            acl = subprocess.run(
                ["getfacl", "-R", "-n", "-p", str(store)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert f"user:{uid}:" not in acl, acl
            shutil.rmtree(store)
            assert found_installation() == []
            # Other accounts may come and go meanwhile (tests of other modules make their own).
            for name in ACCOUNT_FILES:
                entries = {line.split(":")[0] for line in Path(name).read_text().splitlines()}
                assert "sentinel" not in entries, name
            # a standard directory install made on the way may stay, empty
            sysusers_d = Path("/etc/sysusers.d")
            assert not sysusers_d.exists() or not any(sysusers_d.iterdir())
        finally:
            scrub(made_sysusers_d)
