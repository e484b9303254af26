"""scripts/install.sh into a DESTDIR root: every file, mode and intended owner; upgrade keeps
config and state; uninstall removes what install added."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install.sh"

# path -> (type, mode, owner:group): everything install puts into the root, and nothing else.
EXPECTED: dict[str, tuple[str, int, str]] = {
    "/opt/sentinel": ("dir", 0o755, "root:root"),
    "/opt/sentinel/share": ("dir", 0o755, "root:root"),
    "/opt/sentinel/share/doc": ("dir", 0o755, "root:root"),
    "/opt/sentinel/share/doc/install.md": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/doc/mqtt-broker.md": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/doc/transport.md": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples": ("dir", 0o755, "root:root"),
    "/opt/sentinel/share/examples/stunnel-room.conf.example": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/mosquitto.conf": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/mosquitto.acl": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/sentinel.example.toml": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/rsyncd.conf.example": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/rsyncd.secrets.example": ("file", 0o644, "root:root"),
    "/opt/sentinel/share/examples/authorized_keys.example": ("file", 0o644, "root:root"),
    "/opt/sentinel/install-manifest": ("file", 0o644, "root:root"),
    "/etc/systemd/system/sentinel.service": ("file", 0o644, "root:root"),
    "/etc/sysusers.d/sentinel.conf": ("file", 0o644, "root:root"),
    "/etc/tmpfiles.d/sentinel.conf": ("file", 0o644, "root:root"),
    "/etc/sentinel": ("dir", 0o750, "root:sentinel"),
    "/etc/sentinel/sentinel.toml": ("file", 0o640, "root:sentinel"),
    "/etc/sentinel/sentinel.toml.example": ("file", 0o640, "root:sentinel"),
    "/var/lib/sentinel": ("dir", 0o750, "sentinel:sentinel"),
    "/usr/local/bin/sentinel": ("link", 0o777, "root:root"),
}
# Standard directories made on the way; not install's to remove.
PARENTS = {
    "/etc",
    "/etc/systemd",
    "/etc/systemd/system",
    "/etc/sysusers.d",
    "/etc/tmpfiles.d",
    "/opt",
    "/usr",
    "/usr/local",
    "/usr/local/bin",
    "/var",
    "/var/lib",
}


def run(root: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ["PATH"], "DESTDIR": str(root), "SENTINEL_NO_VENV": "1", **env}
    result = subprocess.run(
        ["sh", str(SCRIPT), *args], env=environ, capture_output=True, text=True, timeout=60
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def tree(root: Path) -> dict[str, os.stat_result]:
    """Every path under root (as an absolute path inside it) with its lstat."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            out["/" + str(full.relative_to(root))] = full.lstat()
    return out


def manifest(root: Path, prefix: str = "/opt/sentinel") -> dict[str, tuple[str, int, str]]:
    entries = {}
    for line in (root / prefix.lstrip("/") / "install-manifest").read_text().splitlines():
        kind, mode, owner, path = line.split("\t")
        entries[path] = (kind, int(mode, 8), owner)
    return entries


def kind_of(st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "link"
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def test_install_puts_every_file_with_its_mode_and_intended_owner(tmp_path: Path) -> None:
    result = run(tmp_path, "install")
    assert "Next steps" in result.stdout
    assert "systemctl enable --now sentinel" in result.stdout

    found = {path: st for path, st in tree(tmp_path).items() if path not in PARENTS}
    assert set(found) == set(EXPECTED)
    for path, (kind, mode, _owner) in EXPECTED.items():
        assert kind_of(found[path]) == kind, path
        if kind != "link":
            assert stat.S_IMODE(found[path].st_mode) == mode, f"{path}: {found[path].st_mode:o}"
    assert manifest(tmp_path) == EXPECTED
    assert os.readlink(tmp_path / "usr/local/bin/sentinel") == "/opt/sentinel/venv/bin/sentinel"
    # Nothing made on the way is private: admins and systemd must be able to enter.
    for parent in PARENTS:
        assert stat.S_IMODE((tmp_path / parent.lstrip("/")).stat().st_mode) == 0o755, parent

    unit = (tmp_path / "etc/systemd/system/sentinel.service").read_text()
    assert "ExecStart=/opt/sentinel/venv/bin/sentinel run" in unit
    assert (tmp_path / "etc/sentinel/sentinel.toml").read_bytes() == (
        REPO / "systemd/sentinel.example.toml"
    ).read_bytes()


def test_installed_sysusers_and_tmpfiles_give_the_intended_owners(tmp_path: Path) -> None:
    """systemd's own tools, run on the installed root, agree with the manifest."""
    run(tmp_path, "install")
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}"], check=True, capture_output=True)
    passwd = (tmp_path / "etc/passwd").read_text().splitlines()
    entry = next(line.split(":") for line in passwd if line.startswith("sentinel:"))
    uid, gid, home, shell = int(entry[2]), int(entry[3]), entry[5], entry[6]
    assert uid < 1000 and home == "/var/lib/sentinel" and shell == "/usr/sbin/nologin"

    subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create"], check=True, capture_output=True
    )
    ids = {"root": 0, "sentinel": uid}
    gids = {"root": 0, "sentinel": gid}
    for path in ("/etc/sentinel", "/var/lib/sentinel"):
        st = (tmp_path / path.lstrip("/")).stat()
        _kind, mode, owner = manifest(tmp_path)[path]
        user, group = owner.split(":")
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (ids[user], gids[group], mode)


