"""Database RPO benchmark (issue 16): the TRUE data RPO of an archive-log replication under
a steady write load, against the file RPO sentinel reports for the same replication.

    /work/main/.venv/bin/python bench/database_rpo.py [--duration 330] [--rate 20]
        [--only switch|archive_timeout]

Two real PostgreSQL 15 clusters (tests/fixtures/databases.py, archive_command copying each
closed segment into an archive directory under a temp name + rename), each under
`--rate` inserts/s, each with a real `python -m sentinel run` (this checkout) replicating
its archive directory to a local target:

- `switch`: sentinel's log switch, `switch_after = 60 s`, `select pg_switch_wal()`;
- `archive_timeout`: PostgreSQL's own `archive_timeout = 60`, no switch_command.

Both run at the same time (the machine has 2 cores, shared with other helpers). Every
second the sampler takes:

- data RPO: now - commit time of the newest insert whose WAL segment, and every segment
  before it, is in the target (each insert records its commit time and
  `pg_walfile_name(pg_current_wal_insert_lsn())` right after its commit);
- file RPO: `rpo_seconds` of `sentinel status` for that replication (the same
  `backup.status.read_status` on the daemon's state database).

Writes bench/results/database_rpo.md (p50/p99/max of each, samples after the first switch).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: tests/ is not an installed package

from backup.logname import LogNaming  # noqa: E402
from backup.status import read_status  # noqa: E402
from bench.common import machine_lines, percentile, private_file, sinks  # noqa: E402
from tests.fixtures.databases import Postgres  # noqa: E402
from tests.fixtures.poll import until_sync  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "database_rpo.md"
NAMING = LogNaming("postgresql")
INTERVAL = 60


@dataclass
class Run:
    name: str
    pg: Postgres
    work: Path
    target: Path = field(init=False)
    commits: list[tuple[float, int]] = field(default_factory=list)  # (commit ts, segment seq)
    data_rpo: list[float] = field(default_factory=list)
    file_rpo: list[float] = field(default_factory=list)
    daemon: subprocess.Popen[bytes] | None = None
    inserts_failed: int = 0

    def __post_init__(self) -> None:
        self.target = self.work / "replica"
        self.target.mkdir(parents=True)


def write_config(run: Run, sink_url: str) -> Path:
    database = ['preset = "postgresql"']
    if run.name == "switch":
        command = run.pg.psql("select pg_switch_wal()").replace("\\", "\\\\").replace('"', '\\"')
        database += [f'switch_command = "{command}"', f'switch_after = "{INTERVAL}s"']
    apprise = run.work / "apprise.yml"
    private_file(apprise, f"urls:\n  - {sink_url}:\n      tag: critical, warning, info\n")
    lines = [
        "[site]",
        f'name = "bench-{run.name}"',
        "[daemon]",
        f'state_dir = "{run.work / "state"}"',
        'heartbeat = "1s"',
        'log_level = "info"',
        "[alerts]",
        'language = "en"',
        f'apprise_config = "{apprise}"',
        "[[replication]]",
        f'name = "{run.name}"',
        'kind = "archive-log"',
        f'source = "{run.pg.archive_dir}"',
        f'target = "{run.target}"',
        "[replication.database]",
        *database,
    ]
    config = run.work / "sentinel.toml"
    private_file(config, "\n".join(lines) + "\n")
    return config


def start_daemon(run: Run, config: Path) -> None:
    log = (run.work / "daemon.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's sentinel, not the venv's
    run.daemon = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "--config", str(config), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )


def writer(run: Run, rate: float, stop: threading.Event) -> None:
    """`rate` inserts/s, each one's commit time and the WAL segment its commit is in."""
    conn = run.pg.admin()
    conn.execute("create table if not exists approval (id bigserial primary key, at timestamptz)")
    period = 1.0 / rate
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            conn.execute("insert into approval (at) values (clock_timestamp())")
            committed = time.time()
            [(segment,)] = conn.execute(
                "select pg_walfile_name(pg_current_wal_insert_lsn())"
            ).fetchall()
            parsed = NAMING.parse(segment)
            assert parsed is not None
            run.commits.append((committed, parsed.seq))
        except Exception:
            run.inserts_failed += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
    conn.close()


