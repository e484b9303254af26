"""Documents the daemon's account may not read (another user's 0600 file, a 0700 directory):
the real daemon, run as an unprivileged user like the unit's User=sentinel, with real rsync.
Each is set aside and named in a warning alarm, the rest ships, nothing counts as the
replica failing, and once read access is granted (setfacl) it ships and the alarm clears."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.readability import FILE_DENIED, unreadable_reason
from backup.replicator import UNREADABLE_RETRY, Replicator
from backup.spec import ReplicationSpec
from backup.transport import parse_target
from sentinel import migrations
from sentinel.store import Store
from tests.backup.unreadable_room import (
    NOBODY,
    Room,
    needs_root,
    open_room,
    probe,
    probe_dirs,
)
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until_sync

pytestmark = needs_root


@pytest.fixture
def room(http_sink: HttpSink) -> Iterator[Room]:
    with open_room(http_sink) as r:
        yield r


def test_unreadable_documents_are_named_in_a_warning_and_ship_once_access_is_granted(
    room: Room,
) -> None:
    r = room
    r.start()
    until_sync(lambda: (r.replica / "minutes.txt").exists(), 30, "the first sync")

    # Two private files in one batch: before, nothing of that batch shipped, so it was
    # retried for ever as "replication failing" (warning at 3, critical at 10 failures)
    # and held every later change behind it.
    r.root_file("budget-a.hwp", "budget A\n")
    r.root_file("budget-b.hwp", "budget B\n")
    until_sync(r.alarm, 30, "the replication_unreadable alarm")
    alarm = r.alarm()
    assert alarm is not None
    assert alarm["severity"] == "warning"
    assert alarm["reason"] == f"{r.source}/budget-a.hwp (+1)"
    row = r.replication()
    assert row["consecutive_failures"] == 0, row
    assert row["quarantine"]["unreadable"] == 2
    assert sorted(p["path"] for p in row["quarantine"]["paths"]) == ["budget-a.hwp", "budget-b.hwp"]
    # not paged twice: the generic "files that cannot be replicated" stays quiet
    kinds = {a["kind"] for a in r.status()["alarms"]}
    assert kinds == {"replication_unreadable"}, kinds

    # the rest still ships at once
    (r.source / "agenda.txt").write_text("agenda\n")
    until_sync(lambda: (r.replica / "agenda.txt").exists(), 30, "a later document to ship")

    # access granted the documented way: the files ship and the alarm clears
    subprocess.run(
        ["setfacl", "-m", f"u:{NOBODY}:r", r.source / "budget-a.hwp", r.source / "budget-b.hwp"],
        check=True,
    )
    until_sync(
        lambda: (r.replica / "budget-b.hwp").exists() and (r.replica / "budget-a.hwp").exists(),
        30,
        "the granted files to ship",
    )
    assert (r.replica / "budget-a.hwp").read_text() == "budget A\n"
    until_sync(lambda: r.alarm() is None, 30, "the alarm to clear")

    # a directory the account may not enter (the kernel refuses to watch it): named too;
    # `setfacl -R -m u:…:rX` on it (scripts/install.sh grant-read) brings its files over
    os.mkdir(r.source / "hr", 0o700)
    r.root_file("hr/payroll.xls", "payroll\n")
    until_sync(
        lambda: (r.alarm() or {}).get("reason", "").startswith(f"{r.source}/hr"),
        30,
        "the alarm naming the directory",
    )
    subprocess.run(["setfacl", "-R", "-m", f"u:{NOBODY}:rX", r.source / "hr"], check=True)
    until_sync(
        lambda: (r.replica / "hr" / "payroll.xls").exists(), 30, "the directory's file to ship"
    )
    until_sync(lambda: r.alarm() is None, 30, "the alarm to clear again")
    assert r.replication()["quarantine"]["count"] == 0
    # the pages (waited for last: Apprise's first send is slow on a loaded machine)
    until_sync(
        lambda: any(f"{r.source}/budget-a.hwp" in p.message for p in r.sink.delivered("/long")),
        30,
        "the page naming the file",
    )
    r.stop()
    assert "Traceback" not in r.log.read_text()


def test_access_granted_on_a_directory_ships_the_files_set_aside_below_it() -> None:
    """`setfacl -m u:sentinel:rx DIR` (or a chmod) is no event for the files below DIR that
    were readable by their own mode: they get another try at once. Before, they waited for
    their own next change or the next full pass (nightly)."""
    with probe_dirs() as dirs:
        source, replica = dirs[0], dirs[1]
        (source / "a").mkdir(mode=0o744)  # listable, but not enterable by others
        with probe(dirs, "a/report.hwp", "a/report.hwp", "events") as proc:
            assert proc.stdout is not None and proc.stderr is not None
            (source / "a" / "report.hwp").write_text("report\n")  # 0644: readable by mode
            assert proc.stdout.readline().strip() == "ASIDE", proc.stderr.read()
            subprocess.run(["setfacl", "-m", f"u:{NOBODY}:rx", source / "a"], check=True)
            out, err = proc.communicate(timeout=40)
        assert proc.returncode == 0 and "SHIPPED" in out, err[-2000:]
        assert (replica / "a" / "report.hwp").read_text() == "report\n"


def test_a_directory_it_can_list_but_not_enter_does_not_fail_every_full_pass() -> None:
    """`setfacl -m u:sentinel:r` without X on a directory: the account can list it but not
    enter it. rsync's recursion fails on it (exit 23) while a batch shipping it as "dir/"
    with its unreadable files set aside works, so splitting never isolated it and the full
    pass failed again after every backoff, for ever. Now the walk after a failed full pass
    sets the directory aside; the next full pass goes through around it, and access granted
    later ships what is in it."""
    with probe_dirs() as dirs:
        source, replica = dirs[0], dirs[1]
        (source / "ok.txt").write_text("ok\n")
        (source / "a").mkdir(mode=0o755)
        (source / "a" / "report.hwp").write_text("report\n")
        (source / "a").chmod(0o744)  # others may list it, not enter it
        with probe(dirs, "a", "a/report.hwp", "full") as proc:
            assert proc.stdout is not None and proc.stderr is not None
            # "a" set aside and a full pass that succeeded around it
            assert proc.stdout.readline().strip() == "ASIDE", proc.stderr.read()
            subprocess.run(["setfacl", "-m", f"u:{NOBODY}:rx", source / "a"], check=True)
            out, err = proc.communicate(timeout=40)
        assert proc.returncode == 0 and "SHIPPED" in out, err[-2000:]
        assert (replica / "ok.txt").exists()
        assert (replica / "a" / "report.hwp").read_text() == "report\n"


async def test_a_path_set_aside_as_unreadable_is_tried_again_when_readable(
    tmp_path: Path,
) -> None:
    """The backstop for access that changes without an event: every UNREADABLE_RETRY the
    daemon opens the paths set aside as unreadable, and those it can read now go back to
    the journal. (Run as root here, which reads everything: readable now.)"""
    source = tmp_path / "src"
    source.mkdir()
    (source / "salary.hwp").write_text("salary\n")
    why = FILE_DENIED
    assert unreadable_reason(why)
    store = await Store.open(tmp_path / "state")
    try:
        await migrations.migrate(store)
        rep = Replicator(
            ReplicationSpec(
                "docs", source, parse_target(str(tmp_path / "r")), runtime_dir=tmp_path / "run"
            ),
            store.db,
            store.write,
        )
        await rep.load()
        await rep.quarantine.add([("salary.hwp", why)])
        assert rep.health()["unreadable"] == 1
        await rep._retry_unreadable(1000.0)  # the first look starts the clock
        assert await rep.journal.paths() == {"salary.hwp"}
        assert len(rep.quarantine) == 0
        # the alarm stays until the path really ships (open() working is no proof for rsync)
        assert rep.health()["unreadable"] == 1
        # set aside again (it failed once more): not looked at before UNREADABLE_RETRY has
        # passed (root could read it, so a look would take it out), then taken out again
        await rep.quarantine.add([("salary.hwp", why)])
        await rep._retry_unreadable(1000.0 + UNREADABLE_RETRY / 2)
        assert "salary.hwp" in rep.quarantine.unreadable
        await rep._retry_unreadable(1000.0 + UNREADABLE_RETRY + 1)
        assert "salary.hwp" not in rep.quarantine.unreadable
    finally:
        await store.close()
