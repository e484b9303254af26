"""scripts/install.sh --keeper into a DESTDIR root: the keeper's files, accounts and layout
with their intended owners; the room's role is untouched beside it; uninstall keeps the
history (/srv/keeper) and what the other role still uses."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.systemd.test_install import EXPECTED as ROOM_EXPECTED
from tests.systemd.test_install import PARENTS, kind_of, manifest, run, tree

REPO = Path(__file__).resolve().parents[2]
KEEPER_MANIFEST = "/opt/sentinel/keeper-install-manifest"

EXPECTED: dict[str, tuple[str, int, str]] = {
    "/opt/sentinel": ("dir", 0o755, "root:root"),
    "/opt/sentinel/share": ("dir", 0o755, "root:root"),
    "/opt/sentinel/share/doc": ("dir", 0o755, "root:root"),
    "/opt/sentinel/share/doc/keeper.md": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/doc/transport.md": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples": ("dir", 0o755, "root:root"),
    "/opt/sentinel/share/examples/stunnel-keeper.conf.example": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/keeper-rsyncd.conf.example": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/keeper-history-rsyncd.conf.example": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/keeper-authorized_keys.example": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/keeper-history-authorized_keys.example": (
        "file",
        0o644,
        "root:root",
    ),
    KEEPER_MANIFEST: ("file", 0o644, "root:root"),
    "/etc/systemd/system/sentinel-keeper.service": ("file", 0o644, "root:root"),
    "/etc/sysusers.d/sentinel-keeper.conf": ("file", 0o644, "root:root"),
    "/etc/tmpfiles.d/sentinel-keeper.conf": ("file", 0o644, "root:root"),
    "/etc/sentinel-keeper": ("dir", 0o755, "root:root"),
    "/etc/sentinel-keeper/rsyncd.conf": ("file", 0o644, "root:root"),
    "/etc/sentinel-keeper/history-rsyncd.conf": ("file", 0o644, "root:root"),
    "/var/lib/sentinel-keeper": ("dir", 0o750, "sentinel-keeper:sentinel-keeper"),
    "/usr/local/bin/sentinel": ("link", 0o777, "root:root"),
}
if (REPO / "systemd/sentinel-keeper.example.toml").exists():  # the lead's keeper config
    EXPECTED["/etc/sentinel-keeper/keeper.toml"] = ("file", 0o640, "root:sentinel-keeper")


def _read(path: Path) -> dict[str, tuple[str, int, str]]:
    entries = {}
    for line in path.read_text().splitlines():
        kind, mode, owner, name = line.split("\t")
        entries[name] = (kind, int(mode, 8), owner)
    return entries


def test_install_keeper_puts_every_file_with_its_mode_and_intended_owner(tmp_path: Path) -> None:
    result = run(tmp_path, "install", "--keeper")
    assert "systemctl enable --now sentinel-keeper" in result.stdout
    found = {path: st for path, st in tree(tmp_path).items() if path not in PARENTS}
    assert set(found) == set(EXPECTED)
    for path, (kind, mode, _owner) in EXPECTED.items():
        assert kind_of(found[path]) == kind, path
        if kind != "link":
            assert stat.S_IMODE(found[path].st_mode) == mode, f"{path}: {found[path].st_mode:o}"
    assert _read(tmp_path / KEEPER_MANIFEST[1:]) == EXPECTED
    unit = (tmp_path / "etc/systemd/system/sentinel-keeper.service").read_text()
    assert unit == (REPO / "systemd/sentinel-keeper.service").read_text()
    assert (tmp_path / "etc/sentinel-keeper/rsyncd.conf").read_bytes() == (
        REPO / "systemd/keeper-rsyncd.conf.example"
    ).read_bytes()
    assert not (tmp_path / "etc/systemd/system/sentinel.service").exists()


def test_installed_keeper_accounts_and_layout_are_the_documented_ones(tmp_path: Path) -> None:
    """systemd's own tools, run on the installed root, make both accounts and /srv/keeper."""
    run(tmp_path, "install", "--keeper")
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}"], check=True, capture_output=True)
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    groups = {
        line.split(":")[0]: int(line.split(":")[2])
        for line in (tmp_path / "etc/group").read_text().splitlines()
    }
    keeper, writer = passwd["sentinel-keeper"], passwd["sentinel-replica"]
    assert keeper[2] != writer[2]
    assert (keeper[5], keeper[6]) == ("/var/lib/sentinel-keeper", "/bin/sh")
    assert (writer[5], writer[6]) == ("/var/lib/sentinel-replica", "/bin/sh")

    subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create"], check=True, capture_output=True
    )
    ids = {
        "root": (0, 0),
        "sentinel-keeper": (int(keeper[2]), groups["sentinel-keeper"]),
        "sentinel-replica": (int(writer[2]), groups["sentinel-replica"]),
    }
    layout = {
        "srv/keeper/landing": (0, groups["sentinel-replica"], 0o710),
        "srv/keeper/landing/main": (*ids["sentinel-replica"], 0o700),
        "srv/keeper/snapshots": (*ids["sentinel-keeper"], 0o700),
        "srv/keeper/snapshots/main": (*ids["sentinel-keeper"], 0o700),
        "srv/keeper/receipts/main": (*ids["sentinel-keeper"], 0o755),
        "var/lib/sentinel-replica/.ssh": (0, 0, 0o755),
        "var/lib/sentinel-keeper/.ssh": (0, 0, 0o755),
        "etc/sentinel-keeper": (0, 0, 0o755),
    }
    for path, expected in layout.items():
        st = (tmp_path / path).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == expected, path


