"""The keeper's documented access on the health-center host, run as written and attacked.

Two real accounts (the writer the rooms push as, the keeper that owns the history), made by
the documented sysusers file; the documented tmpfiles layout; the documented
keeper-rsyncd.conf served both by a real rsync daemon on 127.0.0.1 and over a real sshd
through the documented forced command; the drill key's history module. Only paths, the
port, the allowed address and the account names are rewritten. Snapshots are taken AS THE
KEEPER ACCOUNT with the capability its unit grants. Every attack runs from the writer's side
with the documented access only (the ssh key, or the rsyncd password), and afterwards every
snapshot still holds its original bytes."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from backup.markers import TARGET_MARKER, check_target, write_target_marker
from backup.target import VERSIONS_DIR, Target, TargetError
from backup.transport import parse_target
from sentinel import migrations
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running, tree_diff
from tests.fixtures.keeper_host import NEEDS, ORIGINAL, ROOM, KeeperHost, files, room_tree, run

WAYS = ["ssh", "rsyncd"]

pytestmark = NEEDS


# --- the setup itself ------------------------------------------------------------------------


def test_the_documented_layout_gives_each_account_only_its_part(host: KeeperHost) -> None:
    srv = host.landing.parents[1]

    def owner_mode(path: Path) -> tuple[str, str, int]:
        st = path.stat()
        user = run("id", "-nu", str(st.st_uid)).stdout.strip()
        group = run("getent", "group", str(st.st_gid)).stdout.split(":")[0]
        return user, group, stat.S_IMODE(st.st_mode)

    assert owner_mode(srv / "landing") == ("root", host.writer, 0o710)
    assert owner_mode(host.landing) == (host.writer, host.writer, 0o700)
    assert owner_mode(host.snapshots) == (host.keeper, host.keeper, 0o700)
    assert owner_mode(host.snapshots / ROOM) == (host.keeper, host.keeper, 0o700)
    assert owner_mode(host.receipts) == (host.keeper, host.keeper, 0o755)
    for account in (host.writer, host.keeper):
        shell = run("getent", "passwd", account).stdout.strip().split(":")[6]
        assert shell == "/bin/sh"  # sshd runs forced commands through the login shell


def test_the_keeper_reads_the_landing_area_only_with_the_units_capability(
    landed: KeeperHost,
) -> None:
    """The writer decides the landing area's modes; the unit's CAP_DAC_READ_SEARCH is what
    lets the keeper read them anyway."""
    without = landed.snapshot(capability=False)
    assert without.returncode != 0
    assert "Permission denied" in without.stderr
    assert len(landed.history) == 1
    with_cap = landed.take()
    assert with_cap["changed"] == 0 and with_cap["removed"] == 0
    landed.assert_history_intact()


@pytest.mark.parametrize("way", WAYS)
def test_the_rooms_push_with_versions_lands_and_is_snapshotted(
    landed: KeeperHost, way: str
) -> None:
    changed = {**ORIGINAL, "index.txt": b"index, version 2\n"}
    del changed["2026/approvals/doc-002.hwp"]
    src = room_tree(landed, changed)
    same = landed.landing / "2026/approvals/doc-001.hwp"  # unchanged: same mtime, not sent
    os.utime(
        src / "2026/approvals/doc-001.hwp", ns=(same.stat().st_atime_ns, same.stat().st_mtime_ns)
    )
    args = [
        "-a",
        "--delete",
        "--backup",
        f"--backup-dir={VERSIONS_DIR}/b2",
        f"--filter=P /{VERSIONS_DIR}/",
        f"{src}/",
        f"::{ROOM}/",
    ]
    pushed = landed.rsync_as_writer(way, *args)
    if pushed.returncode in (11, 23):
        # rsync 3.5.0 (any transport, even local and as root): when a push both deletes and
        # replaces files and the --backup-dir does not exist yet, its generator and receiver
        # race to create it and one may fail ("make_backup ... File exists", or exit 11 at
        # rsync.c(900)). The replicator retries a failed batch; so does this test, once.
        pushed = landed.rsync_as_writer(way, *args)
    assert pushed.returncode == 0, pushed.stderr
    versions = landed.landing / VERSIONS_DIR / "b2"
    assert files(versions) == {
        rel: ORIGINAL[rel] for rel in ("index.txt", "2026/approvals/doc-002.hwp")
    }
    second = landed.take()
    # the two kept versions are new, index.txt changed, doc-002 left the landing area
    assert (second["added"], second["changed"], second["removed"]) == (2, 1, 1)
    landed.assert_history_intact()


# --- attacks from the writer's side ----------------------------------------------------------


@pytest.mark.parametrize("way", WAYS)
def test_delete_everything_goes_through_and_history_keeps_every_byte(
    landed: KeeperHost, way: str
) -> None:
    """Not refusable without breaking the room's own deletions: the landing area empties
    (exit 0), the snapshots keep everything, and the keeper's next snapshot reports every
    file removed (the keeper pages that as a mass change)."""
    empty = landed.base / "empty"
    empty.mkdir()
    result = landed.rsync_as_writer(way, "-r", "--delete", f"{empty}/", f"::{ROOM}/")
    assert result.returncode == 0, result.stderr
    assert files(landed.landing) == {}
    landed.assert_history_intact()
    after = landed.take()
    assert after["removed"] == len(ORIGINAL)
    assert after["files"] == 0


@pytest.mark.parametrize("way", WAYS)
def test_overwrite_without_backup_goes_through_and_history_keeps_the_old_bytes(
    landed: KeeperHost, way: str
) -> None:
    src = room_tree(landed, {"index.txt": b"ransom note\n"})
    result = landed.rsync_as_writer(way, "-a", f"{src}/", f"::{ROOM}/")
    assert result.returncode == 0, result.stderr
    assert (landed.landing / "index.txt").read_bytes() == b"ransom note\n"
    landed.assert_history_intact()
    assert landed.take()["changed"] == 1


IN_PLACE = [
    ["--inplace"],
    ["--append"],
    ["--append-verify"],
    ["--write-devices"],  # implies --inplace
    ["--remote-option=--inplace"],  # asked of the daemon directly, not by the client
    ["--remote-option=--append"],
]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("option", IN_PLACE, ids=lambda o: o[0].lstrip("-"))
def test_in_place_writes_are_refused(landed: KeeperHost, way: str, option: list[str]) -> None:
    doc = landed.landing / "2026/approvals/doc-001.hwp"
    before = doc.stat()
    # longer, so --append would have something to add to the existing bytes
    src = room_tree(
        landed,
        {
            "2026/approvals/doc-001.hwp": ORIGINAL["2026/approvals/doc-001.hwp"]
            + b"appended by an attacker"
        },
    )
    result = landed.rsync_as_writer(way, "-a", *option, f"{src}/", f"::{ROOM}/")
    assert result.returncode == 4, result.stderr  # rsync: "requested action not supported"
    assert "The server is configured to refuse --" in result.stderr
    assert doc.read_bytes() == ORIGINAL["2026/approvals/doc-001.hwp"]
    assert (doc.stat().st_ino, doc.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    landed.assert_history_intact()


@pytest.mark.parametrize("way", WAYS)
def test_truncating_in_place_is_refused_and_an_empty_overwrite_is_a_new_file(
    landed: KeeperHost, way: str
) -> None:
    doc = landed.landing / "index.txt"
    inode = doc.stat().st_ino
    src = room_tree(landed, {"index.txt": b""})
    refused = landed.rsync_as_writer(way, "-r", "--inplace", "-I", f"{src}/", f"::{ROOM}/")
    assert refused.returncode == 4, refused.stderr
    assert doc.read_bytes() == ORIGINAL["index.txt"]

    # without --inplace the same push replaces the file by a new, empty one
    replaced = landed.rsync_as_writer(way, "-r", "-I", f"{src}/", f"::{ROOM}/")
    assert replaced.returncode == 0, replaced.stderr
    assert doc.read_bytes() == b"" and doc.stat().st_ino != inode
    landed.assert_history_intact()
    assert landed.take()["changed"] == 1


@pytest.mark.parametrize("way", WAYS)
def test_copy_devices_is_a_client_option_and_lands_as_an_ordinary_new_file(
    landed: KeeperHost, way: str
) -> None:
    """`refuse options = copy-devices` cannot act on a push: the client, the sender, reads
    its device and never tells the daemon. What lands is a new file (new inode), an
    ordinary overwrite that history keeps."""
    src = landed.base / "devices"
    src.mkdir()
    os.mknod(src / "index.txt", 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null
    doc = landed.landing / "index.txt"
    inode = doc.stat().st_ino
    result = landed.rsync_as_writer(way, "-r", "--copy-devices", "-I", f"{src}/", f"::{ROOM}/")
    assert result.returncode == 0, result.stderr
    assert doc.read_bytes() == b"" and doc.stat().st_ino != inode
    assert stat.S_ISREG(doc.stat().st_mode)
    landed.assert_history_intact()


@pytest.mark.parametrize("way", WAYS)
def test_chmod_reaches_only_the_landing_area(landed: KeeperHost, way: str) -> None:
    """`--chmod=000 -p` changes the writer's own files (incoming chmod keeps them u+rw);
    the snapshots' keeper-owned inodes keep their modes, and the keeper still reads it all."""
    src = room_tree(landed, ORIGINAL)
    result = landed.rsync_as_writer(way, "-r", "-p", "--chmod=D000,F000", f"{src}/", f"::{ROOM}/")
    assert result.returncode == 0, result.stderr
    doc = landed.landing / "index.txt"
    assert stat.S_IMODE(doc.stat().st_mode) == 0o600  # 000 + the module's Fu+rw
    landed.assert_history_intact()
    after = landed.take()
    assert after["removed"] == 0
    newest = max(landed.history, key=lambda p: p.name)
    assert {rel: data for rel, (data, _mode) in landed.history[newest].items()} == ORIGINAL


