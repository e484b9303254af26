"""The keeper's snapshot cost (issue 11): time and disk added per snapshot of a large landing
area with a few changed files, against `rsync -a --link-dest` (the peer) in the same run.

    .venv/bin/python bench/keeper_snapshot.py [--files 100000] [--changed 10] [--repeats 5]
                                              [--dir DIR] [--btrfs]

Writes bench/results/keeper_snapshot.md. A landing area like a document store (nested
department/project/year dirs, sizes from a few hundred bytes to 64 KiB) is built once, one
initial snapshot is taken by each contender, then every repeat replaces `--changed` random
files the way rsync does (temp file + rename, new inode), waits 0.5 s (the room's heartbeat
follows its data, and the keeper snapshots on the heartbeat) and takes one snapshot with each:

- ours: `SnapshotStore.take` (includes its syncfs, so the snapshot is on disk);
- rsync: `rsync -a --link-dest=PREV landing/ NEW/`, timed alone and plus one syncfs of the
  filesystem (the same durability as ours);
- `cp -al landing NEW`, for information only: it hard-links the *landing* inodes, which the
  writer owns, so a chmod or an in-place write through the writer's account rewrites every
  snapshot: the keeper rejects it.

Disk added is counted as real blocks: st_blocks of every inode that exists only in the new
snapshot (link count 1) plus every directory of it (all new). The page cache is warm for all
three (same data, interleaved order), and `sync` runs, untimed, before each timed step so
none pays for the writeback of another's work.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backup.snapshot import SnapshotStore, _syncfs  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "keeper_snapshot.md"
GOAL_S = 2.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def machine(work: Path) -> dict[str, str]:
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fstype = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE", "--target", str(work)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    rsync = subprocess.run(
        ["rsync", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "filesystem of the test dir": fstype,
        "rsync": rsync,
    }


# -- the landing area --------------------------------------------------------------------------


def sizes(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.75:
        return rng.randint(100, 4096)
    if roll < 0.97:
        return rng.randint(4096, 16384)
    return rng.randint(16384, 65536)


def build_landing(landing: Path, files: int, rng: random.Random) -> tuple[list[str], int]:
    """A document store: dept/project/year/file, 50 files a directory; (rel paths, bytes)."""
    blob = os.urandom(1 << 20)
    rels: list[str] = []
    total = 0
    per_dir = 50
    for i in range(files):
        d = i // per_dir
        rel_dir = f"dept{d % 20:02d}/project{d // 20 % 25:02d}/{2000 + d // 500}"
        if i % per_dir == 0:
            (landing / rel_dir).mkdir(parents=True, exist_ok=True)
        rel = f"{rel_dir}/doc{i:06d}.{('pdf', 'docx', 'xlsx', 'hwp', 'txt')[i % 5]}"
        size = sizes(rng)
        start = rng.randrange(0, len(blob) - size)
        (landing / rel).write_bytes(blob[start : start + size])
        total += size
        rels.append(rel)
    return rels, total


def change(landing: Path, rels: list[str], n: int, rng: random.Random) -> tuple[int, int]:
    """Replaces n random files as rsync does (new inode by rename); (bytes, blocks*512)."""
    total = blocks = 0
    for rel in rng.sample(rels, n):
        data = os.urandom(sizes(rng))
        path = landing / rel
        tmp = path.with_name(f".{path.name}.bench1")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        total += len(data)
        blocks += os.stat(path).st_blocks * 512
    return total, blocks


def added_blocks(snap: Path) -> tuple[int, int]:
    """(bytes of inodes only this snapshot holds, bytes of its directories), in real blocks."""
    files = dirs = 0
    for dirpath, _dirnames, filenames in os.walk(snap):
        dirs += os.lstat(dirpath).st_blocks * 512
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_nlink == 1:
                files += st.st_blocks * 512
    return files, dirs


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


# -- btrfs (information only) ------------------------------------------------------------------


def btrfs_run(work: Path, files: int, rng: random.Random, repeats: int) -> dict[str, object]:
    img, mnt = work / "btrfs.img", work / "btrfs"
    if not shutil.which("mkfs.btrfs"):
        return {"skipped": "mkfs.btrfs not installed"}
    mnt.mkdir()
    subprocess.run(["truncate", "-s", "4G", str(img)], check=True)
    subprocess.run(["mkfs.btrfs", "-q", str(img)], check=True)
    done = subprocess.run(
        ["mount", "-o", "loop", str(img), str(mnt)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {"skipped": f"mount -o loop failed: {done.stderr.strip()}"}
    try:
        subprocess.run(["btrfs", "-q", "subvolume", "create", str(mnt / "landing")], check=True)
        rels, _ = build_landing(mnt / "landing", files, rng)
        times = []
        for i in range(repeats + 1):
            if i:
                change(mnt / "landing", rels, 10, rng)
            t = time.perf_counter()
            subprocess.run(
                [
                    "btrfs",
                    "-q",
                    "subvolume",
                    "snapshot",
                    "-r",
                    str(mnt / "landing"),
                    str(mnt / f"snap{i}"),
                ],
                check=True,
            )
            if i:
                times.append(time.perf_counter() - t)
        return {"median": statistics.median(times), "p90": percentile(times, 90)}
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# -- the run -----------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--changed", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="where to build (default: $TMPDIR)")
    ap.add_argument("--btrfs", action="store_true", help="also time btrfs snapshots (root)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    rng = random.Random(11)
    work = Path(tempfile.mkdtemp(prefix="keeper-snap-", dir=args.dir))
    try:
        report = run(work, args, rng)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cmd = " ".join(["python", "bench/keeper_snapshot.py", *argv])
    text = f"Command: `{cmd}`\n\n{report}"
    args.output.write_text(text)
    print(text)


def run(work: Path, args: argparse.Namespace, rng: random.Random) -> str:
    info = machine(work)
    landing = work / "landing"
    landing.mkdir()
    t = time.perf_counter()
    rels, total = build_landing(landing, args.files, rng)
    build_s = time.perf_counter() - t
    time.sleep(0.5)

    store = SnapshotStore(work / "ours" / "room")
    first = store.take(landing, now=time.time())
    (work / "rsync").mkdir()
    (work / "cpal").mkdir()
    rsync_first = timed(["rsync", "-a", f"{landing}/", f"{work}/rsync/0/"])
    prev_rsync = work / "rsync" / "0"

    rows: list[dict[str, float]] = []
    for i in range(1, args.repeats + 1):
        changed_bytes, changed_blocks = change(landing, rels, args.changed, rng)
        time.sleep(0.5)
        row: dict[str, float] = {"changed_bytes": changed_bytes, "changed_blocks": changed_blocks}

        def ours(row: dict[str, float] = row) -> None:
            result = store.take(landing, now=time.time())
            row["ours_s"] = result.seconds
            row["ours_linked"], row["ours_copied"] = result.linked, result.copied
            row["ours_bytes_copied"] = result.bytes_copied
            row["ours_added"], row["ours_dirs"] = added_blocks(result.snapshot.path)

        def peer(row: dict[str, float] = row, i: int = i) -> None:
            nonlocal prev_rsync
            new = work / "rsync" / str(i)
            t = time.perf_counter()
            subprocess.run(
                ["rsync", "-a", f"--link-dest={prev_rsync}", f"{landing}/", f"{new}/"], check=True
            )
            row["rsync_s"] = time.perf_counter() - t
            fd = os.open(new, os.O_RDONLY | os.O_DIRECTORY)
            try:
                _syncfs(fd)
            finally:
                os.close(fd)
            row["rsync_sync_s"] = time.perf_counter() - t
            row["rsync_added"], row["rsync_dirs"] = added_blocks(new)
            prev_rsync = new

        # interleaved order: neither always gets the cache the other just warmed
        for step in (ours, peer) if i % 2 else (peer, ours):
            os.sync()  # untimed: each starts with no writeback of the other's work pending
            step()
        rows.append(row)
        print(
            f"repeat {i}: ours {row['ours_s']:.3f} s, rsync {row['rsync_s']:.3f} s "
            f"(+sync {row['rsync_sync_s']:.3f} s)",
            flush=True,
        )
    # cp -al last: linking the landing's inodes bumps their ctime (link count), which ours
    # rightly reads as "changed" (a chmod does the same), so it must not run between ours
    for i, row in enumerate(rows, 1):
        change(landing, rels, args.changed, rng)
        os.sync()
        row["cpal_s"] = timed(["cp", "-al", str(landing), str(work / "cpal" / str(i))])
        _, row["cpal_dirs"] = added_blocks(work / "cpal" / str(i))
        print(f"cp -al {i}: {row['cpal_s']:.3f} s", flush=True)

    btrfs = btrfs_run(work, args.files, rng, args.repeats) if args.btrfs else None
    return render(info, args, total, build_s, first.seconds, rsync_first, rows, btrfs)


def render(
    info: dict[str, str],
    args: argparse.Namespace,
    total: int,
    build_s: float,
    first_s: float,
    rsync_first: float,
    rows: list[dict[str, float]],
    btrfs: dict[str, object] | None,
) -> str:
    def col(key: str) -> list[float]:
        return [r[key] for r in rows]

    def stat_cells(key: str) -> str:
        v = col(key)
        return f"{statistics.median(v):.3f} s | {percentile(v, 90):.3f} s"

    def kib(v: float) -> str:
        return f"{v / 1024:,.0f} KiB"

    ours, peer = statistics.median(col("ours_s")), statistics.median(col("rsync_sync_s"))
    lines = [
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()),
        "",
        f"Landing area: {args.files:,} files, {total / 2**20:,.0f} MiB, "
        f"{args.files // 50:,} leaf directories (built in {build_s:.1f} s). "
        f"Initial full snapshot: ours {first_s:.2f} s, `rsync -a` {rsync_first:.2f} s.",
        "",
        f"Each of {len(rows)} repeats: {args.changed} files replaced (temp + rename), "
        "0.5 s pause, one snapshot by each.",
        "",
        "| | median | p90 |",
        "|---|---|---|",
        f"| ours: `SnapshotStore.take` (incl. syncfs) | {stat_cells('ours_s')} |",
        f"| `rsync -a --link-dest` | {stat_cells('rsync_s')} |",
        f"| `rsync -a --link-dest` + syncfs | {stat_cells('rsync_sync_s')} |",
        f"| `cp -al` (rejected, information) | {stat_cells('cpal_s')} |",
    ]
    if btrfs is not None:
        if "median" in btrfs:
            lines.append(
                f"| `btrfs subvolume snapshot -r` (information) | "
                f"{btrfs['median']:.3f} s | {btrfs['p90']:.3f} s |"
            )
        else:
            lines.append(f"| `btrfs subvolume snapshot -r` | not run: {btrfs['skipped']} | |")
    lines += [
        "",
        f"Ratio ours / rsync+syncfs (medians): **{ours / peer:.2f}x**; ours / rsync "
        f"alone: {ours / statistics.median(col('rsync_s')):.2f}x. Goal ≤ {GOAL_S:.0f} s: "
        + ("**met**" if ours <= GOAL_S else "**missed**")
        + ".",
        "",
        "Disk added per snapshot (real blocks; medians over the repeats):",
        "",
        "| | changed files' blocks | new-inode blocks | directory blocks | files linked / copied |",
        "|---|---|---|---|---|",
        f"| ours | {kib(statistics.median(col('changed_blocks')))} | "
        f"{kib(statistics.median(col('ours_added')))} | "
        f"{kib(statistics.median(col('ours_dirs')))} | "
        f"{statistics.median(col('ours_linked')):,.0f} / "
        f"{statistics.median(col('ours_copied')):,.0f} |",
        f"| `rsync --link-dest` | | {kib(statistics.median(col('rsync_added')))} | "
        f"{kib(statistics.median(col('rsync_dirs')))} | |",
        f"| `cp -al` | | 0 (shares the landing's inodes) | "
        f"{kib(statistics.median(col('cpal_dirs')))} | |",
        "",
        "Per repeat:",
        "",
        "| # | ours s | rsync s | rsync+sync s | cp -al s | ours copied | "
        "ours bytes copied | changed bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        lines.append(
            f"| {i} | {r['ours_s']:.3f} | {r['rsync_s']:.3f} | "
            f"{r['rsync_sync_s']:.3f} | {r['cpal_s']:.3f} | {r['ours_copied']:.0f} | "
            f"{r['ours_bytes_copied']:,.0f} | {r['changed_bytes']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
