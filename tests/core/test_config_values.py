"""Values that parse but make no sense are refused by `sentinel check-config` with one
clear line naming the key, and exit 2: NaN and infinity anywhere, durations beyond any
sane bound, strings where numbers or booleans belong, references to things that do not
exist, MQTT wildcards where sentinel subscribes. A UTF-8 byte-order mark is accepted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.cli.main import main

SENSOR = '[mqtt]\n[[sensors]]\nid = "temp-1"\nkind = "temperature"\ntopic = "z2m/temp1"\n'
SERIAL = '[[serial]]\nname = "rs485"\nurl = "/dev/ttyUSB0"\n'

# (config text, the error line check-config must print)
BAD = [
    (
        SENSOR + "offset = nan\n",
        "sensors[0].offset: expected a finite number (nan and inf are not allowed); found nan",
    ),
    (
        SENSOR + "offset = -1e308\n",  # every reading normal: the alarm could never fire
        "sensors[0].offset: Input should be greater than or equal to -1000; found -1e+308",
    ),
    (
        SENSOR + "scale = -inf\n",
        "sensors[0].scale: expected a finite number (nan and inf are not allowed); found -inf",
    ),
    (
        SENSOR + '[[rules]]\nsensor = "temp-1"\ncrit_high = nan\n',
        "rules[0].crit_high: expected a finite number (nan and inf are not allowed)",
    ),
    (
        "[daemon]\nheartbeat = 1e400\n",
        "daemon.heartbeat: a duration must be a finite number of seconds, found inf",
    ),
    (
        '[daemon]\nheartbeat = "99999999999999999999999d"\n',
        "daemon.heartbeat: a duration must be at most 10 years (3650d), "
        "found '99999999999999999999999d'",
    ),
    (
        "[alarms]\nhistory_keep = 1e12\n",
        "alarms.history_keep: a duration must be at most 10 years (3650d), found 1000000000000.0",
    ),
    (
        '[mqtt]\nport = "1883"\n',
        "mqtt.port: expected a whole number (write it without quotes); found '1883'",
    ),
    (
        '[mqtt]\ntls = "true"\n',
        "mqtt.tls: expected true or false (write it without quotes); found 'true'",
    ),
    (
        SERIAL.replace("url", "baudrate = 9600.5\nurl"),
        "serial[0].baudrate: expected a whole number; found 9600.5",
    ),
    ("[site]\nname = 7\n", "site.name: expected a string in quotes; found 7"),
    (
        SENSOR + '[[rules]]\nsensor = "temp-l"\ncrit_high = 40\n',
        "rules[0].sensor: 'temp-l' is not a [[sensors]] id, replication:<name>, room:<name>, "
        "keeper:<name> or component:<name> (known: temp-1)",
    ),
    (
        SENSOR + '[[rules]]\nname = "fire"\nall = [{sensor = "smoke-1"}, {sensor = "temp-1"}]\n',
        "rules[0].all[0].sensor: 'smoke-1' is not a [[sensors]] id",
    ),
    (
        '[[rules]]\nkind = "temprature"\ncrit_high = 40\n',
        "rules[0].kind: 'temprature' is not a kind sentinel reads",
    ),
    (
        '[[replication]]\nname = "docs"\nsource = "/nonexistent/onnara"\ntarget = "/mnt/replica"\n',
        "replication[0].source: /nonexistent/onnara does not exist or is not a directory",
    ),
    (
        SENSOR + 'availability_topic = "z2m/+/availability"\n',
        "sensors[0].availability_topic: cannot contain MQTT wildcards + or #",
    ),
    (
        '[[replication]]\nname = "docs"\nsource = "/tmp"\ntarget = "u@h:/r"\n'
        'strict_host_key_checking = "maybe"\n',
        "replication[0].strict_host_key_checking: Input should be 'yes', 'accept-new' or 'no'",
    ),
    (
        '[[replication]]\nname = "docs"\nsource = "/tmp"\ntarget = "/mnt/r"\n'
        "[replication.guard]\nmax_share = nan\n",
        "replication[0].guard.max_share: expected a finite number",
    ),
]

GOOD = [
    SENSOR + "offset = -0.5\nscale = 1\n",  # an integer where a float goes is fine
    '[mqtt]\nport = 1883\n[alarms]\nhistory_keep = "3650d"\n',
    '[[replication]]\nname = "docs"\nsource = "/tmp"\ntarget = "u@h:/r"\n'
    'strict_host_key_checking = "accept-new"\n',
    '[[replication]]\nname = "docs"\nsource = "/tmp"\ntarget = "u@h:/r"\n'
    "strict_host_key_checking = false\n",
]


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    (tmp_path / name).mkdir()
    path = tmp_path / name / "sentinel.toml"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("text", "line"), BAD, ids=[line.split(":")[0] for _, line in BAD])
def test_nonsense_value_is_refused_with_the_key_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    code, out, err = _check(_write(tmp_path, "c", text.encode()), capsys)
    assert code == 2, out
    assert line in err
    assert "Traceback" not in err


@pytest.mark.parametrize("bom", [False, True])
def test_sensible_values_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bom: bool
) -> None:
    for i, text in enumerate(GOOD):
        # Notepad saves UTF-8 with a byte-order mark
        path = _write(tmp_path, str(i), ("\ufeff" if bom else "").encode() + text.encode())
        code, out, err = _check(path, capsys)
        assert code == 0, (text, err)
        assert out.startswith("OK ")


def test_check_config_process_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    """The same through a real `sentinel check-config` process: exit status and stderr."""
    text = (
        '\ufeff[mqtt]\nport = "1883"\n[[sensors]]\nid = "temp-1"\nkind = "temperature"\n'
        'topic = "z2m/temp1"\noffset = nan\nmax_age = "99999999999999999999999d"\n'
    )
    path = _write(tmp_path, "c", text.encode())
    result = subprocess.run(
        [sys.executable, "-m", "sentinel", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"sentinel: {path}: 3 errors",
        "  mqtt.port: expected a whole number (write it without quotes); found '1883'",
        "  sensors[0].offset: expected a finite number (nan and inf are not allowed); found nan",
        "  sensors[0].max_age: a duration must be at most 10 years (3650d), "
        "found '99999999999999999999999d'",
    ]