def test_prefix_override_moves_the_program_and_the_unit_follows(tmp_path: Path) -> None:
    run(tmp_path, "install", PREFIX="/usr/local/sentinel")
    unit = (tmp_path / "etc/systemd/system/sentinel.service").read_text()
    assert "ExecStart=/usr/local/sentinel/venv/bin/sentinel run" in unit
    assert "/opt/sentinel" not in unit
    assert (tmp_path / "usr/local/sentinel/install-manifest").exists()
    assert not (tmp_path / "opt").exists()


def test_upgrade_keeps_edited_config_credentials_and_state(tmp_path: Path) -> None:
    run(tmp_path, "install")
    config = tmp_path / "etc/sentinel/sentinel.toml"
    config.write_text('[site]\nname = "edited by the admin"\n')
    secret = tmp_path / "etc/sentinel/rsync.password"
    secret.write_text("s3cret\n")
    db = tmp_path / "var/lib/sentinel/sentinel.db"
    db.write_bytes(b"state that must survive")
    # A stale program file from the old release is replaced, not merged.
    (tmp_path / "etc/systemd/system/sentinel.service").write_text("old unit\n")

    result = run(tmp_path, "upgrade")

    assert "kept /etc/sentinel/sentinel.toml" in result.stdout
    assert config.read_text() == '[site]\nname = "edited by the admin"\n'
    assert secret.read_text() == "s3cret\n"
    assert db.read_bytes() == b"state that must survive"
    assert "Type=notify" in (tmp_path / "etc/systemd/system/sentinel.service").read_text()
    assert manifest(tmp_path) == EXPECTED


def test_upgrade_without_an_installation_is_refused(tmp_path: Path) -> None:
    result = run(tmp_path, "upgrade", check=False)
    assert result.returncode != 0
    assert "run install" in result.stderr
    assert not any(tmp_path.iterdir())


def test_uninstall_removes_what_install_added_and_keeps_state(tmp_path: Path) -> None:
    run(tmp_path, "install")
    db = tmp_path / "var/lib/sentinel/sentinel.db"
    db.write_bytes(b"history")

    result = run(tmp_path, "uninstall")

    assert "kept /var/lib/sentinel" in result.stdout
    left = {path for path in tree(tmp_path) if path not in PARENTS}
    # The untouched example config went with the program; state stays.
    assert left == {"/var/lib/sentinel", "/var/lib/sentinel/sentinel.db"}
    assert db.read_bytes() == b"history"
    for parent in PARENTS:  # only empty standard directories remain besides state
        assert (tmp_path / parent.lstrip("/")).is_dir()


def test_uninstall_keeps_an_edited_config_and_credentials(tmp_path: Path) -> None:
    run(tmp_path, "install")
    (tmp_path / "etc/sentinel/sentinel.toml").write_text("[site]\nname = 'mine'\n")
    (tmp_path / "etc/sentinel/apprise.yml").write_text("urls:\n  - tgram://123456:ABCDEF/1\n")

    result = run(tmp_path, "uninstall")

    assert "kept /etc/sentinel" in result.stdout
    left = {path for path in tree(tmp_path) if path not in PARENTS}
    assert left == {
        "/etc/sentinel",
        "/etc/sentinel/sentinel.toml",
        "/etc/sentinel/apprise.yml",
        "/var/lib/sentinel",
    }


def test_uninstall_purge_removes_config_and_state_too(tmp_path: Path) -> None:
    run(tmp_path, "install")
    (tmp_path / "etc/sentinel/sentinel.toml").write_text("[site]\nname = 'mine'\n")
    (tmp_path / "var/lib/sentinel/sentinel.db").write_bytes(b"history")

    run(tmp_path, "uninstall", "--purge")

    assert set(tree(tmp_path)) <= PARENTS


def test_reinstall_after_uninstall_finds_the_old_state(tmp_path: Path) -> None:
    run(tmp_path, "install")
    (tmp_path / "var/lib/sentinel/sentinel.db").write_bytes(b"history")
    run(tmp_path, "uninstall")
    result = run(tmp_path, "install")
    assert "kept state in /var/lib/sentinel" in result.stdout
    assert (tmp_path / "var/lib/sentinel/sentinel.db").read_bytes() == b"history"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "usage"),
        (("frobnicate",), "unknown action"),
        (("uninstall", "--all"), "--purge"),
        (("install", "extra"), "no arguments"),
    ],
)
def test_bad_usage_is_explained_and_changes_nothing(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = run(tmp_path, *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not any(tmp_path.iterdir())


def test_failed_venv_build_leaves_the_installed_release_untouched(tmp_path: Path) -> None:
    run(tmp_path, "install")
    old_venv = tmp_path / "opt/sentinel/venv"
    (old_venv / "bin").mkdir(parents=True)
    (old_venv / "bin/sentinel").write_text("the running release\n")
    unit = tmp_path / "etc/systemd/system/sentinel.service"
    unit.write_text("the running unit\n")
    before = manifest(tmp_path)

    # An interpreter that cannot build a venv stands in for pip failing (no network).
    result = run(tmp_path, "upgrade", check=False, SENTINEL_NO_VENV="", PYTHON="false")

    assert result.returncode != 0
    assert "nothing else was changed" in result.stderr
    assert (old_venv / "bin/sentinel").read_text() == "the running release\n"
    assert unit.read_text() == "the running unit\n"
    assert manifest(tmp_path) == before
    assert not (tmp_path / "opt/sentinel/venv.sentinel-old").exists()
