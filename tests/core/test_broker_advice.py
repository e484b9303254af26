"""check-config's broker warnings: a broker off this host that anyone can write to, or a
password sent to it in the clear."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sentinel.advice.broker import broker_advice
from sentinel.advice.loopback import is_loopback
from sentinel.cli.main import main
from sentinel.config.loader import validate_config

LEAK = {"id": "leak-ups", "kind": "water_leak", "topic": "zigbee2mqtt/leak-ups"}


def advice(tmp_path: Path, **mqtt: Any) -> list[str]:
    config = validate_config({"mqtt": mqtt, "sensors": [LEAK]}, tmp_path / "sentinel.toml")
    return broker_advice(config)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LOCALHOST", "localhost."]
)
def test_loopback_broker_needs_no_lock(tmp_path: Path, host: str) -> None:
    assert is_loopback(host)
    assert advice(tmp_path, host=host) == []


@pytest.mark.parametrize("host", ["192.168.10.5", "10.0.0.1", "mqtt.lan", "::ffff:10.0.0.1",
                                  "127.0.0.1.example.org", "0.0.0.0",
                                  "mqtt.localhost"])  # fmt: skip
def test_open_broker_off_this_host_names_the_risk_and_the_fix(tmp_path: Path, host: str) -> None:
    assert not is_loopback(host)
    [line] = advice(tmp_path, host=host)
    assert repr(host) in line
    assert "neither TLS nor a login" in line
    assert "forge sensor readings" in line and "clear an alarm" in line
    assert "docs/mqtt-broker.md" in line


def test_password_in_the_clear_off_this_host_warns_without_showing_it(tmp_path: Path) -> None:
    [line] = advice(tmp_path, host="10.1.2.3", username="sentinel", password="pw-8812-secret")
    assert "in the clear" in line and "tls = true" in line
    assert "pw-8812-secret" not in line


def test_tls_with_a_login_is_quiet_even_without_ca_file(tmp_path: Path) -> None:
    """No ca_file: the system CAs verify the broker (a public or distro-trusted CA)."""
    assert advice(tmp_path, host="mqtt.lan", tls=True, username="sentinel", password="x") == []


def test_tls_without_any_login_still_lets_anyone_write(tmp_path: Path) -> None:
    [line] = advice(tmp_path, host="mqtt.lan", tls=True)
    assert "neither a username nor a client certificate" in line
    ca = tmp_path / "ca.pem"
    cert = tmp_path / "client.pem"
    for path in (ca, cert):
        path.write_text("x")
    assert advice(tmp_path, host="mqtt.lan", tls=True, ca_file=str(ca), cert_file=str(cert)) == []


def test_no_mqtt_section_no_advice(tmp_path: Path) -> None:
    config = validate_config({}, tmp_path / "sentinel.toml")
    assert broker_advice(config) == []


def test_check_config_prints_it_as_a_warning_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sentinel.toml"
    path.write_text(
        '[mqtt]\nhost = "192.168.10.5"\n\n[[sensors]]\nid = "leak-ups"\nkind = "water_leak"\n'
        'topic = "zigbee2mqtt/leak-ups"\n',
        encoding="utf-8",
    )
    assert main(["check-config", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"sentinel: warning: {path}: [mqtt] host '192.168.10.5' is not this machine" in err
