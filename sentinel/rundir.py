"""The daemon's private runtime directory: ssh ControlMaster sockets and the live status file.

systemd's RuntimeDirectory (/run/sentinel, a tmpfs) when set, else a per-user directory in
the temp dir. Never under the state directory: a unix socket path is limited to 108 bytes
(a long state_dir made every ssh transfer fail, backup/control_socket.py), and the live
status file must stay writable when the state directory's disk is full or read-only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def runtime_dir() -> Path:
    """$RUNTIME_DIRECTORY (its first entry) when set, else `<tmp>/sentinel-<euid>`."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime)
    return user_runtime_dir(os.geteuid())


def user_runtime_dir(uid: int) -> Path:
    """The per-user fallback of `uid` (where a daemon running as `uid` outside systemd
    keeps its runtime files)."""
    return Path(tempfile.gettempdir()) / f"sentinel-{uid}"
