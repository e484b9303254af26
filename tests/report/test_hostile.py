"""The reports against hostile configuration values, as an outsider would try them: what a
person copies out of the printed runbook must be the whole command the runbook means."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from sentinel.cli.main import main
from sentinel.config import load_config
from sentinel.report import pdf
from sentinel.report.context import ReportContext
from sentinel.report.files import file_findings
from sentinel.report.fingerprint import config_hash
from sentinel.report.flows import flows
from sentinel.report.staleness import reports_view
from sentinel.store import open_readonly

# a path may hold a newline; a fixed ``` fence would close on this one and print the
# `rm -rf` line as a code block of its own, ready to paste
FENCE_BREAK = "rep\n```\n\n```sh\nrm -rf -- /srv/documents\n```\nx"


def _toml(value: object) -> str:
    return json.dumps(str(value), ensure_ascii=False)


def test_a_value_with_a_code_fence_stays_inside_its_block(tmp_path: Path) -> None:
    if not shutil.which("rsync"):
        pytest.skip("rsync not installed")
    replica = tmp_path / FENCE_BREAK
    replica.mkdir(parents=True)
    (replica / "doc.txt").write_text("kept\n")
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[[replication]]\nname = "docs"\nsource = {_toml(tmp_path / "src")}\n'
        f"target = {_toml(replica)}\n"
    )
    out = tmp_path / "runbook.md"
    restore = tmp_path / "restore"
    args = ["-c", str(cfg), "report", "runbook", "--lang", "en", "--no-pdf"]
    assert main([*args, "--restore-dir", str(restore), "-o", str(out)]) == 0
    # the blocks as the printed page shows them (the PDF goes through the same parser)
    blocks = [
        tok.content
        for tok in MarkdownIt("commonmark").parse(out.read_text())
        if tok.type == "fence"
    ]
    assert blocks
    assert not any(b.startswith("rm ") for b in blocks), blocks
    for block in blocks:
        # each whole block parses as shell: none was cut in the middle of a quoted value
        check = subprocess.run(["bash", "-n", "-c", block], capture_output=True, text=True)
        assert check.returncode == 0, (block, check.stderr)
    # and the first block, run as printed, brings the file back from that replica
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", blocks[0]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert (restore / "docs" / "doc.txt").read_text() == "kept\n"


@pytest.mark.parametrize(
    "command",
    [
        "rman target sys/Local1secret cmdfile={scratch}/r.rman",  # no @service: local login
        "tbsql sys/Local2secret @{logs}/rec.sql",  # Tibero's own client
        'sqlplus -s "sys/Local3secret as sysdba" @{logs}/rec.sql',
        "/opt/oracle/bin/sqlplus -S -L system/Local4secret @{logs}/rec.sql",
    ],
)
def test_a_local_database_login_in_a_drill_command_is_not_printed(
    tmp_path: Path, command: str
) -> None:
    secret = next(w for w in command.replace('"', " ").split() if "Local" in w)
    secret = secret.split("/", 1)[1]
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[[replication]]\nname = "ora"\nkind = "archive-log"\n'
        f"source = {_toml(tmp_path / 'arch')}\ntarget = {_toml(tmp_path / 'replica')}\n"
        f'[replication.database]\npreset = "oracle"\n'
        f"[replication.database.drill]\nrestore_command = {_toml(command)}\n"
        f'check_command = "cp -- logs/a.arc logs/b.arc"\n'
    )
    out = tmp_path / "runbook.md"
    assert main(["-c", str(cfg), "report", "runbook", "--no-pdf", "-o", str(out)]) == 0
    text = out.read_text()
    assert secret not in text
    assert "/****" in text
    # a path in a command is no login: it stays as typed, or the command would not run
    assert "cp -- logs/a.arc logs/b.arc" in text


def test_a_file_fix_is_one_word_per_path_and_keeps_the_state_dir_writable(
    tmp_path: Path,
) -> None:
    """The findings' fixes are pasted as root: a path with a space or $(...) must stay one
    argument, and the state directory must stay the daemon's (it writes there)."""
    state = tmp_path / "state $(touch pwned)"
    state.mkdir()
    state.chmod(0o777)
    apprise = tmp_path / "apprise; rm.yml"
    apprise.write_text("urls:\n  - json://127.0.0.1:9/hook\n")
    apprise.chmod(0o644)
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(state)}\n[alerts]\napprise_config = {_toml(apprise)}\n"
    )
    ctx = ReportContext(load_config(cfg), cfg, "0" * 64, time.time(), "en", None, tmp_path)
    fixes = {f.config_key: f.fix for f in file_findings(ctx)}
    for key, path, owner in [
        ("[daemon] state_dir", state, "sentinel:sentinel"),
        ("[alerts] apprise_config", apprise, "root:sentinel"),
    ]:
        commands = [shlex.split(c) for c in fixes[key].split(" && ")]
        assert commands[0] == ["sudo", "chown", owner, str(path)], fixes[key]
        assert commands[1][:3] == ["sudo", "chmod", "750" if path == state else "640"]
        assert commands[1][3:] == [str(path)]


