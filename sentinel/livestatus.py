"""The live status file: the daemon's heartbeat, active alarms and state-database health as a
small JSON file, rewritten atomically every heartbeat in the runtime directory.

`sentinel status` reads the state database; when the daemon cannot write it (disk full,
read-only, deleted) the heartbeat there goes stale while the daemon is alive and paging from
memory. This file is what status reads then. It also records which state directory a config
file runs with, so status finds the alarms even when the config on disk cannot be read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("sentinel.livestatus")

FILE_NAME = "status.json"
# systemd's RuntimeDirectory=sentinel; what an admin's shell (no $RUNTIME_DIRECTORY) reads.
SYSTEM_RUNTIME_DIR = Path("/run/sentinel")


def runtime_dir(state_dir: Path) -> Path:
    """systemd's RuntimeDirectory (a tmpfs, writable when the state disk is not) when set,
    else `<state_dir>/run`."""
    return Path(os.environ.get("RUNTIME_DIRECTORY") or state_dir / "run")


def write(path: Path, data: dict[str, Any]) -> None:
    """Replaces the file atomically: a reader sees the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".status.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, default=str, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def candidates(state_dir: Path | None = None) -> list[Path]:
    """Where a daemon may have written its live status file, most likely first."""
    dirs: list[Path] = []
    env = os.environ.get("RUNTIME_DIRECTORY")
    if env:
        dirs.append(Path(env))
    dirs.append(SYSTEM_RUNTIME_DIR)
    if state_dir is not None:
        dirs.append(state_dir / "run")
    out: list[Path] = []
    for d in dirs:
        if d / FILE_NAME not in out:
            out.append(d / FILE_NAME)
    return out


def read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _same(a: Any, b: Path) -> bool:
    try:
        return Path(str(a)).resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def find(*, state_dir: Path | None = None, config: Path | None = None) -> dict[str, Any] | None:
    """The newest live status file of the daemon running with this state directory (or,
    when the config cannot be read, with this config file)."""
    found: list[dict[str, Any]] = []
    for path in candidates(state_dir):
        data = read(path)
        if data is None:
            continue
        if state_dir is not None and not _same(data.get("state_dir"), state_dir):
            continue
        if config is not None and not _same(data.get("config_path"), config):
            continue
        found.append(data)
    return max(found, key=lambda d: float(d.get("ts") or 0), default=None)
