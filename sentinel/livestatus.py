"""The live status file: the daemon's heartbeat, active alarms and state-database health as a
small JSON file, rewritten atomically every heartbeat in the daemon's runtime directory
(sentinel/rundir.py: $RUNTIME_DIRECTORY, else a private per-user temp dir), never in the
state directory, whose disk may be the one that is full or read-only.

`sentinel status` reads the state database; when the daemon cannot write it (disk full,
read-only, deleted) the heartbeat there goes stale while the daemon is alive and paging from
memory. This file is what status reads then. It also records which state directory a config
file runs with, so status finds the alarms even when the config on disk cannot be read, and
whether the run was durable, so the next start can say what a not-durable run lost.
The file is group-readable under the unit's UMask (0640), like the database: admins in
group sentinel run `sentinel status`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from backup.control_socket import private_dir_problem
from sentinel.rundir import runtime_dir, user_runtime_dir

log = logging.getLogger("sentinel.livestatus")

FILE_PREFIX = "status-"
# where a daemon of an earlier version wrote it (read, never written)
LEGACY_NAME = "status.json"
# systemd's RuntimeDirectory=sentinel; what an admin's shell (no $RUNTIME_DIRECTORY) reads.
SYSTEM_RUNTIME_DIR = Path("/run/sentinel")


def path_for(state_dir: Path) -> Path:
    """The live status file of the daemon running with `state_dir`: one per state
    directory, since daemons of one user (tests, a demo) share the per-user directory."""
    return runtime_dir() / file_name(state_dir)


def file_name(state_dir: Path) -> str:
    key = hashlib.sha256(os.fsencode(_resolved(state_dir))).hexdigest()[:16]
    return f"{FILE_PREFIX}{key}.json"


def _resolved(path: Path) -> str:
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path.absolute())


def write(path: Path, data: dict[str, Any]) -> None:
    """Replaces the file atomically: a reader sees the old or the new content, never half.
    Mode 0644 less the umask (0640 under the unit's UMask=0027), like SQLite's files."""
    _ensure_own_dir(path.parent)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, default=str, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _ensure_own_dir(directory: Path) -> None:
    """Creates the runtime directory (0700, as the ssh control sockets want it) and refuses
    one that another user made in the shared temp dir: they could rewrite what status says."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    problem = private_dir_problem(directory, "live status directory")
    if problem is not None:
        raise PermissionError(errno.EPERM, problem, str(directory))


def _dirs(state_dir: Path | None) -> list[Path]:
    """Where a daemon may have written, most likely first: this shell's runtime directory,
    systemd's, and the per-user directory of whoever owns the state directory (an admin as
    root reading a daemon that runs as user sentinel outside systemd)."""
    dirs = [runtime_dir(), SYSTEM_RUNTIME_DIR, user_runtime_dir(os.geteuid())]
    if state_dir is not None:
        with contextlib.suppress(OSError):
            dirs.append(user_runtime_dir(state_dir.stat().st_uid))
        dirs.append(state_dir / "run")
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def candidates(state_dir: Path | None = None) -> list[Path]:
    """Live status files that may belong to the daemon of `state_dir` (None: of any)."""
    out: list[Path] = []
    for d in _dirs(state_dir):
        if state_dir is not None:
            names = [d / file_name(state_dir), d / LEGACY_NAME]
        else:
            try:
                names = [*sorted(d.glob(f"{FILE_PREFIX}*.json")), d / LEGACY_NAME]
            except OSError:
                names = []
        out.extend(n for n in names if n not in out)
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
