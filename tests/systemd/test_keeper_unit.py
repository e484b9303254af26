"""systemd/sentinel-keeper.service: systemd's own checkers accept it, its sandbox is as tight
as sentinel.service's, and the one privilege it adds is CAP_DAC_READ_SEARCH."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.systemd.test_unit import QUIET_ENV, unit_settings, verify

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "sentinel-keeper.service"
ROOM_UNIT = REPO / "systemd" / "sentinel.service"


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


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == ""


def test_verify_check_catches_a_misspelled_key(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("ReadOnlyPaths=", "ReadOnlyPath=")
    assert "ReadOnlyPath" in verify(broken, tmp_path).stderr


def test_security_exposure_is_at_most_1_5() -> None:
    result = security(UNIT)
    assert result.returncode == 0, result.stdout[-600:]
    assert "Overall exposure level for sentinel-keeper.service: 1." in result.stdout


def test_security_threshold_fails_a_weakened_unit(tmp_path: Path) -> None:
    weakened = tmp_path / "sentinel-keeper.service"
    text = UNIT.read_text()
    for line in (
        "ProtectSystem=strict",
        "MemoryDenyWriteExecute=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH",
    ):
        assert line + "\n" in text
        text = text.replace(line + "\n", "")
    weakened.write_text(text)
    assert security(weakened).returncode != 0


def test_unit_runs_the_keeper_as_its_own_account_with_only_read_search() -> None:
    s = unit_settings(UNIT.read_text())
    expect = {
        "Service.Type": ["notify"],
        "Service.NotifyAccess": ["main"],
        "Service.WatchdogSec": ["30s"],
        "Service.Restart": ["on-failure"],
        "Service.ExecStart": [
            "/opt/sentinel/venv/bin/sentinel -c /etc/sentinel-keeper/keeper.toml keeper run"
        ],
        "Service.User": ["sentinel-keeper"],
        "Service.Group": ["sentinel-keeper"],
        "Service.StateDirectory": ["sentinel-keeper"],
        "Service.ConfigurationDirectory": ["sentinel-keeper"],
        "Service.RuntimeDirectory": ["sentinel-keeper"],
        "Service.AmbientCapabilities": ["CAP_DAC_READ_SEARCH"],
        "Service.CapabilityBoundingSet": ["CAP_DAC_READ_SEARCH"],
        "Service.NoNewPrivileges": ["yes"],
        "Service.ReadOnlyPaths": ["/srv/keeper/landing"],
        "Service.ReadWritePaths": ["/srv/keeper/snapshots /srv/keeper/receipts"],
        "Service.ProtectSystem": ["strict"],
        "Service.ProtectHome": ["yes"],
        "Service.PrivateDevices": ["yes"],
        "Service.MemoryDenyWriteExecute": ["yes"],
        "Service.RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "Install.WantedBy": ["multi-user.target"],
    }
    for key, value in expect.items():
        assert s[key] == value, key
    # what the capability could read and the keeper never needs
    hidden = s["Service.InaccessiblePaths"][0].split()
    assert {"-/etc/shadow", "-/etc/ssh", "-/etc/sentinel-keeper/rsyncd.secrets"} <= set(hidden)
    # never the account the rooms write with, never serial devices
    assert not any("sentinel-replica" in v for values in s.values() for v in values)
    assert "Service.SupplementaryGroups" not in s and "Service.DeviceAllow" not in s


def test_unit_keeps_every_hardening_line_of_the_room_unit() -> None:
    """Same structure: every sandbox setting of sentinel.service is here with the same value,
    except those the roles differ in on purpose."""
    room, keeper = unit_settings(ROOM_UNIT.read_text()), unit_settings(UNIT.read_text())
    differ = {
        "Unit.Description",
        "Unit.Documentation",
        "Unit.After",
        "Service.ExecStart",
        "Service.User",
        "Service.Group",
        "Service.SupplementaryGroups",
        "Service.StateDirectory",
        "Service.ConfigurationDirectory",
        "Service.ConfigurationDirectoryMode",
        "Service.RuntimeDirectory",
        "Service.ReadOnlyPaths",
        "Service.DeviceAllow",
        "Service.CapabilityBoundingSet",
        "Service.AmbientCapabilities",
    }
    for key, value in room.items():
        if key not in differ:
            assert keeper.get(key) == value, key
