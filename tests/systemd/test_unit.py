"""systemd/sentinel.service: systemd's own checkers accept it, and the sandbox it asks for
is one CPython and our dependencies can run in."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "sentinel.service"
QUIET_ENV = {"PATH": os.environ["PATH"], "SYSTEMD_LOG_LEVEL": "info", "LANG": "C.UTF-8"}


def unit_settings(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> every value given (systemd allows a key more than once)."""
    settings: dict[str, list[str]] = defaultdict(list)
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings[f"{section}.{key}"].append(value)
    return settings


def verify(unit_text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on a copy whose ExecStart exists on this machine."""
    copy = directory / "sentinel.service"
    copy.write_text(
        unit_text.replace("ExecStart=/opt/sentinel/venv/bin/sentinel", "ExecStart=/bin/true")
    )
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--generators=no", str(copy)],
        capture_output=True,
        text=True,
        env=QUIET_ENV,
        timeout=60,
    )


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == ""


def test_verify_check_catches_a_misspelled_key(tmp_path: Path) -> None:
    """The check above can fail: verify only warns (exit 0) on an unknown key."""
    broken = UNIT.read_text().replace("ProtectHome=yes", "ProtectHomes=yes")
    result = verify(broken, tmp_path)
    assert "ProtectHomes" in result.stderr


def security(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            "--threshold=15",
            "--no-pager",
            str(unit),
        ],
        capture_output=True,
        text=True,
        env=QUIET_ENV,
        timeout=60,
    )


def test_security_exposure_is_at_most_1_5() -> None:
    result = security(UNIT)
    assert result.returncode == 0, result.stdout[-600:]
    assert "Overall exposure level for sentinel.service: 1." in result.stdout


def test_security_threshold_fails_a_weakened_unit(tmp_path: Path) -> None:
    weakened = tmp_path / "sentinel.service"
    text = UNIT.read_text()
    for line in ("ProtectSystem=strict", "MemoryDenyWriteExecute=yes", "PrivateTmp=yes"):
        text = text.replace(line + "\n", "")
    weakened.write_text(text)
    assert security(weakened).returncode != 0


def test_unit_has_the_service_contract_the_daemon_relies_on() -> None:
    s = unit_settings(UNIT.read_text())
    expect = {
        "Service.Type": ["notify"],
        "Service.NotifyAccess": ["main"],
        "Service.WatchdogSec": ["30s"],
        "Service.Restart": ["on-failure"],
        "Service.RestartSec": ["5s"],
        "Service.TimeoutStopSec": ["20s"],
        "Service.ExecStart": ["/opt/sentinel/venv/bin/sentinel run"],
        "Service.ExecReload": ["/bin/kill -HUP $MAINPID"],
        "Service.User": ["sentinel"],
        "Service.Group": ["sentinel"],
        "Service.StateDirectory": ["sentinel"],
        "Service.StateDirectoryMode": ["0750"],
        "Service.ConfigurationDirectory": ["sentinel"],
        "Service.ConfigurationDirectoryMode": ["0750"],
        "Service.RuntimeDirectory": ["sentinel"],
        "Service.SupplementaryGroups": ["dialout"],
        "Service.DevicePolicy": ["closed"],
        "Service.ReadOnlyPaths": ["-/srv/onnara"],
        "Service.RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "Service.CapabilityBoundingSet": [""],
        "Service.ProtectSystem": ["strict"],
        "Service.MemoryDenyWriteExecute": ["yes"],
        "Install.WantedBy": ["multi-user.target"],
    }
    for key, value in expect.items():
        assert s[key] == value, key
    assert sorted(s["Service.DeviceAllow"]) == ["char-ttyACM rw", "char-ttyS rw", "char-ttyUSB rw"]
    assert "@system-service" in s["Service.SystemCallFilter"]
    # Serial ports must stay visible.
    assert "Service.PrivateDevices" not in s
    # Group-readable state for admins, nothing for others.
    assert s["Service.UMask"] == ["0027"]


PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1

# What the daemon does at run time that could need W+X memory: import every dependency,
# call into libc through ctypes (backup/inotify.py), use a ctypes callback, watch a directory.
CHILD = textwrap.dedent(
    """
    import asyncio, ctypes, mmap, sqlite3, sys, tempfile
    from pathlib import Path
    libc = ctypes.CDLL(None)
    assert libc.prctl(66, 0, 0, 0, 0) == 1, "MDWE not in force"
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except OSError:
        pass
    else:
        sys.exit("a W+X mapping was allowed: the sandbox is not applied")
    import aiomqtt, aiosqlite, apprise, pydantic, pymodbus, rich, serial, serial_asyncio_fast
    from backup import inotify
    import sentinel.config.loader
    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)
    assert callback(41) == 42

    async def main():
        with tempfile.TemporaryDirectory() as d:
            ino = inotify.Inotify()
            ino.add_watch(d, inotify.CREATE)
            Path(d, "new").write_text("x")
            events = ino.read()
            assert [name for _wd, _mask, name in events] == ["new"], events
            ino.close()
            async with aiosqlite.connect(Path(d, "t.db")) as db:
                await db.execute("CREATE TABLE t (x)")
    asyncio.run(main())
    print("ok")
    """
)


def _set_mdwe() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


def test_python_and_all_deps_run_under_memory_deny_write_execute() -> None:
    """MemoryDenyWriteExecute=yes, reproduced with the kernel's own MDWE (Linux >= 6.3)."""
    libc = ctypes.CDLL(None)
    if libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) < 0:
        pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3)")
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        preexec_fn=_set_mdwe,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
