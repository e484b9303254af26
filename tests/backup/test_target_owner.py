"""The target marker names its replication: a second replication pointed at the same target
(a config check cannot see another server's config) pages and ships nothing, where its full
pass would have deleted the first one's replica. A marker from before names were written is
adopted by writing the name into it."""

from __future__ import annotations

from pathlib import Path

from backup.markers import TARGET_MARKER, check_target
from backup.replicator import Replicator
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running, tree
from tests.backup.identity import pages, started, write_only_rsyncd
from tests.fixtures.poll import until

TARGET_PAGE = ("firing", "critical", "replication_target_missing", "target missing or not mounted")

OLD_MARKER = (
    "This directory is a sentinel replica. Do not delete this file: without it\n"
    "sentinel takes the replica for a missing or unmounted disk and stops.\n"
)


def _docs(root: Path, tag: str) -> None:
    root.mkdir(parents=True)
    for i in range(3):
        (root / f"{tag}{i}.txt").write_text(f"{tag} {i}\n")


async def test_a_second_replication_on_the_same_target_pages_and_deletes_nothing(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    a_src, b_src, dst = tmp_path / "a", tmp_path / "b", tmp_path / "dst"
    _docs(a_src, "A")
    _docs(b_src, "B")
    target = parse_target(str(dst))
    spec_a = make_spec(a_src, target, runtime, name="a")
    async with running(spec_a, bstore) as rep:
        await caught_up(rep, a_src, dst)
    before = tree(dst)

    spec_b = make_spec(b_src, target, runtime, name="b")
    async with started(spec_b, bstore) as (rep_b, _):
        await until(lambda: rep_b.health()["target_missing"], 20, "target refused")
        assert "belongs to replication 'a'" in rep_b.health()["blocked"]
        assert TARGET_PAGE in await pages(bstore, rep_b)
        (b_src / "B9.txt").write_text("later\n")
        await until(lambda: rep_b.journal.pending > 0, 10, "change journaled")
        assert tree(dst) == before  # a's replica kept, nothing of b shipped
        assert "replication = a" in (dst / TARGET_MARKER).read_text()

    # b was really meant to have it (a renamed replication): the operator claims it
    by_hand = Replicator(spec_b, bstore.db, bstore.write)
    await by_hand.load()
    result = await by_hand.reconcile("claimed", init_target=True)
    assert result is not None and result.ok
    assert (dst / TARGET_MARKER).read_text().endswith("replication = b\n")
    assert (dst / "B9.txt").read_text() == "later\n"


async def test_a_marker_without_a_name_is_adopted(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _docs(src, "D")
    dst.mkdir()
    (dst / TARGET_MARKER).write_text(OLD_MARKER)
    spec = make_spec(src, parse_target(str(dst)), runtime)
    async with running(spec, bstore) as rep:
        await caught_up(rep, src, dst)
        assert not rep.health()["target_missing"]
    assert (dst / TARGET_MARKER).read_text().endswith("replication = docs\n")


async def test_a_write_only_rsyncd_target_named_by_another_replication_is_refused(
    tmp_path: Path, runtime: Path
) -> None:
    """The remote check cannot read the marker: it compares checksums with the marker this
    replication would write, and with an unnamed one."""
    src = tmp_path / "src"
    _docs(src, "R")
    with write_only_rsyncd(tmp_path / "rsyncd") as server:
        target = parse_target(server.url(), password_file=server.password_file)
        replica = server.module_dir / "replica"
        replica.mkdir()
        (replica / TARGET_MARKER).write_text(OLD_MARKER)
        spec = make_spec(src, target, runtime, name="docs")
        check = await check_target(spec)
        assert check.present and check.unnamed and check.owner is None
        (replica / TARGET_MARKER).write_text(OLD_MARKER + "replication = docs\n")
        check = await check_target(spec)
        assert check.present and not check.unnamed and check.owner is None
        (replica / TARGET_MARKER).write_text(OLD_MARKER + "replication = other\n")
        check = await check_target(spec)
        assert check.present and check.owner == ""
