"""The state database: WAL, FULL sync, migrations per owner, transactions roll back."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sentinel.store import Store, open_readonly
from tests.fixtures.hops import hops
from tests.fixtures.tmpfs import fill, mounted_tmpfs

MIGRATIONS = (
    "CREATE TABLE demo_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    "ALTER TABLE demo_items ADD COLUMN note TEXT; "
    "CREATE INDEX demo_items_name ON demo_items(name);",
)


async def test_pragmas_and_migrations(store: Store) -> None:
    async with store.db.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"
    async with store.db.execute("PRAGMA synchronous") as cur:
        assert (await cur.fetchone())[0] == 2  # FULL
    async with store.db.execute("PRAGMA user_version") as cur:
        assert (await cur.fetchone())[0] >= 1
    await store.migrate("demo", MIGRATIONS[:1])
    await store.migrate("demo", MIGRATIONS)
    await store.migrate("demo", MIGRATIONS)  # idempotent
    async with store.write() as db:
        await db.execute("INSERT INTO demo_items(name, note) VALUES ('a', 'b')")
    async with store.db.execute("SELECT version FROM schema_version WHERE owner='demo'") as cur:
        assert (await cur.fetchone())[0] == 2


async def test_failed_transaction_rolls_back(store: Store) -> None:
    await store.migrate("demo", MIGRATIONS)
    with pytest.raises(RuntimeError):
        async with store.write() as db:
            await db.execute("INSERT INTO demo_items(name) VALUES ('lost')")
            raise RuntimeError("crash inside the transaction")
    async with store.db.execute("SELECT count(*) FROM demo_items") as cur:
        assert (await cur.fetchone())[0] == 0


async def test_newer_schema_is_refused(store: Store) -> None:
    await store.migrate("demo", MIGRATIONS)
    with pytest.raises(RuntimeError, match="newer than this sentinel knows"):
        await store.migrate("demo", MIGRATIONS[:1])


async def test_readonly_reader_sees_commits_while_writer_is_open(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        await store.migrate("demo", MIGRATIONS)
        async with store.write() as db:
            await db.execute("INSERT INTO demo_items(name) VALUES ('seen')")
        conn = open_readonly(tmp_path)
        assert conn is not None
        assert conn.execute("SELECT name FROM demo_items").fetchone()[0] == "seen"
        with pytest.raises(Exception, match="readonly"):
            conn.execute("INSERT INTO demo_items(name) VALUES ('no')")
        conn.close()
    finally:
        await store.close()


def test_readonly_without_database(tmp_path: Path) -> None:
    assert open_readonly(tmp_path) is None


async def test_cancelled_writer_leaves_no_open_transaction(store: Store) -> None:
    """A component cancelled inside its transaction (stop, reload) must not break the next
    writer with 'cannot start a transaction within a transaction'."""
    import asyncio

    await store.migrate("demo", MIGRATIONS)
    entered = asyncio.Event()

    async def slow_writer() -> None:
        async with store.write() as db:
            await db.execute("INSERT INTO demo_items(name) VALUES ('half')")
            entered.set()
            await asyncio.sleep(30)

    for _ in range(20):  # cancel at varying points, including during BEGIN itself
        task = asyncio.create_task(slow_writer())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    task = asyncio.create_task(slow_writer())
    await entered.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    async with store.write() as db:
        await db.execute("INSERT INTO demo_items(name) VALUES ('next')")
    async with store.db.execute("SELECT name FROM demo_items") as cur:
        assert [row[0] for row in await cur.fetchall()] == ["next"]


async def test_fast_write_commits_and_every_durable_write_is_full_sync(store: Store) -> None:
    await store.migrate("demo", MIGRATIONS)
    statements: list[str] = []
    await store.db.set_trace_callback(statements.append)
    for i in range(3):  # a run of journal commits switches the mode once, not per commit
        async with store.fast_write() as db:
            await db.execute("INSERT INTO demo_items(name) VALUES (?)", (f"journal row {i}",))
            async with db.execute("PRAGMA synchronous") as cur:
                assert (await cur.fetchone())[0] == 1  # NORMAL
    switches = [s for s in statements if s.startswith("PRAGMA synchronous=")]
    assert switches == ["PRAGMA synchronous=NORMAL"]
    with pytest.raises(RuntimeError):
        async with store.fast_write() as db:
            await db.execute("INSERT INTO demo_items(name) VALUES ('rolled back')")
            raise RuntimeError("boom")
    async with store.write() as db:  # a durable write after them is FULL again
        async with db.execute("PRAGMA synchronous") as cur:
            assert (await cur.fetchone())[0] == 2
        await db.execute("INSERT INTO demo_items(name) VALUES ('durable')")
    async with store.fast_write() as db, db.execute("PRAGMA synchronous") as cur:
        assert (await cur.fetchone())[0] == 1
    await store.db.set_trace_callback(None)
    async with store.db.execute("SELECT name FROM demo_items ORDER BY id") as cur:
        assert [r[0] for r in await cur.fetchall()] == [
            "journal row 0",
            "journal row 1",
            "journal row 2",
            "durable",
        ]


async def test_damaged_database_is_set_aside_and_a_fresh_one_started(tmp_path: Path) -> None:
    """Damage past the header (what quick_check finds, not only 'not a database')."""
    store = await Store.open(tmp_path)
    await store.migrate("demo", MIGRATIONS)
    async with store.write() as db:
        await db.executemany(
            "INSERT INTO demo_items(name) VALUES (?)", [("x" * 200,) for _ in range(200)]
        )
    await store.close()
    db_file = tmp_path / "sentinel.db"
    with db_file.open("r+b") as f:
        f.seek(4096 * 2)
        f.write(b"\xff" * 4096)

    store = await Store.open(tmp_path, resilient=True)
    try:
        assert store.recovered is not None and store.durable
        moved = Path(store.recovered["moved_to"])
        assert moved.name.startswith("sentinel.db.corrupt-") and moved.exists()
        await store.migrate("demo", MIGRATIONS)
        async with store.db.execute("SELECT count(*) FROM demo_items") as cur:
            assert (await cur.fetchone())[0] == 0  # fresh
    finally:
        await store.close()


async def test_replaced_file_is_noticed_and_ours_put_back(tmp_path: Path) -> None:
    store = await Store.open(tmp_path, resilient=True)
    try:
        await store.migrate("demo", MIGRATIONS)
        async with store.write() as db:
            await db.execute("INSERT INTO demo_items(name) VALUES ('ours')")
        other = tmp_path / "other.db"
        conn = sqlite3.connect(other)
        conn.execute("CREATE TABLE foreign_thing (x)")
        conn.commit()
        conn.close()
        os.replace(other, tmp_path / "sentinel.db")

        await store.check()
        assert not store.durable and store.problem == "file replaced by another while running"
        async with store.write() as db:  # still works, from memory
            await db.execute("INSERT INTO demo_items(name) VALUES ('meanwhile')")
        assert await store.try_durable()
        [aside] = tmp_path.glob("sentinel.db.replaced-*")
        assert sqlite3.connect(aside).execute("SELECT count(*) FROM foreign_thing").fetchone()
        reader = open_readonly(tmp_path)
        assert reader is not None
        names = [r[0] for r in reader.execute("SELECT name FROM demo_items ORDER BY id")]
        reader.close()
        assert names == ["ours", "meanwhile"]
    finally:
        await store.close()


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root to become an unprivileged user",
)
async def test_a_reader_who_may_not_write_reads_the_database_of_a_stopped_daemon(
    tmp_path: Path,
) -> None:
    """An admin in group sentinel runs `sentinel status` while the daemon is stopped: SQLite
    removed the -shm file at the daemon's last close, and the admin may not create it."""
    state = tmp_path / "state"
    state.mkdir()
    store = await Store.open(state)
    await store.migrate("demo", MIGRATIONS)
    async with store.write() as db:
        await db.execute("INSERT INTO demo_items(name) VALUES ('leak at the UPS')")
    await store.close()
    assert not (state / "sentinel.db-shm").exists()
    state.chmod(0o755)  # readable, not writable, by others: what group sentinel gets
    (state / "sentinel.db").chmod(0o644)
    script = (
        "import sys; from pathlib import Path; from sentinel.store import open_readonly; "
        "c = open_readonly(Path(sys.argv[1])); "
        "print(c.execute('SELECT name FROM demo_items').fetchone()[0])"
    )
    proc = await asyncio.to_thread(
        subprocess.run,
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            # reach the venv under /root like an admin reaches /opt/sentinel; write nothing
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            sys.executable,
            "-c",
            script,
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "leak at the UPS"


async def test_migrations_on_a_full_state_disk_run_in_memory(tmp_path: Path) -> None:
    """The first start after an upgrade on a nearly full state disk: the store opens on the
    file, the upgrade's migration does not fit. The daemon comes up from memory and pages,
    instead of a traceback and a restart loop."""
    upgrade = (
        MIGRATIONS[0],
        "CREATE TABLE demo_big (x TEXT); INSERT INTO demo_big "
        "SELECT printf('%.1000c', 'x') FROM (WITH RECURSIVE c(n) AS (SELECT 1 "
        "UNION ALL SELECT n + 1 FROM c WHERE n < 300) SELECT n FROM c);",
    )
    with mounted_tmpfs(tmp_path / "state", "2m") as state:
        store = await Store.open(state)
        await store.migrate("demo", upgrade[:1])
        await store.close()
        filler = fill(state)
        os.truncate(filler, filler.stat().st_size - 65536)  # room to open, not to upgrade
        store = await Store.open(state, resilient=True)
        try:
            assert store.durable
            await store.migrate("demo", upgrade)
            assert not store.durable
            async with store.db.execute("SELECT count(*) FROM demo_big") as cur:
                assert (await cur.fetchone())[0] == 300
        finally:
            await store.close()


async def test_a_one_hop_transaction_commits_in_one_call_and_rolls_back_on_error(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_write`: BEGIN, the statements, COMMIT in one trip to the database thread (the
    replication journal's cost was the trips, issue 18); an error inside undoes all of it."""
    await store.migrate("demo", MIGRATIONS)
    calls = hops(store, monkeypatch)

    def insert(conn: sqlite3.Connection) -> int:
        conn.executemany("INSERT INTO demo_items(name) VALUES (?)", [("a",), ("b",)])
        return int(conn.execute("SELECT count(*) FROM demo_items").fetchone()[0])

    assert await store.run_write(insert) == 2
    assert len(calls) == 1  # durable is the connection's mode already: no switch either

    def half(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO demo_items(name) VALUES ('lost')")
        raise RuntimeError("crash inside the transaction")

    with pytest.raises(RuntimeError, match="crash inside"):
        await store.run_write(half)
    assert not store.db.in_transaction
    async with store.db.execute("SELECT name FROM demo_items ORDER BY id") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["a", "b"]
    # a statement error (not ours) rolls back too, and the next transaction starts cleanly
    with pytest.raises(sqlite3.IntegrityError):
        await store.run_write(
            lambda conn: conn.executemany(
                "INSERT INTO demo_items(id, name) VALUES (?, ?)", [(10, "x"), (10, "y")]
            )
        )
    await store.run_write(lambda conn: conn.execute("INSERT INTO demo_items(name) VALUES ('c')"))
    async with store.db.execute("SELECT name FROM demo_items ORDER BY id") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["a", "b", "c"]


async def test_a_one_hop_transaction_is_durable_or_fast_as_asked(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.migrate("demo", MIGRATIONS)
    statements: list[str] = []
    await store.db.set_trace_callback(statements.append)
    calls = hops(store, monkeypatch)

    def mode(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO demo_items(name) VALUES ('row')")
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    assert [await store.fast_run(mode) for _ in range(3)] == [1, 1, 1]  # NORMAL
    assert len(calls) == 3  # the switch rides in the first transaction's hop
    assert await store.run_write(mode, durable=True) == 2  # FULL again
    async with store.fast_write() as db, db.execute("PRAGMA synchronous") as cur:
        assert (await cur.fetchone())[0] == 1  # write() knows the mode run_write left
    assert await store.run_write(mode) == 2
    await store.db.set_trace_callback(None)
    switches = [s for s in statements if s.startswith("PRAGMA synchronous=")]
    assert switches == [
        "PRAGMA synchronous=NORMAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA synchronous=FULL",
    ]


async def test_a_one_hop_transaction_cancelled_mid_call_is_finished_before_the_next(
    store: Store,
) -> None:
    """Cancelled while its function runs in the database thread (stop, reload): the caller
    is told so, and the transaction has ended, committed or rolled back as the function
    decided, before the next writer gets the connection."""
    await store.migrate("demo", MIGRATIONS)
    inside = threading.Event()

    def slow(conn: sqlite3.Connection, fail: bool) -> None:
        conn.execute("INSERT INTO demo_items(name) VALUES (?)", ("failed" if fail else "kept",))
        inside.set()
        time.sleep(0.2)
        if fail:
            raise RuntimeError("after the cancel")

    for fail in (False, True):
        inside.clear()
        task = asyncio.create_task(store.run_write(lambda conn, f=fail: slow(conn, f)))
        await asyncio.to_thread(inside.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not store.db.in_transaction
        await store.run_write(
            lambda conn: conn.execute("INSERT INTO demo_items(name) VALUES ('next')")
        )
    for _ in range(20):  # cancelled at varying points, including before the call is queued
        task = asyncio.create_task(
            store.run_write(lambda conn: conn.execute("INSERT INTO demo_items(name) VALUES ('x')"))
        )
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not store.db.in_transaction
    async with store.db.execute("SELECT name FROM demo_items WHERE name != 'x' ORDER BY id") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["kept", "next", "next"]


async def test_a_one_hop_transaction_on_a_full_state_disk_moves_the_store_to_memory(
    tmp_path: Path,
) -> None:
    """Like write(): the caller hears of the failure (its rows were not recorded, it keeps
    them and retries), and the retry succeeds from memory, not durable, with what the file
    held."""
    with mounted_tmpfs(tmp_path / "state", "2m") as state:
        store = await Store.open(state, resilient=True)
        try:
            await store.migrate("demo", MIGRATIONS)
            await store.run_write(
                lambda conn: conn.execute("INSERT INTO demo_items(name) VALUES ('before')")
            )
            fill(state)

            def big(conn: sqlite3.Connection) -> None:
                conn.executemany(
                    "INSERT INTO demo_items(name) VALUES (?)",
                    [(f"{i:08}" + "x" * 1000,) for i in range(2000)],
                )

            with pytest.raises(sqlite3.OperationalError):
                await store.run_write(big, durable=False)
            assert not store.durable and store.problem
            await store.run_write(big, durable=False)
            async with store.db.execute("SELECT count(*) FROM demo_items") as cur:
                assert (await cur.fetchone())[0] == 2001
        finally:
            await store.close()
