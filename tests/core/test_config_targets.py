"""Two replications may not share a target (or nest one in the other's): a full pass of one
deletes the other's replica. check-config refuses it, naming both."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.cli.main import main


def _config(
    tmp_path: Path, target_a: str, target_b: str, *, name_b: str = "b", extra_b: str = ""
) -> Path:
    for d in ("a", "b"):
        (tmp_path / d).mkdir(exist_ok=True)
    text = (
        f'[[replication]]\nname = "a"\nsource = "{tmp_path}/a"\ntarget = "{target_a}"\n'
        f'[[replication]]\nname = "{name_b}"\nsource = "{tmp_path}/b"\n'
        f'target = "{target_b}"\n{extra_b}'
    )
    path = tmp_path / "sentinel.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("a", "b", "how"),
    [
        ("{t}/dst", "{t}/dst", "the same target"),
        ("{t}/dst", "{t}/x/../dst/", "the same target"),
        ("{t}/dst", "{t}/dst/b", "nested targets"),
        ("{t}/link/b", "{t}/dst", "nested targets"),  # through a symlink
        ("rsync://u@Backup-Host/mod/r", "rsync://w@backup-host:873/mod/r/", "the same target"),
        ("rsync://u@host/mod", "rsync://u@host/mod/b", "nested targets"),
        ("u@host:/srv/r", "w@HOST:/srv/r/sub", "nested targets"),
    ],
)
def test_shared_or_nested_targets_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], a: str, b: str, how: str
) -> None:
    (tmp_path / "dst").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "dst")
    path = _config(tmp_path, a.format(t=tmp_path), b.format(t=tmp_path))
    assert main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "replication 'a'" in err and "replication 'b'" in err and how in err, err
    assert "Traceback" not in err and not out.startswith("OK")


@pytest.mark.parametrize(
    ("a", "b", "extra_b"),
    [
        ("{t}/dst-a", "{t}/dst-b", ""),
        ("{t}/dst", "{t}/dstb", ""),  # a shared prefix of the name is not nesting
        ("rsync://u@host/mod/a", "rsync://u@host:8730/mod/a", ""),  # another daemon
        ("rsync://u@host/mod/a", "rsync://u@other/mod/a", ""),
        ("u@host:/srv/r", "u@host:/srv/r", "ssh_port = 2222\n"),  # another sshd
        ("u@host:", "w@host:", ""),  # two logins' homes
    ],
)
def test_separate_targets_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], a: str, b: str, extra_b: str
) -> None:
    path = _config(tmp_path, a.format(t=tmp_path), b.format(t=tmp_path), extra_b=extra_b)
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
    assert "2 replication sources" in capsys.readouterr().out


def test_two_replications_with_one_name_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, f"{tmp_path}/dst-a", f"{tmp_path}/dst-b", name_b="a")
    assert main(["check-config", str(path)]) == 2
    assert "replication name 'a' is used twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target_b", "extra_b", "says"),
    [
        # one forced command names one directory: two replications would share a replica
        ("u@host:/srv/b", 'stream_identity_file = "{t}/id_stream"\n', "same stream_identity_file"),
        ("{t}/dst-b", 'stream_identity_file = "{t}/id_other"\n', "only for ssh targets"),
        (
            "u@host:/srv/b",
            'identity_file = "{t}/id_other"\nstream_identity_file = "{t}/id_other"\n',
            "a key of its own",
        ),
    ],
)
def test_a_stream_key_is_one_replications_and_only_over_ssh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target_b: str, extra_b: str, says: str
) -> None:
    for key in ("id_stream", "id_other"):
        (tmp_path / key).write_text("key")
        (tmp_path / key).chmod(0o600)
    path = _config(
        tmp_path, "u@host:/srv/a", target_b.format(t=tmp_path), extra_b=extra_b.format(t=tmp_path)
    )
    text = path.read_text().replace(
        'target = "u@host:/srv/a"\n',
        f'target = "u@host:/srv/a"\nstream_identity_file = "{tmp_path}/id_stream"\n',
    )
    path.write_text(text)
    assert main(["check-config", str(path)]) == 2
    _out, err = capsys.readouterr()
    assert says in err, err


def test_a_stream_key_reaches_the_target(tmp_path: Path) -> None:
    from sentinel.config import load_config
    from sentinel.replication import spec_from_config

    (tmp_path / "id_stream").write_text("key")
    path = _config(
        tmp_path,
        "u@host:/srv/a",
        "u@host:/srv/b",
        extra_b=f'stream_identity_file = "{tmp_path}/id_stream"\n',
    )
    config = load_config(path)
    spec = spec_from_config(config.replication[1], tmp_path)
    argv = spec.target.stream_command()  # type: ignore[attr-defined]
    assert argv[argv.index("-i") + 1] == str(tmp_path / "id_stream")
    assert "ControlMaster=no" in argv and "u@host" in argv
    assert spec_from_config(config.replication[0], tmp_path).target.stream_command() is None  # type: ignore[attr-defined]