def test_both_roles_on_one_host_and_uninstalling_the_keeper_keeps_the_room(
    tmp_path: Path,
) -> None:
    run(tmp_path, "install")
    run(tmp_path, "install", "--keeper")
    history = tmp_path / "srv/keeper/snapshots/main/20261202T031500.000000Z/doc.hwp"
    history.parent.mkdir(parents=True)
    history.write_bytes(b"history")
    (tmp_path / "etc/sentinel-keeper/keeper.toml").write_text("[keeper]\n")

    result = run(tmp_path, "uninstall", "--keeper", "--purge")

    assert "kept /srv/keeper" in result.stdout
    assert history.read_bytes() == b"history"
    assert not (tmp_path / "etc/sentinel-keeper").exists()
    assert not (tmp_path / "etc/systemd/system/sentinel-keeper.service").exists()
    # the room's installation is whole: the shared program, docs and link stay
    assert manifest(tmp_path) == ROOM_EXPECTED
    for path, (kind, _mode, _owner) in ROOM_EXPECTED.items():
        assert kind_of((tmp_path / path.lstrip("/")).lstat()) == kind, path


def test_uninstall_keeper_keeps_edited_config_and_state(tmp_path: Path) -> None:
    run(tmp_path, "install", "--keeper")
    edited = tmp_path / "etc/sentinel-keeper/rsyncd.conf"
    edited.write_text(edited.read_text() + "[township]\n    path = /srv/keeper/landing/t\n")
    state = tmp_path / "var/lib/sentinel-keeper/sentinel.db"
    state.write_bytes(b"state")

    result = run(tmp_path, "uninstall", "--keeper")

    assert "kept /etc/sentinel-keeper" in result.stdout
    left = {path for path in tree(tmp_path) if path not in PARENTS}
    assert left == {
        "/etc/sentinel-keeper",
        "/etc/sentinel-keeper/rsyncd.conf",
        "/var/lib/sentinel-keeper",
        "/var/lib/sentinel-keeper/sentinel.db",
    }


def test_upgrade_keeper_keeps_the_admins_rsyncd_conf(tmp_path: Path) -> None:
    run(tmp_path, "install", "--keeper")
    conf = tmp_path / "etc/sentinel-keeper/rsyncd.conf"
    conf.write_text("# edited\n")
    result = run(tmp_path, "upgrade", "--keeper")
    assert "kept /etc/sentinel-keeper/rsyncd.conf" in result.stdout
    assert conf.read_text() == "# edited\n"
    assert _read(tmp_path / KEEPER_MANIFEST[1:]) == EXPECTED


def test_keeper_flag_is_checked_like_the_other_arguments(tmp_path: Path) -> None:
    for args, message in (
        (("install", "--keeper", "extra"), "no arguments"),
        (("install", "--purge", "--keeper"), "no arguments"),
        (("upgrade", "--keeper"), "run install"),
    ):
        result = run(tmp_path, *args, check=False)
        assert result.returncode != 0 and message in result.stderr, args
        assert not any(tmp_path.iterdir())


def test_uninstall_keeper_purge_leaves_no_home_of_the_deleted_accounts(tmp_path: Path) -> None:
    """tmpfiles makes the writer's home outside the keeper's state directory; a purge that
    deletes the account must not leave it (and the rooms' keys in it) behind."""
    run(tmp_path, "install", "--keeper")
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}"], check=True, capture_output=True)
    subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create"], check=True, capture_output=True
    )
    keys = tmp_path / "var/lib/sentinel-replica/.ssh/authorized_keys"
    keys.write_text('command="rrsync ..." ssh-ed25519 AAAA room-write-key\n')

    run(tmp_path, "uninstall", "--keeper", "--purge")

    assert not (tmp_path / "var/lib/sentinel-replica").exists()
    assert not (tmp_path / "var/lib/sentinel-keeper").exists()
