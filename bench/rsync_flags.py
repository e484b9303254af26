"""What `--sparse` and `-H` (issue 10 item 5) cost the shipper, local target.

    .venv/bin/python bench/rsync_flags.py [--files N] [--repeats R]

Runs sentinel's own command lines (backup.transfer.full_sync / ship_batch) with both flags
off and on, on the same trees, and writes bench/results/rsync_flags.md:

- full pass over an unchanged tree of N small files (the nightly cost),
- one batch of N new small files to an empty replica (the live-shipping cost),
- one 1 GiB sparse file with 1 MiB of data (time and the replica's disk use),
- N/2 files each with a second hard link (replica disk use).

Each flag alone against none; medians of R interleaved runs; temp dirs are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backup.spec import GuardSettings, ReplicationSpec  # noqa: E402
from backup.transfer import full_sync, ship_batch  # noqa: E402
from backup.transport import parse_target  # noqa: E402
from bench.replication import machine  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "rsync_flags.md"
MODES = {"off": (False, False), "--sparse": (True, False), "-H": (False, True)}


def spec(src: Path, dst: Path, work: Path, sparse: bool, links: bool) -> ReplicationSpec:
    return ReplicationSpec(
        name="bench",
        source=src,
        target=parse_target(str(dst)),
        guard=GuardSettings(enabled=False),
        runtime_dir=work,
        sparse=sparse,
        hardlinks=links,
    )


def small_tree(root: Path, files: int) -> list[str]:
    names = []
    for i in range(files):
        rel = f"d{i % 50:02d}/f{i:06d}.txt"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(2048))
        names.append(rel)
    return names


def make_sparse(path: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(1 << 30)
        f.seek(512 << 20)
        f.write(os.urandom(1 << 20))


def disk_use(root: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


async def once(coro) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    result = await coro
    took = time.perf_counter() - began
    if not result.ok:
        raise RuntimeError(result.error)
    return took


async def main(files: int, repeats: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="rsflags"))
    times: dict[tuple[str, str], list[float]] = {}
    use: dict[tuple[str, str], str] = {}
    try:
        src = work / "src"
        names = small_tree(src, files)
        sparse_src = work / "sparse"
        sparse_src.mkdir()
        make_sparse(sparse_src / "disk.img")
        link_src = work / "links"
        link_src.mkdir()
        for i in range(files // 2):
            (link_src / f"a{i:06d}").write_bytes(os.urandom(4096))
            os.link(link_src / f"a{i:06d}", link_src / f"b{i:06d}")
        link_names = sorted(os.listdir(link_src))
        full_case, batch_case = f"full pass, unchanged {files} files", f"batch of {files} new files"
        sparse_case, link_case = "1 GiB sparse file (1 MiB data)", f"{files // 2} files x 2 links"
        for mode, (sparse, links) in MODES.items():  # every mode's replica exists and is equal
            await full_sync(spec(src, work / f"full-{mode}", work, sparse, links), time.time())
        for r in range(repeats):
            order = list(MODES.items())
            if r % 2:
                order.reverse()  # no mode always runs first (cache, neighbours' load)
            for mode, (sparse, links) in order:

                def add(case: str, took: float, mode: str = mode) -> None:
                    times.setdefault((case, mode), []).append(took)

                s = spec(src, work / f"full-{mode}", work, sparse, links)
                add(full_case, await once(full_sync(s, time.time())))
                dst = work / f"batch-{mode}"
                shutil.rmtree(dst, ignore_errors=True)
                s = spec(src, dst, work, sparse, links)
                add(batch_case, await once(ship_batch(s, names, time.time())))
                sdst = work / f"sparse-{mode}"
                shutil.rmtree(sdst, ignore_errors=True)
                s = spec(sparse_src, sdst, work, sparse, links)
                add(sparse_case, await once(ship_batch(s, ["disk.img"], time.time())))
                use[(sparse_case, mode)] = f"replica uses {disk_use(sdst) / (1 << 20):.1f} MiB"
                ldst = work / f"links-{mode}"
                shutil.rmtree(ldst, ignore_errors=True)
                s = spec(link_src, ldst, work, sparse, links)
                add(link_case, await once(ship_batch(s, link_names, time.time())))
                use[(link_case, mode)] = (
                    f"replica uses {disk_use(ldst) / (1 << 20):.1f} MiB "
                    f"(source {disk_use(link_src) / (1 << 20):.1f} MiB)"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m = machine()
    lines = [
        "# rsync --sparse / -H cost (bench/rsync_flags.py)",
        "",
        f"Command: `.venv/bin/python bench/rsync_flags.py --files {files} --repeats {repeats}`",
        "",
        "Machine: " + ", ".join(f"{k}: {v}" for k, v in m.items()),
        "",
        f"Median (min-max) of {repeats} runs per flag, the flags' runs interleaved; local "
        "target on the same file system; sentinel's own command lines.",
        "",
        "| case | flags | time | disk |",
        "|---|---|---|---|",
    ]
    for (case, mode), values in times.items():
        lines.append(
            f"| {case} | {mode} | {statistics.median(values) * 1000:.0f} ms "
            f"({min(values) * 1000:.0f}-{max(values) * 1000:.0f}) | "
            f"{use.get((case, mode), '')} |"
        )
    lines[len(lines) - len(times) :] = sorted(lines[len(lines) - len(times) :])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args()
    text = asyncio.run(main(args.files, args.repeats))
    args.output.write_text(text)
    print(text)
