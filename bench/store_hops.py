"""CPU of the replication journal's two commits per shipped file, through `Store.write`
(a hop to aiosqlite's thread per statement) and through `Store.run_write` (one hop per
transaction): issue 18. A smoke run, not the benchmark.

    .venv/bin/python bench/store_hops.py [--files N]

The same statements the journal runs per file (record: one upsert; complete: delete,
update, the success row), on a real store in a temporary directory, both ways in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sentinel.store import Store  # noqa: E402

SCHEMA = (
    "CREATE TABLE j (p BLOB PRIMARY KEY, seq INT); CREATE TABLE st (k INT PRIMARY KEY, v INT);",
)
UPSERT = "INSERT INTO j VALUES (?, ?) ON CONFLICT(p) DO UPDATE SET seq = excluded.seq"
DELETE = "DELETE FROM j WHERE p = ? AND seq = ?"
UPDATE = "UPDATE j SET seq = seq WHERE p = ? AND seq > ?"
STATE = "INSERT INTO st VALUES (1, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v"


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


async def by_statement(store: Store, i: int) -> None:
    row = [(b"f%d" % i, i)]
    async with store.fast_write() as db:
        await db.executemany(UPSERT, row)
    async with store.fast_write() as db:
        await db.executemany(DELETE, row)
        await db.executemany(UPDATE, row)
        await db.execute(STATE, (i,))


async def by_transaction(store: Store, i: int) -> None:
    row = [(b"f%d" % i, i)]

    def complete(conn: sqlite3.Connection) -> None:
        conn.executemany(DELETE, row)
        conn.executemany(UPDATE, row)
        conn.execute(STATE, (i,))

    await store.fast_run(lambda conn: conn.executemany(UPSERT, row))
    await store.fast_run(complete)


async def run(files: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="store-hops-"))
    store = await Store.open(state)
    try:
        await store.migrate("bench", SCHEMA)
        for name, one in [("write", by_statement), ("run_write", by_transaction)] * 2:
            c0, t0 = cpu(), time.perf_counter()
            for i in range(files):
                await one(store, i)
            print(
                f"{name:9}: {(cpu() - c0) / files * 1000:.3f} ms CPU, "
                f"{(time.perf_counter() - t0) / files * 1000:.3f} ms wall per file"
            )
    finally:
        await store.close()
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=2000)
    asyncio.run(run(parser.parse_args().files))


if __name__ == "__main__":
    main()
