"""A random workload on a source tree: creates, overwrites, appends, renames, deletes and
bursts of nested `mkdir -p` with files."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path


def churn(root: Path, seconds: float, seed: int = 1, stop: list[bool] | None = None) -> int:
    """Runs for `seconds` (or until stop[0] is set); returns the number of operations."""
    rng = random.Random(seed)
    ops = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop and stop[0]):
        # sentinel's own marker is not a document: an operation on it stops replication
        files = [
            p
            for p in root.rglob("*")
            if p.is_file() and not p.is_symlink() and not p.name.startswith(".sentinel-")
        ]
        op = rng.random()
        try:
            if op < 0.3 or not files:
                d = root / rng.choice(["", "a", "b", "a/c"])
                d.mkdir(parents=True, exist_ok=True)
                data = rng.randbytes(rng.randrange(1, 20000))
                (d / f"f{rng.randrange(10**6)}.dat").write_bytes(data)
            elif op < 0.45:
                rng.choice(files).write_bytes(rng.randbytes(rng.randrange(1, 9000)))
            elif op < 0.55:
                with rng.choice(files).open("ab") as fh:
                    fh.write(rng.randbytes(rng.randrange(1, 3000)))
            elif op < 0.65:
                f = rng.choice(files)
                f.rename(f.with_name(f"r{rng.randrange(10**6)}.dat"))
            elif op < 0.75:
                rng.choice(files).unlink()
            elif op < 0.8:
                base = root / f"deep{rng.randrange(1000)}" / "x" / "y" / "z"
                base.mkdir(parents=True, exist_ok=True)
                for i in range(rng.randrange(1, 15)):
                    (base / f"n{i}.txt").write_text(f"{i} {rng.random()}")
            elif op < 0.83:
                dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("deep")]
                if dirs:
                    d = rng.choice(dirs)
                    d.rename(d.with_name(f"moved{rng.randrange(10**6)}"))
            elif op < 0.86:
                dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("moved")]
                if dirs:
                    for dirpath, _dirs, fnames in os.walk(rng.choice(dirs), topdown=False):
                        for n in fnames:
                            os.unlink(os.path.join(dirpath, n))
                        os.rmdir(dirpath)
            else:
                time.sleep(0.002)
        except (FileNotFoundError, FileExistsError, NotADirectoryError, OSError):
            pass  # a race with our own previous operation; the next one goes on
        ops += 1
    return ops