@pytest.mark.parametrize("way", WAYS)
def test_the_writer_cannot_list_or_read_anything_but_its_receipt(
    landed: KeeperHost, way: str
) -> None:
    _options, prefix = landed.writer_access(way)
    listing = landed.rsync_as_writer(way, "::" if way == "ssh" else prefix)
    assert ROOM not in listing.stdout and "history" not in listing.stdout

    out = landed.base / "stolen"
    read_landing = landed.rsync_as_writer(way, "-r", f"::{ROOM}/", f"{out}/")
    assert read_landing.returncode != 0
    assert "module is write only" in read_landing.stderr

    out.mkdir()
    receipt = landed.rsync_as_writer(way, "-r", f"::{ROOM}-receipt/", f"{out}/receipt/")
    assert receipt.returncode == 0, receipt.stderr
    receipt_bytes = (landed.receipts / "receipt.json").read_bytes()
    assert files(out / "receipt") == {"receipt.json": receipt_bytes}

    snapshots = str(landed.snapshots)
    for source in (
        f"::{ROOM}-receipt/../snapshots/{ROOM}/",
        f"::{ROOM}-receipt/../../snapshots/{ROOM}/",
        f"::{ROOM}-receipt/{snapshots}/{ROOM}/",
        f"::{ROOM}-receipt/../../landing/{ROOM}/",
        f"::{ROOM}-history/",
        f"::{ROOM}/../snapshots/",
    ):
        stolen = landed.rsync_as_writer(way, "-r", source, f"{out}/escape/")
        assert stolen.returncode != 0, source
        found = files(out / "escape") if (out / "escape").exists() else {}
        assert found == {}, (source, found)

    # nor write into the history: the path is resolved inside the module
    src = room_tree(landed, {"planted.txt": b"x"})
    for dest in (
        f"::{ROOM}/../snapshots/{ROOM}/",
        f"::{ROOM}/{snapshots}/{ROOM}/",
        f"::{ROOM}-receipt/",
    ):
        landed.rsync_as_writer(way, "-r", f"{src}/", dest)
    assert not list(landed.snapshots.rglob("planted.txt"))
    assert not list(landed.receipts.rglob("planted.txt"))
    landed.assert_history_intact()