def test_the_config_hash_does_not_depend_on_how_the_config_was_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cd /etc/sentinel && sentinel -c sentinel.toml report runbook`, then `sentinel status`
    (with /etc/sentinel/sentinel.toml): the same file, so the report is not stale."""
    site = tmp_path / "etc"
    site.mkdir()
    (site / "apprise.yml").write_text("urls:\n  - json://127.0.0.1:9/hook\n")
    cfg = site / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        '[alerts]\napprise_config = "apprise.yml"\n'
        '[[replication]]\nname = "docs"\nsource = "docs"\ntarget = "/srv/replica"\n'
    )
    absolute = config_hash(load_config(cfg))
    monkeypatch.chdir(site)
    assert config_hash(load_config(Path("sentinel.toml"))) == absolute
    monkeypatch.chdir(tmp_path)
    assert config_hash(load_config(Path("etc/sentinel.toml"))) == absolute
    # and a value that changes still changes it
    cfg.write_text(cfg.read_text().replace('"docs"\ntarget', '"docs2"\ntarget'))
    assert config_hash(load_config(cfg)) != absolute


def test_a_failing_pdf_still_records_the_markdown_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """chromium fails: the command fails and says so, but the Markdown it wrote is current;
    status must not keep calling the printed copy stale."""
    fake = tmp_path / "chromium"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "Chromium 120.0"; exit 0; fi\n'
        "echo crashed >&2\nexit 5\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("SENTINEL_CHROMIUM", str(fake))
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n")
    out = tmp_path / "security.md"
    assert main(["-c", str(cfg), "report", "security", "-o", str(out)]) == 1
    assert "PDF not written" in capsys.readouterr().err
    assert out.is_file()
    conn = open_readonly(tmp_path / "state")
    assert conn is not None
    try:
        view = reports_view(conn, config_hash(load_config(cfg)), time.time())
    finally:
        conn.close()
    assert view["security"] is not None and not view["security"]["stale"]
    assert view["security"]["paths"] == [str(out)]


@pytest.mark.parametrize("where", ["replica", "dotdot", "symlink"])
def test_a_restore_dir_over_the_replica_or_the_source_gets_no_commands(
    tmp_path: Path, where: str
) -> None:
    """The runbook says restores never write over the source; nor may they write into the
    local replica they read (the last good copy), and `..` or a symlink in --restore-dir
    is the same place as its real path."""
    source = tmp_path / "srv" / "docs"
    source.mkdir(parents=True)
    replica = tmp_path / "backup"
    replica.mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "srv")
    restore = {
        "replica": replica,  # the restore goes to backup/docs: inside the replica
        "dotdot": tmp_path / "srv" / "x" / "..",  # ../docs is the source itself
        "symlink": tmp_path / "link",  # link/docs is the source itself
    }[where]
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[[replication]]\nname = "docs"\nsource = {_toml(source)}\n'
        f"target = {_toml(replica)}\n"
    )
    out = tmp_path / "runbook.md"
    args = ["-c", str(cfg), "report", "runbook", "--lang", "en", "--no-pdf"]
    assert main([*args, "--restore-dir", str(restore), "-o", str(out)]) == 0
    text = out.read_text()
    assert "overlaps the source" in text
    assert "RESTORE=" not in text


PUSHOVER_USER_KEY = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG"
SENDGRID_KEY = "SG1apikeySecretValue42"


def test_a_key_in_the_user_field_is_not_printed_and_fixed_apis_are_https(
    tmp_path: Path,
) -> None:
    """Pushover's user key and SendGrid's API key sit where a login name goes; the pack
    printed them as "user/password (KEY)", and called both plain HTTP to the wrong host."""
    apprise = tmp_path / "apprise.yml"
    apprise.write_text(
        "urls:\n"
        f"  - pover://{PUSHOVER_USER_KEY}@azGDORePK8gMaC0QOYAMyEEuzJnyUi\n"
        f"  - sendgrid://{SENDGRID_KEY}:noreply@county.example/admin@county.example\n"
        "  - mmosts://mmuser:MmPassSecret55@chat.county.example/channel\n"
    )
    apprise.chmod(0o600)
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f"[alerts]\napprise_config = {_toml(apprise)}\n"
    )
    out = tmp_path / "security.md"
    args = ["-c", str(cfg), "report", "security", "--lang", "en", "--no-pdf", "-o", str(out)]
    assert main(args) == 0
    text = out.read_text()
    for secret in (PUSHOVER_USER_KEY, SENDGRID_KEY, "MmPassSecret55"):
        assert secret not in text
    assert "(mmuser)" in text  # a real login name stays: the reviewer needs the account
    rows = [line for line in text.splitlines() if line.startswith("| alert |")]
    for host in ("api.pushover.net", "api.sendgrid.com"):
        (row,) = [r for r in rows if f"| {host} | 443 |" in r]
        assert "| yes (TLS) |" in row
    assert "plain HTTP" not in text


def test_a_config_with_a_password_in_a_database_command_is_a_secret_file(
    tmp_path: Path,
) -> None:
    """`restore_command = "rman target sys/pw@orcl"` puts a password in sentinel.toml: the
    pack must check that file's mode like the other secret files, and flag it open."""
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[[replication]]\nname = "ora"\nkind = "archive-log"\n'
        f"source = {_toml(tmp_path / 'arch')}\ntarget = {_toml(tmp_path / 'replica')}\n"
        f'[replication.database]\npreset = "oracle"\n'
        f'[replication.database.drill]\nrestore_command = "rman target sys/Tiger9secret@orcl"\n'
    )
    cfg.chmod(0o644)
    ctx = ReportContext(load_config(cfg), cfg, "0" * 64, time.time(), "en", None, tmp_path)
    (finding,) = [f for f in file_findings(ctx) if f.config_key == "-c"]
    assert finding.severity == "high" and str(cfg) in finding.problem


def test_html_in_a_value_is_printed_as_text_not_loaded_by_the_pdf_converter(
    tmp_path: Path,
) -> None:
    """The runbook prints names and error texts (a drill's error may hold a file name from
    the store, which anyone with write access there picks). Raw HTML in them would be loaded
    by chromium: an iframe of a local secret file ends up on paper."""
    secret = tmp_path / "rsync.secret"
    secret.write_text("LeakedPw77\n")
    hostile = f'<iframe src="{secret.as_uri()}"></iframe><img src="http://192.0.2.1/x">'
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[site]\nname = {_toml(hostile)}\n"
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[reports]\ncontacts = [{{ role = "<b>IT</b>", name = "<img src=x>", '
        f'phone = "010" }}]\n'
    )
    out = tmp_path / "runbook.md"
    args = ["-c", str(cfg), "report", "runbook", "--lang", "en", "--no-pdf", "-o", str(out)]
    assert main(args) == 0
    page = pdf.to_html(out.read_text(), "t")
    assert "<iframe" not in page and "<img" not in page
    assert "&lt;iframe" in page  # still there to read, as text


def test_a_modem_with_a_sim_pin_says_so_without_the_pin(tmp_path: Path) -> None:
    apprise = tmp_path / "apprise.txt"
    apprise.write_text("critical=modem:///dev/ttyUSB2?pin=4821&to=01011112222\n")
    apprise.chmod(0o600)
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f"[alerts]\napprise_config = {_toml(apprise)}\n"
    )
    ctx = ReportContext(load_config(cfg), cfg, "0" * 64, time.time(), "en", None, tmp_path)
    (row,) = [f for f in flows(ctx) if f.part == "alert"]
    assert row.auth == "SIM PIN (in the URL, masked)"
    assert "4821" not in repr(row) and "01011112222" not in repr(row)
