"""Where ssh keeps its ControlMaster socket, and whether that place can work at all.

A unix socket path is at most 107 bytes (sun_path is 108 with its NUL). ssh binds the
master socket at `<ControlPath>.<16 random characters>` and renames it into place, and
`%C` is a 40-character hash, so the directory may be at most 46 bytes long. Longer, and
ssh fails every connection ("unix_listener: path ... too long for Unix domain socket",
rsync exit 255): check the length before shipping anything.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

SOCKET_NAME = "cm-%C"
SUN_PATH_MAX = 107
_HASH_LEN = 40  # %C: hex SHA-1 of local host, remote host, port, user
_SSH_TEMP_SUFFIX = len(".") + 16
MAX_DIR_LEN = (
    SUN_PATH_MAX - len("/") - len(SOCKET_NAME.replace("%C", "")) - _HASH_LEN - _SSH_TEMP_SUFFIX
)


def control_path(runtime_dir: Path) -> str:
    return f"{runtime_dir}/{SOCKET_NAME}"


def control_dir_problem(runtime_dir: Path) -> str | None:
    """Why ssh could not keep its master socket in `runtime_dir` (None: it can)."""
    size = len(os.fsencode(runtime_dir))
    if size > MAX_DIR_LEN:
        return (
            f"ssh control socket directory {runtime_dir} is {size} bytes long; ssh's socket "
            f"path there would exceed the {SUN_PATH_MAX + 1}-byte unix socket limit and every "
            f"transfer would fail: use a directory of at most {MAX_DIR_LEN} bytes "
            "(RUNTIME_DIRECTORY, as the systemd unit sets it, or a shorter TMPDIR)"
        )
    # Another user's directory (or a symlink planted in /tmp) would let them take over
    # or redirect the connection to the replica.
    return private_dir_problem(runtime_dir, "ssh control socket directory")


def private_dir_problem(directory: Path, what: str) -> str | None:
    """Why `directory` is not this user's own directory that nobody else may write (None:
    it is, or it does not exist yet and `mkdir(mode=0o700)` will make it so). `what`
    names it in the message."""
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{what} {directory}: {exc.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{what} {directory} is not a directory"
    if st.st_uid != os.geteuid():
        return (
            f"{what} {directory} belongs to uid {st.st_uid}, not to "
            f"this user ({os.geteuid()}): remove it, sentinel re-creates it"
        )
    if stat.S_IMODE(st.st_mode) & 0o022:
        return (
            f"{what} {directory} is mode "
            f"{stat.S_IMODE(st.st_mode):04o}, writable by others: chmod 700 {directory}"
        )
    return None


def ensure_control_dir(runtime_dir: Path) -> None:
    """Create `runtime_dir` 0700 if missing; raise OSError if it cannot hold the socket."""
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    problem = control_dir_problem(runtime_dir)
    if problem is not None:
        raise PermissionError(problem)