@pytest.mark.parametrize("way", WAYS)
def test_options_that_name_paths_and_symlinks_stay_inside_the_landing_area(
    landed: KeeperHost, way: str
) -> None:
    """--backup-dir, --temp-dir, --partial-dir, --link-dest and a planted symlink, each
    aimed at the history: rsyncd resolves them inside the module, or they find nothing the
    writer may touch."""
    history = landed.snapshots / ROOM
    snapshots = sorted(history.iterdir())
    src = room_tree(landed, {"index.txt": b"rewritten\n", "planted.txt": b"x"})
    for option in (
        f"--backup-dir=../../snapshots/{ROOM}",
        f"--backup-dir={history}",
        f"--temp-dir={history}",
        f"--partial-dir={history}",
        f"--link-dest={history}",
        "--compare-dest=../../snapshots",
    ):
        landed.rsync_as_writer(way, "-r", "-b", option, f"{src}/", f"::{ROOM}/")
    links = landed.base / f"links-{way}"
    (links / "evil").mkdir(parents=True)
    (links / "evil" / "planted.txt").write_bytes(b"x")
    link_src = landed.base / f"link-{way}"
    link_src.mkdir()
    (link_src / "evil").symlink_to(history)
    assert landed.rsync_as_writer(way, "-rl", f"{link_src}/", f"::{ROOM}/").returncode == 0
    stored = os.readlink(landed.landing / "evil")
    assert stored.startswith("/rsyncd-munged/"), stored  # munge symlinks = true
    snapshots.append(Path(str(landed.take()["path"])))
    # the keeper keeps the link as a link, never what it points at
    assert os.readlink(snapshots[-1] / "evil") == stored
    # a push through the link (--keep-dirlinks) replaces the munged link by a directory
    landed.rsync_as_writer(way, "-r", "--keep-dirlinks", f"{links}/", f"::{ROOM}/")
    assert files(landed.landing / "evil") == {"planted.txt": b"x"}
    assert sorted(history.iterdir()) == snapshots  # nothing landed beside the snapshots
    landed.assert_history_intact()  # nor inside one


