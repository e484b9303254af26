"""`sentinel report runbook` followed literally: the generated restore commands, run with
bash in a scratch directory against real replicas (a local disk and an rsync daemon on
loopback), bring back every file byte for byte, hostile names included; the runbook shows
the last drill's RTO and time, says "no drill recorded" before one, and holds no secret."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alerts.channels import load_channels
from backup.database_drill import iso
from sentinel.cli.main import main
from sentinel.config import load_config
from sentinel.report import runbook
from sentinel.report.context import Lang, ReportContext
from sentinel.report.fingerprint import config_hash
from sentinel.store import DB_NAME
from tests.backup.helpers import tree, tree_diff
from tests.backup.test_database_drill import CHECK, History
from tests.backup.test_keeper_drill import Keeper
from tests.backup.test_keeper_drill import config as keeper_config
from tests.fixtures.databases import PG_BIN, Postgres
from tests.fixtures.remote import RsyncDaemon, SshServer, started_rsyncd

WORKTREE = Path(__file__).resolve().parents[2]
TOKEN = "Zq8tokenNeverPrinted41"  # the Apprise URL's password
# names a careless script breaks on: spaces, quotes, a newline, a leading dash, Hangul
HOSTILE = [
    "plain.txt",
    "with space.txt",
    'it\'s "quoted".txt',
    "new\nline.txt",
    "-leading-dash.txt",
    "한글 문서.hwp",
    "sub dir/-x/$(touch pwned).txt",
    "sub dir/*glob?[1].txt",
]


@dataclass
class Site:
    root: Path
    source: Path
    config: Path
    restore_dir: Path
    password: str
    rsyncd: RsyncDaemon
    before_drill: dict[str, str]  # lang -> the runbook generated before any drill


def _toml(value: object) -> str:
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not shutil.which("rsync"):
        pytest.skip("rsync not installed")
    root = tmp_path_factory.mktemp("runbook")
    source = root / "문서 store"
    for i, name in enumerate(HOSTILE):
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"document {i}\n".encode() + bytes(range(256)) * (i + 1))
    apprise = root / "apprise.yml"
    apprise.write_text(
        f"urls:\n  - json://alert:{TOKEN}@127.0.0.1:9/hook:\n      tag: critical, warning\n"
    )
    with started_rsyncd(root / "rsyncd") as daemon:
        config = root / "sentinel.toml"
        config.write_text(
            f'[site]\nname = "군청 전산실"\n'
            f"[daemon]\nstate_dir = {_toml(root / 'state')}\n"
            f"[alerts]\napprise_config = {_toml(apprise)}\n"
            f"[reports]\n"
            f'contacts = [{{ role = "전산 담당", name = "김철수", phone = "010-1234-5678" }}]\n'
            f'[[replication]]\nname = "local"\nsource = {_toml(source)}\n'
            f"target = {_toml(root / 'replica disk')}\n"
            f'[[replication]]\nname = "remote"\nsource = {_toml(source)}\n'
            f"target = {_toml(daemon.url())}\npassword_file = {_toml(daemon.password_file)}\n"
        )
        base = ["-c", str(config), "backup"]
        assert main([*base, "sync", "--full", "--init-target"]) == 0
        site = Site(
            root,
            source,
            config,
            root / "restore 'here'",
            daemon.password_file.read_text().strip(),
            daemon,
            {},
        )
        # here, not in a test: the drill test records drills in the module's state
        for lang in ("en", "ko"):
            site.before_drill[lang] = _runbook(site, lang)
        yield site


def _runbook(site: Site, lang: str) -> str:
    out = site.root / f"runbook-{lang}.md"
    args = ["-c", str(site.config), "report", "runbook", "--lang", lang, "--no-pdf"]
    args += ["--restore-dir", str(site.restore_dir), "-o", str(out)]
    assert main(args) == 0
    return out.read_text()


def _section(text: str, heading: str) -> str:
    """The text under the `### heading` line, up to the next heading."""
    m = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^#{{2,3}} )", text, re.M | re.S)
    assert m, f"no section {heading!r}"
    return m.group(1)


def _blocks(section: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", section, re.M | re.S)


def _bash(block: str, cwd: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def sentinel_bin(tmp_path: Path) -> Path:
    """`sentinel` on PATH for the runbook's "with sentinel installed" block: this tree's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "sentinel"
    shim.write_text(
        f'#!/bin/sh\nPYTHONPATH="{WORKTREE}" exec "{sys.executable}" -m sentinel "$@"\n'
    )
    shim.chmod(0o755)
    return bin_dir


