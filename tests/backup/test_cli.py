"""`sentinel backup ...` end to end on a local target, and the [[replication]] config."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sentinel.cli.main import main
from sentinel.config import ConfigError, load_config
from tests.backup.helpers import tree_diff


def _config(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n{body}')
    return cfg


def test_sync_verify_drill_restore_by_hand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a.txt").write_text("one")
    cfg = _config(tmp_path, f'[[replication]]\nname = "docs"\nsource = "{src}"\ntarget = "{dst}"\n')
    c = ["-c", str(cfg), "backup"]
    assert main([*c, "sync", "--full"]) == 0
    assert not tree_diff(src, dst)
    assert main([*c, "verify"]) == 0
    assert main([*c, "drill", "docs"]) == 0
    assert "DRILL OK" in capsys.readouterr().out

    as_of = time.time()
    time.sleep(0.05)
    (src / "d" / "a.txt").write_text("two!")
    assert main([*c, "sync", "--full", "docs"]) == 0
    (dst / "d" / "a.txt").write_text("rot!")  # same size; only a checksum sees it
    assert main([*c, "verify", "docs"]) == 1
    assert "d/a.txt" in capsys.readouterr().out

    out = tmp_path / "restored"
    assert main([*c, "restore", "d/a.txt", "--to", str(out), "--as-of", str(as_of)]) == 0
    assert (out / "d" / "a.txt").read_text() == "one"
    assert main([*c, "restore", "--to", str(out), "--as-of", "yesterday-ish"]) == 2
    assert main([*c, "verify", "nosuch"]) == 2
    assert main([*c, "status"]) == 0
    assert '"docs"' in capsys.readouterr().out


def test_config_rejects_bad_targets_and_resolves_relative_paths(tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        '[[replication]]\nname = "x"\nsource = "docs"\n'
        'target = "rsync://u@h/mod/p"\npassword_file = "pw"\n',
    )
    rc = load_config(cfg).replication[0]
    assert rc.source == tmp_path / "docs" and rc.password_file == tmp_path / "pw"
    assert rc.strict_host_key_checking == "yes"
    for body, message in [
        ('target = "rsync://u:secret@h/mod"', "password_file"),
        ('target = "relative/path"', "expected an absolute path"),
        ('target = "/mnt/x"\nidentity_file = "k"', "only for ssh"),
        (f'target = "{tmp_path / "docs" / "inside"}"', "inside the source"),
        ('target = "/mnt/x"\n[replication.guard]\nmax_share = 2', "max_share"),
    ]:
        bad = _config(tmp_path, f'[[replication]]\nname = "x"\nsource = "docs"\n{body}\n')
        with pytest.raises(ConfigError, match=message) as info:
            load_config(bad)
        assert "secret" not in str(info.value)