def test_the_writer_key_gets_no_shell(landed: KeeperHost) -> None:
    ssh = landed.ssh(landed.writer_key).split()
    for command in ("sh -c id", "id", "cat /etc/passwd"):
        shell = run(*ssh, f"{landed.writer}@127.0.0.1", command)
        assert "uid=" not in shell.stdout and "root:" not in shell.stdout, command
        assert shell.returncode != 0 or shell.stdout.startswith("@RSYNCD:"), command


# --- the drill key ---------------------------------------------------------------------------


def test_the_drill_key_reads_the_snapshots_and_nothing_else(landed: KeeperHost) -> None:
    # in the landing area only, never snapshotted: the drill key must never see it
    src = room_tree(landed, {"landing-only.txt": b"not yet history"})
    assert landed.rsync_as_writer("ssh", "-r", f"{src}/", f"::{ROOM}/").returncode == 0
    out = landed.base / "drill"
    read = landed.rsync_as_drill("-r", f"::{ROOM}-history/", f"{out}/")
    assert read.returncode == 0, read.stderr
    (snapshot,) = landed.history
    assert files(out / snapshot.name) == ORIGINAL

    for source in (
        f"::{ROOM}/",
        f"::{ROOM}-receipt/",
        f"::{ROOM}-history/../../landing/{ROOM}/",
        f"::{ROOM}-history/{landed.landing}/",
        f"::{ROOM}-history/../../../",
        f"::{ROOM}-history/../../receipts/{ROOM}/",
    ):
        escape = out / "escape"
        shutil.rmtree(escape, ignore_errors=True)
        landed.rsync_as_drill("-r", source, f"{escape}/")
        found = files(escape) if escape.exists() else {}
        # what a path escape may reach is the history module itself, resolved inside it
        assert all(rel.split("/", 1)[0] in {p.name for p in landed.history} for rel in found), (
            source,
            sorted(found),
        )

    shell = run(*landed.ssh(landed.drill_key).split(), f"{landed.keeper}@127.0.0.1", "sh -c id")
    assert "uid=" not in shell.stdout


def test_the_drill_key_cannot_write_or_delete_history(landed: KeeperHost) -> None:
    empty = landed.base / "empty"
    empty.mkdir()
    deleted = landed.rsync_as_drill("-r", "--delete", f"{empty}/", f"::{ROOM}-history/")
    assert deleted.returncode != 0
    # the daemon's refusal text races ssh's close: seen as exit 1 with nothing on stderr
    # once in a CI run. The refusal itself is the exit code and the intact history below.
    assert not deleted.stderr or "read only" in deleted.stderr, deleted.stderr
    src = room_tree(landed, {"planted.txt": b"x"})
    for dest in (f"::{ROOM}-history/", f"::{ROOM}-history/../../landing/{ROOM}/"):
        written = landed.rsync_as_drill("-r", f"{src}/", dest)
        assert written.returncode != 0, dest
    chmod = landed.rsync_as_drill("-r", "-p", "--chmod=000", f"{src}/", f"::{ROOM}-history/")
    assert chmod.returncode != 0
    assert not list(landed.snapshots.rglob("planted.txt"))
    assert not list(landed.landing.rglob("planted.txt"))
    landed.assert_history_intact()


def test_the_write_key_cannot_reach_the_history_module(landed: KeeperHost) -> None:
    out = landed.base / "stolen"
    result = landed.rsync_as_writer("ssh", "-r", f"::{ROOM}-history/", f"{out}/")
    assert result.returncode != 0
    assert "Unknown module" in result.stderr
    assert not out.exists() or files(out) == {}


# --- a whole room replication over the documented access ------------------------------------
# --- a whole room replication over the documented access ------------------------------------