def shipped(target: Path) -> set[int]:
    seqs: set[int] = set()
    for _dirpath, _dirs, files in os.walk(target):
        for name in files:
            parsed = NAMING.parse(name)
            if parsed is not None:
                seqs.add(parsed.seq)
    return seqs


def sample(run: Run, now: float, record: bool) -> None:
    at_target = shipped(run.target)
    commits = list(run.commits)
    newest: float | None = None
    if commits:
        first = commits[0][1]
        # the prefix of segments that is whole at the target
        seq = first
        while seq in at_target:
            seq += 1
        for committed, segment in commits:
            if segment < seq:
                newest = committed
            else:
                break
    db = run.work / "state" / "sentinel.db"
    file_rpo: float | None = None
    if db.exists():
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
            try:
                file_rpo = (read_status(conn, now).get(run.name) or {}).get("rpo")
            finally:
                conn.close()
        except sqlite3.Error:
            file_rpo = None
    if not record:
        return
    if newest is None and commits:
        newest = commits[0][0]  # nothing shipped yet: all since the load began is at risk
    if newest is not None:
        run.data_rpo.append(now - newest)
    if file_rpo is not None:
        run.file_rpo.append(float(file_rpo))


def stats(values: list[float]) -> str:
    if not values:
        return "– | – | – | 0"
    return (
        f"{percentile(values, 50):.1f} | {percentile(values, 99):.1f} | {max(values):.1f} | "
        f"{len(values)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=330.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--only", choices=["switch", "archive_timeout"])
    args = parser.parse_args()
    names = [args.only] if args.only else ["switch", "archive_timeout"]
    base = Path(tempfile.mkdtemp(prefix="sentinel-bench-dbrpo-"))
    runs: list[Run] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        with sinks(0.0) as [sink]:
            for name in names:
                pg = Postgres(archive=True)
                run = Run(name, pg, base / name)
                runs.append(run)
                pg.initialise()
                pg.start()
                if name == "archive_timeout":
                    # as `-c archive_timeout=60` on the server's command line it showed in
                    # `show archive_timeout` but forced no switch in 5 min (PostgreSQL 15.18,
                    # here); set in postgresql.auto.conf and reloaded, it does
                    pg.execute(
                        [
                            f"alter system set archive_timeout = {INTERVAL}",
                            "select pg_reload_conf()",
                        ]
                    )
                start_daemon(run, write_config(run, sink.json_url("/page")))
            for run in runs:
                until_sync(
                    lambda run=run: (run.work / "state" / "sentinel.db").exists(),
                    30,
                    f"{run.name}'s daemon",
                )
                thread = threading.Thread(target=writer, args=(run, args.rate, stop), daemon=True)
                thread.start()
                threads.append(thread)
            started = time.time()
            # the first minute is the warm-up: the open segment was opened before the load
            warmup = INTERVAL + 5
            while time.time() - started < args.duration:
                now = time.time()
                for run in runs:
                    sample(run, now, record=now - started >= warmup)
                time.sleep(max(0.0, 1.0 - (time.time() - now)))
            stop.set()
            for thread in threads:
                thread.join(10)
            pages = len(sink._requests)
    finally:
        stop.set()
        for run in runs:
            if run.daemon is not None and run.daemon.poll() is None:
                run.daemon.send_signal(signal.SIGTERM)
                try:
                    run.daemon.wait(15)
                except subprocess.TimeoutExpired:
                    run.daemon.kill()
            run.pg.stop()
    lines = [
        "# Database RPO (#16)",
        "",
        f"Command: `/work/main/.venv/bin/python bench/database_rpo.py --duration "
        f"{args.duration:g} --rate {args.rate:g}{' --only ' + args.only if args.only else ''}`; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        *machine_lines(),
        "",
        "| variant | RPO | p50 s | p99 s | max s | samples |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        segments = len(shipped(run.target))
        lines.append(f"| {run.name} | data (true) | {stats(run.data_rpo)} |")
        lines.append(f"| {run.name} | file (status rpo_seconds) | {stats(run.file_rpo)} |")
        lines.append(
            f"| {run.name} | ({len(run.commits)} inserts, {run.inserts_failed} failed, "
            f"{segments} segments at the target) | | | | |"
        )
    if pages is not None:
        lines.append(f"\nPages sent: {pages}")
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)
    for run in runs:
        run.pg.cleanup()
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
