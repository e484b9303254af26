"""The database drill's RTO (issue 16): a ~1 GB PostgreSQL database, a base backup, some WAL
after it, then `database_drill` (backup/database_drill.py) from the shipped logs, with its
parts; and the peer in the same run: the same recovery by hand (`cp -a` of the base backup,
recovery.signal, `pg_ctl start`, wait for the promotion, the same check query).

    python bench/database_drill.py [--scale 70] [--transactions 20000]

`--scale` is pgbench's (-i -s 70 is about 1 GB). Writes bench/results/database_drill.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backup.database_drill import DrillPlan, database_drill  # noqa: E402
from backup.database_drill_record import duration_text  # noqa: E402
from backup.transport import parse_target  # noqa: E402
from tests.fixtures.databases import PG_BIN, Postgres  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "database_drill.md"
CHECK = "select count(*) from pgbench_accounts"


def pgbench(pg: Postgres, *args: str) -> None:
    subprocess.run(
        [
            str(PG_BIN / "pgbench"),
            "-h",
            str(pg.workdir),
            "-p",
            str(pg.port),
            "-U",
            "postgres",
            *args,
            "postgres",
        ],
        check=True,
        capture_output=True,
    )


def by_hand(pg: Postgres, replica: Path, base: Path) -> dict[str, float]:
    """The peer: what an operator types, timed the same way (start of the copy to the
    check query's answer)."""
    work = Path(tempfile.mkdtemp(prefix="bench-by-hand-"))
    data = work / "data"
    began = time.monotonic()
    parts: dict[str, float] = {}
    subprocess.run(["cp", "-a", str(base), str(data)], check=True)
    logs = work / "logs"
    subprocess.run(["cp", "-a", str(replica), str(logs)], check=True)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "nobody:", str(work)], check=True)
    data.chmod(0o700)
    parts["restore+logs"] = time.monotonic() - began
    with open(data / "postgresql.auto.conf", "a") as conf:
        conf.write(
            f"restore_command = 'cp {logs}/%f %p'\narchive_mode = off\n"
            f"listen_addresses = ''\nunix_socket_directories = '{work}'\nport = 5499\n"
        )
    (data / "recovery.signal").write_text("")
    (data / "postmaster.pid").unlink(missing_ok=True)
    mark = time.monotonic()
    runuser = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            *runuser,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(work / "log"),
            "-w",
            "-t",
            "3600",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    parts["start"] = time.monotonic() - mark
    mark = time.monotonic()
    psql = [str(PG_BIN / "psql"), "-X", "-At", "-h", str(work), "-p", "5499", "-U", "postgres"]
    while True:
        done = subprocess.run(
            [*psql, "-c", "select pg_is_in_recovery()"], capture_output=True, text=True
        )
        if done.stdout.strip() == "f":
            break
        time.sleep(0.1)
    parts["replay"] = time.monotonic() - mark
    mark = time.monotonic()
    subprocess.run([*psql, "-c", CHECK], check=True, capture_output=True)
    parts["check"] = time.monotonic() - mark
    parts["rto"] = time.monotonic() - began
    subprocess.run(
        [*runuser, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
        capture_output=True,
    )
    shutil.rmtree(work, ignore_errors=True)
    return parts


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=70)
    parser.add_argument("--transactions", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    pg = Postgres(archive=True)
    replica_root = Path(tempfile.mkdtemp(prefix="bench-replica-"))
    try:
        pg.initialise()
        pg.start()
        t = time.monotonic()
        pgbench(pg, "-i", "-q", "-s", str(args.scale))
        (size,) = pg.query("select pg_database_size('postgres')")[0]
        print(f"pgbench -i -s {args.scale}: {size / 2**30:.2f} GiB in {time.monotonic() - t:.0f}s")
        t = time.monotonic()
        base = pg.base_backup("base")
        print(f"base backup {du(base) / 2**30:.2f} GiB in {time.monotonic() - t:.0f}s")
        pgbench(pg, "-n", "-c", "2", "-t", str(args.transactions // 2))
        pg.switch_wal()
        assert pg.archive is not None
        replica = replica_root / "replica"
        shutil.copytree(pg.archive, replica)
        wal = du(replica)
        first = (base / "backup_label").read_text().split("(file ", 1)[1][:24]
        after = sum(f.stat().st_size for f in replica.iterdir() if f.name[:24] >= first)
        print(f"shipped WAL: {wal / 2**20:.0f} MiB, {after / 2**20:.0f} MiB from {first} on")
        plan = DrillPlan(
            name="bench",
            target=parse_target(str(replica)),
            runtime_dir=Path(tempfile.gettempdir()),
            preset="postgresql",
            pattern=None,
            base_backup_dir=base.parent,
            pg_bin=PG_BIN,
            check_query=CHECK,
            timeout=3600.0,
            max_age=86400.0,
        )
        rows = []
        # by hand first, then ours, twice: neither always gets the other's warm page cache
        for run in range(1, args.repeats + 1):
            hand = by_hand(pg, replica, base)
            print(f"by hand: RTO {hand['rto']:.1f}s {hand}")
            record = asyncio.run(database_drill(plan))
            assert record.ok, record.error
            print(f"sentinel: RTO {record.rto:.1f}s {record.parts} check {record.check_result}")
            parts = ", ".join(f"{k} {duration_text(v)}" for k, v in record.parts.items())
            hand_parts = ", ".join(f"{k} {duration_text(v)}" for k, v in hand.items() if k != "rto")
            rows.append(
                f"| {run} | `sentinel backup drill --database` | "
                f"{duration_text(record.rto or 0)} | {parts} |\n"
                f"| {run} | by hand (cp -a, recovery.signal, pg_ctl start) | "
                f"{duration_text(hand['rto'])} | {hand_parts} |\n"
            )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            f"# Database drill RTO (#16)\n\n"
            f"`python bench/database_drill.py --scale {args.scale} "
            f"--transactions {args.transactions}` on {platform.node()} "
            f"({os.cpu_count()} cores, {platform.platform()}), "
            f"{time.strftime('%Y-%m-%d %H:%M')}\n\n"
            f"database {size / 2**30:.2f} GiB (pgbench -s {args.scale}), base backup "
            f"{du(base) / 2**30:.2f} GiB; the replica holds {wal / 2**20:.0f} MiB of WAL, "
            f"{after / 2**20:.0f} MiB of it from the base backup's first segment on "
            f"(pgbench -t {args.transactions // 2} -c 2 after the backup). The by-hand "
            "peer copies every shipped segment and replays with fsync on; the drill pulls "
            "only the segments it needs and runs its throwaway copy with fsync off\n\n"
            "| run | | RTO | parts |\n| --- | --- | --- | --- |\n" + "".join(rows)
        )
        print(RESULTS.read_text())
    finally:
        pg.stop()
        pg.cleanup()
        shutil.rmtree(replica_root, ignore_errors=True)


if __name__ == "__main__":
    main()