def test_host_module_targets_are_ssh_targets_that_name_a_module() -> None:
    target = parse_target("sentinel-replica@health-center::main/", ssh_port=2222)
    assert (target.kind, target.url, target.daemon_over_ssh) == (
        "ssh",
        "sentinel-replica@health-center::main",
        True,
    )
    assert target.path() == "sentinel-replica@health-center::main/"
    assert target.path(VERSIONS_DIR) == f"sentinel-replica@health-center::main/{VERSIONS_DIR}"
    assert parse_target("u@h::main/sub/dir/").path("x") == "u@h::main/sub/dir/x"
    assert not parse_target("u@h:main").daemon_over_ssh  # a home-relative path, not a module
    # no module, or a path where the module belongs: `h::` alone would make every
    # sub-path (`h::.sentinel-versions`) a module name of its own
    for bad in ("u@h::", "u@h::/srv/x", "u@h:::main"):
        with pytest.raises(TargetError, match="module"):
            parse_target(bad)
    with pytest.raises(TargetError, match="ssh key"):
        parse_target("u@h::main", password_file=Path("/etc/sentinel/rsync.password"))


def room_target(host: KeeperHost, way: str, runtime: Path) -> Target:
    if way == "ssh":
        return parse_target(
            f"{host.writer}@127.0.0.1::{ROOM}",
            ssh_port=host.ssh_port,
            identity_file=host.writer_key,
            known_hosts=host.known_hosts,
        )
    return parse_target(
        f"rsync://sentinel-replica@127.0.0.1:{host.rsyncd_port}/{ROOM}",
        password_file=host.password_file,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "state")
    await migrations.migrate(s)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def runtime() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="snt"))  # short: ssh ControlPath must fit 108 bytes
    yield d
    # end the replicator's ControlMaster now, not ControlPersist later: its session keeps
    # the writer account in use, and the account is removed after the test
    for socket in d.glob("cm-*"):
        run("ssh", "-F", "/dev/null", "-o", f"ControlPath={socket}", "-O", "exit", "keeper")
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("way", WAYS)
async def test_sentinel_checks_and_writes_its_target_marker_on_the_keeper(
    host: KeeperHost, runtime: Path, way: str
) -> None:
    """The marker check is a dry-run push, so the write-only module allows it."""
    src = room_tree(host, ORIGINAL)
    spec = make_spec(src, room_target(host, way, runtime), runtime)
    first = await check_target(spec)
    assert first.present is False, first.result and first.result.error
    assert (await write_target_marker(spec)).ok
    assert (host.landing / TARGET_MARKER).is_file()
    assert (await check_target(spec)).present is True


@pytest.mark.parametrize("way", WAYS)
async def test_a_room_replicates_to_the_keeper_with_versions_and_deletions(
    host: KeeperHost, store: Store, runtime: Path, way: str
) -> None:
    """The replicator against the documented keeper access: full pass, batches with
    --backup-dir versions, deletions, a same-size rewrite within one second (nanosecond
    mtimes reach the daemon as a remote option), verify; and the keeper snapshots it."""
    src = room_tree(host, ORIGINAL)
    target = room_target(host, way, runtime)
    if way == "ssh":
        assert target.daemon_over_ssh and target.path() == f"{host.writer}@127.0.0.1::{ROOM}/"
    doc = src / "2026/approvals/doc-001.hwp"
    second = 1_700_000_000 * 10**9
    os.utime(doc, ns=(second, second + 100_000_000))
    async with running(make_spec(src, target, runtime), store) as rep:
        await caught_up(rep, src, host.landing)
        first = host.take()
        assert first["added"] == len(ORIGINAL) + 1  # and sentinel's target marker

        new = host.base / "doc.new"
        new.write_bytes(b"B" * len(ORIGINAL["2026/approvals/doc-001.hwp"]))
        os.utime(new, ns=(second, second + 600_000_000))
        os.replace(new, doc)
        (src / "index.txt").unlink()
        await caught_up(rep, src, host.landing)
        record = await rep.verify()
        assert record["error"] is None and record["differences"] == 0

    versions = host.landing / VERSIONS_DIR
    kept_versions = {rel.split("/", 1)[1]: data for rel, data in files(versions).items()}
    assert kept_versions == {
        "2026/approvals/doc-001.hwp": ORIGINAL["2026/approvals/doc-001.hwp"],
        "index.txt": ORIGINAL["index.txt"],
    }
    assert not tree_diff(src, host.landing)
    after = host.take()
    assert (after["changed"], after["removed"]) == (1, 1)
    host.assert_history_intact()
