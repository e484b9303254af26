"""rsync's own rule for a `--password-file`, checked before rsync is run.

rsync (authenticate.c, `getpassf`) opens the file, then refuses it when others may read or
write it (`st_mode & 06`), or when rsync runs as root and the file is not owned by root;
then it takes the first line. Group bits are allowed: 0640 root:sentinel works for a daemon
in group sentinel. Checking the same rule here turns "every transfer fails with rsync's
exit 5" into one message at start that says what to run.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path


def password_file_problem(path: Path, *, group: str = "sentinel") -> str | None:
    """Why rsync, run by this process's user, would refuse `path` (None: it would not)."""
    quoted = shlex.quote(str(path))
    root = os.getuid() == 0
    readable_fix = (
        f"sudo chown root:root {quoted} && sudo chmod 600 {quoted}"
        if root
        else f"sudo chown root:{group} {quoted} && sudo chmod 640 {quoted}"
    )
    try:
        with open(path, "rb") as f:
            content = f.read(511)
        st = os.stat(path)
    except FileNotFoundError:
        return f"rsync password file {path}: file not found; fix the path in the config"
    except OSError as exc:
        return f"rsync password file {path}: cannot be read: {exc.strerror}; fix: {readable_fix}"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o006:
        return (
            f"rsync password file {path}: mode {mode:04o}, rsync refuses a password file "
            f"other users can read or write; fix: {readable_fix}"
        )
    if root and st.st_uid != 0:
        return (
            f"rsync password file {path}: rsync run as root refuses a password file not "
            f"owned by root; fix: sudo chown root:root {quoted} && sudo chmod 600 {quoted}"
        )
    if not content.replace(b"\r", b"\n").strip(b"\n"):
        return f"rsync password file {path}: holds no password (rsync reads the first line)"
    return None


# What identifies one version of the file: anything rsync's rule depends on changes one of
# these (chmod and chown move ctime; a rewrite moves mtime and size; a replacement the inode).
_Version = tuple[int, int, int, int, int, int, int] | str


def _version(path: Path) -> _Version:
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.strerror or "stat failed"
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class PasswordFileCheck:
    """`password_file_problem` for one file, checked when built and again only when the
    file has changed since (a stat per use instead of a read): fixing the file while the
    daemon runs is noticed at the next transfer, and so is breaking it."""

    __slots__ = ("_problem", "_version", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._version = _version(path)
        self._problem = password_file_problem(path)

    def problem(self) -> str | None:
        """Why rsync would refuse the file now (None: it would not)."""
        version = _version(self.path)
        if version != self._version:
            self._version = version
            self._problem = password_file_problem(self.path)
        return self._problem
