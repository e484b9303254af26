"""Config errors name the file, the key path, what was expected and what was found; exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.cli.main import main
from sentinel.config import ConfigError, format_duration, load_config, parse_duration


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sentinel.toml"
    path.write_text(text, encoding="utf-8")
    return path


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_unknown_key_is_an_error_with_its_path(tmp_path: Path, capsys) -> None:
    path = write(
        tmp_path,
        """
[[sensors]]
id = "leak-1"
kind = "water_leak"
topic = "zigbee2mqtt/leak1"

[[sensors]]
id = "temp-1"
kind = "temperature"
max_agee = "5m"
""",
    )
    code, out, err = check(path, capsys)
    assert code == 2
    assert str(path) in err
    assert "sensors[1].max_agee: unknown key" in err
    assert "Traceback" not in err and out == ""


def test_wrong_type_names_expected_and_found(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, '[daemon]\nheartbeat = "5s"\nlog_level = "loud"\n')
    code, _, err = check(path, capsys)
    assert code == 2
    assert "daemon.log_level" in err
    assert "'loud'" in err and "'debug'" in err


def test_bad_duration_names_key_and_value(tmp_path: Path, capsys) -> None:
    path = write(
        tmp_path,
        '[[sensors]]\nid = "a"\nkind = "water_leak"\n\n'
        '[[sensors]]\nid = "b"\nkind = "smoke"\n\n'
        '[[sensors]]\nid = "c"\nkind = "smoke"\nmax_age = "five minutes"\n',
    )
    code, _, err = check(path, capsys)
    assert code == 2
    assert "sensors[2].max_age" in err
    assert "'five minutes'" in err
    assert '"30s"' in err


def test_missing_file(tmp_path: Path, capsys) -> None:
    code, _, err = check(tmp_path / "nope.toml", capsys)
    assert code == 2
    assert "nope.toml: config file not found" in err


def test_invalid_toml(tmp_path: Path, capsys) -> None:
    code, _, err = check(write(tmp_path, "[daemon\nx=1"), capsys)
    assert code == 2
    assert "not valid TOML" in err


def test_run_with_bad_config_exits_2_without_traceback(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, "[daemon]\nheartbeet = 1\n")
    code = main(["--config", str(path), "run"])
    err = capsys.readouterr().err
    assert code == 2
    assert "daemon.heartbeet: unknown key" in err


def test_env_var_names_the_config(tmp_path: Path, capsys, monkeypatch) -> None:
    path = write(tmp_path, "[daemon]\nheartbeat = 'never'\n")
    monkeypatch.setenv("SENTINEL_CONFIG", str(path))
    code = main(["check-config"])
    assert code == 2
    assert "daemon.heartbeat" in capsys.readouterr().err


def test_example_config_passes(tmp_path: Path, capsys) -> None:
    """The shipped example, installed as install.sh does it (credential files 0640)."""
    examples = Path(__file__).parents[2] / "examples"
    for name in ("sentinel.toml", "apprise.yml"):
        (tmp_path / name).write_bytes((examples / name).read_bytes())
        (tmp_path / name).chmod(0o640)
    for name in ("id_ed25519", "known_hosts", "rsync.secret"):
        (tmp_path / name).write_text("x\n")
        (tmp_path / name).chmod(0o600)
    text = (tmp_path / "sentinel.toml").read_text(encoding="utf-8").replace("/etc/sentinel/", "")
    # check-config refuses a replication source that does not exist: give it the stores
    text = text.replace('source = "/srv/', f'source = "{tmp_path}/srv/')
    for name in ("onnara", "onnara-db/archivelog"):
        (tmp_path / "srv" / name).mkdir(parents=True)
    (tmp_path / "sentinel.toml").write_text(text, encoding="utf-8")
    code, out, err = check(tmp_path / "sentinel.toml", capsys)
    assert code == 0, err
    assert out.startswith("OK ")
    assert "12 sensors, 5 alert channels, 2 replication sources" in out


def test_credential_file_open_to_others_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "apprise.yml").write_text("urls:\n  - json://127.0.0.1:9/x\n")
    (tmp_path / "apprise.yml").chmod(0o644)
    path = write(tmp_path, '[alerts]\napprise_config = "apprise.yml"\n')
    code, _, err = check(path, capsys)
    assert code == 2
    assert "other users can read it" in err
    assert "chmod 6" in err


def test_minimal_config_summary(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.summary() == "0 sensors, 0 alert channels, 0 replication sources"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("250ms", 0.25), (12, 12)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 minutes", "-1s", True, "1w", None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("seconds", [0.25, 5, 30 * 60, 3600, 2 * 86400])
def test_format_duration_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(("seconds", "text"), [(90, "1m30s"), (86400 + 60, "1d1m"), (0, "0s")])
def test_format_duration_names_every_unit(seconds: float, text: str) -> None:
    # parse_duration reads one unit only, so mixed units are checked as text
    assert format_duration(seconds) == text


def test_config_error_is_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "sensors = 3\n"))
    assert "sensors" in str(info.value)


def test_unusable_apprise_file_fails_check_config_and_run(tmp_path: Path, capsys) -> None:
    apprise = tmp_path / "apprise.yml"
    apprise.write_text('urls:\n  - "json://127.0.0.1:9/x":\n      tag: [critical\n')
    apprise.chmod(0o600)
    path = write(
        tmp_path,
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[alerts]\napprise_config = "apprise.yml"\n',
    )
    code, out, err = check(path, capsys)
    assert code == 2 and out == ""
    assert "alerts.apprise_config" in err and "no valid notification URL" in err
    run = subprocess.run(
        [sys.executable, "-m", "sentinel", "--config", str(path), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "refusing to start" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "state").exists()  # refused before touching any state


def test_restart_alarm_keys_have_defaults_and_bounds(tmp_path: Path, capsys) -> None:
    from sentinel.config import Config

    daemon = Config().daemon
    assert (daemon.restart_alarm_count, daemon.restart_alarm_window) == (5, 600.0)
    assert (
        Config.model_validate(
            {"daemon": {"restart_alarm_count": 2, "restart_alarm_window": "2m"}}
        ).daemon.restart_alarm_window
        == 120.0
    )
    for bad in (
        {"restart_alarm_count": 0},
        {"restart_alarm_count": "5"},
        {"restart_alarm_window": "30s"},
        {"restart_alarm_count": 20, "restart_alarm_window": "10m"},
    ):
        with pytest.raises(ValueError):
            Config.model_validate({"daemon": bad})
    path = tmp_path / "sentinel.toml"
    path.write_text(
        '[daemon]\nstate_dir = "state"\nrestart_alarm_count = 20\nrestart_alarm_window = "10m"\n',
        encoding="utf-8",
    )
    assert main(["--config", str(path), "check-config"]) == 2
    err = capsys.readouterr().err
    assert "restart_alarm_window" in err and "20m" in err and "Traceback" not in err
