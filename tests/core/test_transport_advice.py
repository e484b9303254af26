"""check-config warns when records would cross the network in the clear: an rsync:// target
(or keeper receipt) on another host. ssh targets, local paths and a daemon reached through
a local stunnel client (a loopback address) pass without a word."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sentinel.advice.transport import cleartext_host
from sentinel.cli.main import main


def _config(tmp_path: Path, *replications: str) -> Path:
    text = ""
    for i, body in enumerate(replications):
        (tmp_path / f"src{i}").mkdir(exist_ok=True)
        text += f'[[replication]]\nname = "r{i}"\nsource = "{tmp_path}/src{i}"\n{body}\n'
    path = tmp_path / "sentinel.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """check-config's warning lines; the config itself must be accepted."""
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("OK "), (out, err)
    return [line for line in err.splitlines() if line.startswith("sentinel: warning:")]


def test_a_remote_rsync_daemon_target_is_warned_naming_risk_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "rsync.password"
    secret.write_text("hunter2-very-secret\n")
    secret.chmod(0o600)
    path = _config(
        tmp_path,
        f'target = "rsync://sentinel@backup.health.example/onnara/"\npassword_file = "{secret}"',
    )
    [line] = _check(path, capsys)
    assert (
        f"{path}: replication 'r0': target rsync://sentinel@backup.health.example/onnara/" in line
    )
    assert "backup.health.example" in line and "unencrypted" in line
    assert "ssh target" in line and "stunnel" in line and "127.0.0.1" in line
    assert "docs/transport.md" in line
    assert "hunter2" not in line


def test_a_keeper_receipt_on_a_remote_rsync_daemon_is_warned_on_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(
        tmp_path,
        'target = "sentinel-replica@health-center::main"\n'
        "[replication.keeper]\n"
        'receipt = "rsync://sentinel-replica@health-center/main-receipt/receipt.json"',
        'target = "rsync://sentinel@10.20.0.5:873/archivelog"',
    )
    lines = _check(path, capsys)
    assert len(lines) == 2, lines
    receipt, target = lines
    assert (
        "replication 'r0': keeper receipt rsync://sentinel-replica@health-center/"
        "main-receipt/receipt.json"
        in receipt
        and "forge" in receipt
    )
    assert "replication 'r1': target rsync://sentinel@10.20.0.5:873/archivelog" in target


def test_ssh_local_and_stunnel_wrapped_targets_are_not_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "replica").mkdir()
    path = _config(
        tmp_path,
        'target = "sentinel-replica@backup.health.example:"',
        'target = "sentinel-replica@health-center::main"\n[replication.keeper]\n'
        'receipt = "sentinel-replica@health-center::main-receipt/receipt.json"',
        f'target = "{tmp_path}/replica"',
        # the local stunnel client of docs/transport.md, in front of the TLS tunnel
        'target = "rsync://sentinel@127.0.0.1:8873/onnara/"\n[replication.keeper]\n'
        'receipt = "rsync://sentinel@127.0.0.1:8873/onnara-receipt/receipt.json"',
    )
    assert _check(path, capsys) == []


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("rsync://u@backup.health.example/m", "backup.health.example"),
        ("rsync://u@192.0.2.10:873/m/sub", "192.0.2.10"),
        ("rsync://backup/m", "backup"),  # a bare name may resolve anywhere: not trusted
        ("rsync://u@localhost.evil.example/m", "localhost.evil.example"),
        ("rsync://u@127.0.0.1.nip.io/m", "127.0.0.1.nip.io"),
        ("rsync://u@0.0.0.0/m", "0.0.0.0"),
        ("rsync://u@127.0.0.1@evil.example/m", "127.0.0.1@evil.example"),  # either reading
        ("rsync://u@evil.example@127.0.0.1/m", "evil.example@127.0.0.1"),  # is warned
        ("rsync://u@127.1/m", "127.1"),  # not spelled as loopback: warned, not guessed
        ("rsync://u@128.0.0.1/m", "128.0.0.1"),
        ("rsync://u@127.0.0.1:8873/m", None),
        ("rsync://u@127.8.9.10/m", None),
        ("rsync://u@localhost:8873/m", None),
        ("rsync://u@LocalHost./m", None),
        # glibc resolves *.localhost like any name (/etc/hosts, DNS): it may leave the host
        ("rsync://u@keeper.localhost/m", "keeper.localhost"),
        ("u@backup.health.example::m", None),  # rsync's daemon protocol, but inside ssh
        ("u@backup.health.example:", None),
        ("/mnt/replica", None),
        ("rsync://u:pw@host/m", None),  # refused by check-config itself, not advice
    ],
)
def test_which_addresses_cross_the_network_in_the_clear(address: str, host: str | None) -> None:
    assert cleartext_host(address) == host


def test_the_shipped_example_config_sends_nothing_in_the_clear() -> None:
    """What people copy: its replications are ssh, or rsync:// through the local stunnel
    client."""
    example = Path(__file__).parents[2] / "examples" / "sentinel.toml"
    replications = tomllib.loads(example.read_text(encoding="utf-8"))["replication"]
    addresses = [r["target"] for r in replications] + [
        r["keeper"]["receipt"] for r in replications if "keeper" in r
    ]
    assert any(a.startswith("rsync://") for a in addresses)  # the stunnel form is shown
    assert [a for a in addresses if cleartext_host(a)] == []