def test_before_a_drill_the_runbook_says_no_drill_recorded(site: Site) -> None:
    text = site.before_drill["en"]
    drills = text[text.index("## 5.") :]
    assert re.search(r"^\| local \| - \| no drill recorded \|", drills, re.M)
    assert re.search(r"^\| remote \| - \| no drill recorded \|", drills, re.M)
    ko = site.before_drill["ko"]
    assert "기록된 훈련 없음" in ko and "no drill recorded" not in ko


def test_the_runbook_commands_restore_every_file_after_a_drill(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path, sentinel_bin: Path
) -> None:
    assert main(["-c", str(site.config), "backup", "drill"]) == 0
    text = _runbook(site, "ko")

    # the drill's RTO and time, per replication
    drills = text[text.index("## 5.") :]
    for name in ("local", "remote"):
        row = re.search(
            rf"^\| {name} \| 사본 \| (\d{{4}}-\d\d-\d\d [\d:]+ [+-]\d{{4}}) \| 성공 "
            rf"\| ([\dhms.]+) \| {len(HOSTILE)} \|$",
            drills,
            re.M,
        )
        assert row, drills
    assert "기록된 훈련 없음" not in text

    # the header: when, from which config, and to keep it
    assert "바인더" in text and site.config.name in text
    assert re.search(r"설정 해시 \| `[0-9a-f]{12}`", text)

    # who is paged: the channel masked, its tags, the contact as given
    assert "127.0.0.1:9" in text and "critical, warning" in text and "김철수" in text
    # no secret: not the Apprise token, not the rsync daemon's password
    for secret in (TOKEN, site.password):
        assert secret not in text
    assert site.rsyncd.password_file.name in text  # the file is named, not read

    for n, name in ((1, "local"), (2, "remote")):
        blocks = _blocks(_section(text, f"3.{n} {name}"))
        assert len(blocks) == 2, blocks  # plain rsync, and `sentinel backup restore`
        for block in blocks:
            assert "<" not in block.replace("<<EOF", "")  # no placeholder to edit
            scratch = tmp_path / f"scratch-{name}"
            scratch.mkdir(exist_ok=True)
            done = _bash(block, scratch, sentinel_bin)
            assert done.returncode == 0, done.stderr
            restored = site.restore_dir / name
            assert not tree_diff(site.source, restored), tree_diff(site.source, restored)
            assert tree(site.source) == tree(restored)  # byte for byte
            assert not (scratch / "pwned").exists() and not (restored / "pwned").exists()
            # the check block: a checksum comparison with the replica prints nothing
            (check,) = _blocks(_section(text, f"4.{n} {name}"))
            checked = _bash(check, scratch, sentinel_bin)
            assert checked.returncode == 0 and checked.stdout == "", checked
            shutil.rmtree(site.restore_dir)


def test_the_check_block_finds_a_damaged_restore(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path, sentinel_bin: Path
) -> None:
    """A check that cannot fail is no check: one changed byte is printed."""
    text = _runbook(site, "en")
    (restore,) = _blocks(_section(text, "3.2 remote"))[:1]
    assert _bash(restore, tmp_path, sentinel_bin).returncode == 0
    damaged = site.restore_dir / "remote" / "with space.txt"
    data = bytearray(damaged.read_bytes())
    data[0] ^= 1
    damaged.write_bytes(bytes(data))
    (check,) = _blocks(_section(text, "4.2 remote"))
    checked = _bash(check, tmp_path, sentinel_bin)
    assert "with space.txt" in checked.stdout
    shutil.rmtree(site.restore_dir)


