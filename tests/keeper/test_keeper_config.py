"""The keeper's shipped example config loads, and the config refuses what would hand the
writer the history or let a room's silence go unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_example_loads(tmp_path: Path) -> None:
    text = (REPO / "systemd/sentinel-keeper.example.toml").read_text(encoding="utf-8")
    apprise = tmp_path / "apprise.yml"
    apprise.write_text("urls:\n  - console://:\n      tag: critical, warning, info\n")
    apprise.chmod(0o600)
    config_file = tmp_path / "keeper.toml"
    config_file.write_text(text.replace("/etc/sentinel-keeper/apprise.yml", str(apprise)))
    config = load_config(config_file)
    assert config.keeper is not None
    room = config.keeper.rooms[0]
    assert (room.name, room.where, room.silent_after) == ("main", "군청 전산실", 90.0)
    assert config.keeper.snapshot_within == 60.0 and config.keeper.snapshot_every == 3600.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[keeper.rooms]]\nname = "a"\nlanding = "{t}/l"\n[[keeper.rooms]]\nname = "a"\n'
            'landing = "{t}/m"\n',
            "duplicate name",
        ),
        (
            '[[keeper.rooms]]\nname = "a"\nlanding = "{t}/l"\n[[keeper.rooms]]\nname = "b"\n'
            'landing = "{t}/l/b"\n',
            "share a landing area",
        ),
        ('[[keeper.rooms]]\nname = "a"\nlanding = "{t}/rec/a"\n', "writer account would reach"),
        ('[[keeper.rooms]]\nname = "a"\nlanding = "{t}"\n', "writer account would reach"),
        (
            '[[keeper.rooms]]\nname = "a"\nlanding = "{t}/l"\nsilent_after = "1s"\n',
            "greater than or equal to 5",
        ),
        ('[[keeper.rooms]]\nname = "../x"\nlanding = "{t}/l"\n', "letters, digits"),
        ("", "rooms"),
    ],
)
def test_refused(tmp_path: Path, body: str, message: str) -> None:
    config_file = tmp_path / "k.toml"
    config_file.write_text(
        f'[keeper]\nsnapshot_dir = "{tmp_path}/snap"\nreceipt_dir = "{tmp_path}/rec"\n'
        + body.format(t=tmp_path)
    )
    with pytest.raises(ConfigError, match=message):
        load_config(config_file)
