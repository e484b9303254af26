"""CPU of one ssh run, sentinel's rsync command line against lsyncd's (issue 18).

    .venv/bin/python bench/ssh_run_cost.py [--runs N] [--rounds R]

sshd on 127.0.0.1 as bench/replication.py starts it (its `sentinel-bench` account), one
ControlMaster shared by both. Each run ships one new 8 KiB file: sentinel's is
`backup.transfer.ship_batch` (the batch's rsync line: -R --files-from, --backup, the
itemized output), lsyncd's is what `default.rsync` runs for one changed file (--include-from
of the file and its directory, --exclude=*). CPU: the reaped rsync and ssh client processes
plus the ControlMaster's, per run; rounds interleave the two. It says whether a run of ours
costs more than one of lsyncd's, apart from how many runs each makes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import replication as bench  # noqa: E402

from backup.spec import ReplicationSpec  # noqa: E402
from backup.transfer import ship_batch  # noqa: E402
from backup.transport import parse_target  # noqa: E402


def children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


async def measure(runs: int, rounds: int) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="ssh-run-cost-"))
    os.chmod(work, 0o755)
    sshd = bench.Sshd(work / "sshd")
    sshd.start()
    uid, gid = bench.bench_account()
    replicas = {"sentinel": bench.BENCH_HOME / "cost-s", "lsyncd": bench.BENCH_HOME / "cost-l"}
    control = work / "rt"
    control.mkdir(mode=0o700)
    try:
        for d in replicas.values():
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir()
            os.chown(d, uid, gid)
        src = work / "src"
        (src / "d").mkdir(parents=True)
        data = os.urandom(8192)
        target = parse_target(
            f"{bench.BENCH_USER}@127.0.0.1:{replicas['sentinel']}",
            ssh_port=sshd.port,
            identity_file=sshd.identity,
            known_hosts=sshd.known_hosts,
        )
        spec = ReplicationSpec(name="docs", source=src, target=target, runtime_dir=control)
        rsh = shlex.join(sshd.ssh_args(control))
        lsyncd_dst = f"{bench.BENCH_USER}@127.0.0.1:{replicas['lsyncd']}/"

        async def sentinel(name: str) -> None:
            (src / "d" / name).write_bytes(data)
            result = await ship_batch(spec, [f"d/{name}"], time.time())
            assert result.ok, result.error

        def lsyncd(name: str) -> None:
            (src / "d" / name).write_bytes(data)
            line = ["rsync", "--delete", "--ignore-errors", "-slt", "-r", "--from0"]
            subprocess.run(
                [*line, "--include-from=-", "--exclude=*", "-e", rsh, f"{src}/", lsyncd_dst],
                input=f"/d/\0/d/{name}\0".encode(),
                check=True,
            )

        await sentinel("warm-s")  # the masters up before anything is counted
        lsyncd("warm-l")
        out: dict[str, list[float]] = {"sentinel": [], "lsyncd": []}
        for r in range(rounds):
            for who in out:
                before = children_cpu() + bench.tree_cpu(0, str(control))
                for i in range(runs):
                    name = f"{who[0]}{r:02}{i:04}"
                    if who == "sentinel":
                        await sentinel(name)
                    else:
                        lsyncd(name)
                after = children_cpu() + bench.tree_cpu(0, str(control))
                out[who].append((after - before) * 1000 / runs)
        return out
    finally:
        bench.kill_marked(str(control))
        sshd.stop()
        for d in replicas.values():
            shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    for who, per_run in asyncio.run(measure(args.runs, args.rounds)).items():
        cells = " ".join(f"{x:.1f}" for x in per_run)
        print(f"{who:8} ms CPU per run, {args.runs} runs a round: {cells}")


if __name__ == "__main__":
    main()