def test_a_restore_dir_over_the_source_gets_no_commands(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    out = site.root / "over.md"
    args = ["-c", str(site.config), "report", "runbook", "--lang", "en", "--no-pdf"]
    assert main([*args, "--restore-dir", str(site.source), "-o", str(out)]) == 0
    text = out.read_text()
    assert "overlaps the source" in text
    assert not _blocks(_section(text, "3.1 local"))


def test_the_postgresql_block_recovers_to_a_point_in_time(
    tmp_path: Path, postgres_archive: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    """The PITR block, run as printed (only TARGET_TIME set, as its comment says), opens
    the database from the replica's WAL: the row before the target is there, the one after
    is not; the check block's query shows it."""
    history = History(postgres_archive)
    replica = tmp_path / "replica"
    shutil.copytree(history.archive, replica)  # what the replication shipped
    # postgres runs as its own account: the restore directory must be reachable to it
    restore_dir = Path(tempfile.mkdtemp(prefix="sentinel-runbook-", dir="/tmp"))
    restore_dir.chmod(0o755)
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[[replication]]\nname = "pgdb"\nkind = "archive-log"\n'
        f"source = {_toml(history.archive)}\ntarget = {_toml(replica)}\n"
        f'[replication.database]\npreset = "postgresql"\n'
        f"base_backup_dir = {_toml(history.plain.parent)}\n"
        f"[replication.database.drill]\ncheck_query = {_toml(CHECK)}\n"
    )
    out = tmp_path / "runbook.md"
    args = ["-c", str(cfg), "report", "runbook", "--lang", "en", "--no-pdf"]
    assert main([*args, "--restore-dir", str(restore_dir), "-o", str(out)]) == 0
    text = out.read_text()
    assert "no drill recorded" in text
    (block,) = _blocks(_section(text, "3.1 pgdb"))
    assert block.count('TARGET_TIME=""') == 1
    block = block.replace('TARGET_TIME=""', f'TARGET_TIME="{iso(history.between)}"', 1)
    data = restore_dir / "pgdb" / "data"
    try:
        done = _bash(block, tmp_path, tmp_path)
        assert done.returncode == 0, done.stderr + done.stdout
        (check,) = _blocks(_section(text, "4.1 pgdb"))
        checked = _bash(check, tmp_path, tmp_path)
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.strip() == "before"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [
                    *("runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl")),
                    *("-D", str(data), "-m", "immediate", "-w", "stop"),
                ],
                capture_output=True,
                check=False,
                timeout=60,
            )
        shutil.rmtree(restore_dir, ignore_errors=True)


def test_a_keeper_replication_restores_from_the_newest_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sentinel_bin: Path
) -> None:
    """At a keeper the landing module takes writes only: the runbook restores from the
    keeper's newest snapshot, and the keeper drill is what its RTO row shows."""
    src = tmp_path / "src"
    for i, name in enumerate(HOSTILE):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(f"room document {i}\n".encode() * (i + 3))
    keeper = Keeper(tmp_path / "keeper")
    cli = keeper_config(tmp_path, src, keeper, f"history = {_toml(keeper.snapshots)}\n")
    assert main([*cli, "sync", "--full"]) == 0
    keeper.snapshot(safe_as_of=time.time() - 3600)
    (src / "plain.txt").write_bytes(b"changed before the newest snapshot\n")
    assert main([*cli, "sync", "--full"]) == 0
    newest = keeper.snapshot(safe_as_of=time.time())
    assert main([*cli, "drill", "docs"]) == 0

    restore_dir = tmp_path / "restore"
    out = tmp_path / "runbook.md"
    args = [*cli[:2], "report", "runbook", "--lang", "en", "--no-pdf"]
    assert main([*args, "--restore-dir", str(restore_dir), "-o", str(out)]) == 0
    text = out.read_text()
    assert re.search(
        rf"^\| docs \| keeper snapshot \| [^|]+ \| passed \| [\dhms.]+ \| {len(HOSTILE)} \|$",
        text,
        re.M,
    ), text
    (block,) = _blocks(_section(text, "3.1 docs"))
    done = _bash(block, tmp_path, sentinel_bin)
    assert done.returncode == 0, done.stderr
    assert f"snapshot: {newest}" in done.stdout
    assert tree(src) == tree(restore_dir / "docs")


def test_a_failed_drill_is_recorded_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[[replication]]\nname = "docs"\nsource = {_toml(src)}\n'
        f"target = {_toml(tmp_path / 'replica')}\n"
    )
    assert main(["-c", str(cfg), "backup", "sync", "--full"]) == 0
    assert main(["-c", str(cfg), "backup", "drill"]) == 0
    (src / "b.txt").write_text("not shipped yet")
    assert main(["-c", str(cfg), "backup", "drill"]) == 1
    out = tmp_path / "runbook.md"
    args = ["-c", str(cfg), "report", "runbook", "--lang", "en", "--no-pdf", "-o", str(out)]
    assert main(args) == 0
    # the failed drill measured no recovery: no RTO beside it; the RTO on paper is the
    # last passed drill's, on the row under it
    assert re.search(
        r"^\| docs \| replica \| [^|]+ \| FAILED: 1 difference from the source \| - \| 1 \|\n"
        r"\| docs \| replica \| [^|]+ \| passed \| [\dhms.]+ \| 1 \|$",
        out.read_text(),
        re.M,
    ), out.read_text()


def test_oracle_commands_are_printed_with_the_password_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[[replication]]\nname = "ora"\nkind = "archive-log"\n'
        f"source = {_toml(tmp_path / 'arch')}\ntarget = {_toml(tmp_path / 'replica')}\n"
        f'[replication.database]\npreset = "oracle"\n'
        f"[replication.database.drill]\n"
        f'restore_command = "rman target sys/Tiger9secret@orcl cmdfile={{scratch}}/r.rman"\n'
        f'recover_command = "sqlplus -s sys/Tiger9secret@orcl as sysdba @{{logs}}/rec.sql"\n'
        f'check_command = "echo ok"\n'
    )
    out = tmp_path / "runbook.md"
    args = ["-c", str(cfg), "report", "runbook", "--no-pdf", "-o", str(out)]
    assert main(args) == 0
    text = out.read_text()
    assert "Tiger9secret" not in text
    (block,) = _blocks(_section(text, "3.1 ora"))
    assert 'rman target sys/****@orcl cmdfile="$RESTORE"/r.rman' in block
    assert 'sqlplus -s sys/****@orcl as sysdba @"$RESTORE/logs"/rec.sql' in block
    assert "echo ok" in block


def test_an_ssh_replica_restores_with_the_printed_ssh_options(
    tmp_path: Path, sshd: SshServer, capsys: pytest.CaptureFixture[str], sentinel_bin: Path
) -> None:
    """rsync over ssh with its key, port and known hosts, quoted inside -e: the block runs
    as printed and gets every hostile name back."""
    src = tmp_path / "src"
    for i, name in enumerate(HOSTILE):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(f"ssh document {i}\n".encode() * (i + 2))
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[[replication]]\nname = "offsite"\nsource = {_toml(src)}\n'
        f"target = {_toml(sshd.address())}\nssh_port = {sshd.port}\n"
        f"identity_file = {_toml(sshd.identity)}\nknown_hosts = {_toml(sshd.known_hosts)}\n"
    )
    cli = ["-c", str(cfg)]
    assert main([*cli, "backup", "sync", "--full", "--init-target"]) == 0
    assert main([*cli, "backup", "drill"]) == 0
    restore_dir = tmp_path / "restore"
    out = tmp_path / "runbook.md"
    args = [*cli, "report", "runbook", "--no-pdf", "--restore-dir", str(restore_dir)]
    assert main([*args, "-o", str(out)]) == 0
    text = out.read_text()
    assert sshd.identity.read_text().splitlines()[1] not in text  # the key file is named only
    blocks = _blocks(_section(text, "3.1 offsite"))
    assert "ssh -o BatchMode=yes" in blocks[0]
    done = _bash(blocks[0], tmp_path, sentinel_bin)
    assert done.returncode == 0, done.stderr
    assert tree(src) == tree(restore_dir / "offsite")
    (check,) = _blocks(_section(text, "4.1 offsite"))
    checked = _bash(check, tmp_path, sentinel_bin)
    assert checked.returncode == 0 and checked.stdout == "", checked


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_example_config_renders_without_a_secret(lang: Lang) -> None:
    config_file = WORKTREE / "examples" / "sentinel.toml"
    config = load_config(config_file)
    ctx = ReportContext(
        config=config,
        config_path=config_file,
        config_hash=config_hash(config),
        generated=time.time(),
        lang=lang,
        state=None,
        restore_dir=Path("/srv/sentinel-restore"),
    )
    text = runbook.render(ctx)
    assert ("기록된 훈련 없음" if lang == "ko" else "no drill recorded") in text
    for rc in config.replication:
        assert f"3.{config.replication.index(rc) + 1} {rc.name}" in text
    if config.alerts.apprise_config is not None:
        secrets = [s for ch in load_channels(config.alerts.apprise_config) for s in ch.secrets]
        assert secrets
        for secret in secrets:
            assert secret not in text


def test_a_drill_that_cannot_be_recorded_says_so_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A passed drill nobody can see later is not a passed drill: status and the runbook
    would still say "no drill recorded"."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f"[daemon]\nstate_dir = {_toml(tmp_path / 'state')}\n"
        f'[[replication]]\nname = "docs"\nsource = {_toml(src)}\n'
        f"target = {_toml(tmp_path / 'replica')}\n"
    )
    assert main(["-c", str(cfg), "backup", "sync", "--full"]) == 0
    with sqlite3.connect(tmp_path / "state" / DB_NAME) as db:
        db.execute("DROP TABLE drill")  # the record's table gone: the insert fails
    capsys.readouterr()
    assert main(["-c", str(cfg), "backup", "drill"]) == 1
    captured = capsys.readouterr()
    assert "DRILL OK" in captured.out
    assert "docs: the drill was not recorded (no such table: drill)" in captured.err
