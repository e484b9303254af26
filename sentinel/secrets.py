"""Keeping credentials out of logs, status output and error messages, and off readable files.

What counts as a secret and how it is masked is common/redaction.py's (one masker for the
whole daemon); this module puts it on the log handlers, and `check_private()` refuses
credential files that other users can read, with the exact `chmod`/`chown` that fixes them.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import traceback
from collections.abc import Iterable
from pathlib import Path

from common.redaction import MASK, Redactor, mask, mask_secret_url, secret_parts, urls_in

__all__ = [
    "MASK",
    "CredentialFileError",
    "SecretMaskingFilter",
    "check_credential_files",
    "check_private",
    "install_masking",
    "mask",
    "mask_secret_url",
    "secret_parts",
    "urls_in",
]


class SecretMaskingFilter(Redactor, logging.Filter):
    """Masks secrets in every log record passing through the handlers it is installed on.

    Install it on handlers (not loggers) so records from every library logger pass through
    it. Register exact secrets from the config with `add()`; URL-shaped secrets are masked
    by shape even when nobody registered them. Masking rewrites the record's message, args,
    exception text and stack text; it never drops a record.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        logging.Filter.__init__(self)
        Redactor.__init__(self, secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: still mask what is there
            message = f"{record.msg} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_masking(
    secrets: Iterable[str] = (), logger: logging.Logger | None = None
) -> SecretMaskingFilter:
    """Put one `SecretMaskingFilter` on every handler of `logger` (default: the root logger).

    Call after the handlers exist; returns the filter so more secrets can be added later
    (e.g. on SIGHUP after re-reading the config).
    """
    target = logger or logging.getLogger()
    masking = SecretMaskingFilter(secrets)
    for handler in target.handlers:
        handler.addFilter(masking)
    return masking


class CredentialFileError(Exception):
    """A file holding credentials that other users could read or change.

    The message names the file, what it is for, what is wrong, and the commands to fix it.
    """

    def __init__(self, path: Path, what: str, problem: str, fix: str) -> None:
        self.path = path
        self.what = what
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path} ({what}): {problem}; fix: {fix}")


def check_private(
    path: Path, *, what: str, group: str = "sentinel", uid: int | None = None
) -> None:
    """Raise `CredentialFileError` unless only its owner and group can read `path`.

    Refused: any access for others (mode & 0o007) and write access for the group. `group`
    is the daemon's group, named in the suggested `chown`; `uid` is the daemon's user
    (default: this process's), whose own files are told `chmod 600` instead.
    """
    quoted = _shell_quote(str(path))
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CredentialFileError(
            path, what, "file not found", "create it, or fix the path in the config"
        ) from None
    except OSError as exc:
        raise CredentialFileError(
            path,
            what,
            f"cannot be checked: {exc.strerror}",
            f"sudo chown root:{group} {quoted} && sudo chmod 640 {quoted}",
        ) from None
    mode = stat.S_IMODE(st.st_mode)
    problems: list[str] = []
    if mode & 0o007:
        problems.append("other users can " + _access(mode & 0o007))
    if mode & 0o020:
        problems.append("its group can write it")
    if not problems:
        return
    daemon_uid = os.geteuid() if uid is None else uid
    if st.st_uid == daemon_uid and st.st_uid != 0:
        # Owned by the daemon's own user: owner-only access is enough.
        fix = f"chmod 600 {quoted}"
    else:
        fix = f"sudo chown root:{group} {quoted} && sudo chmod 640 {quoted}"
    raise CredentialFileError(path, what, f"mode {mode:04o}: {' and '.join(problems)}", fix)


def check_credential_files(
    paths: Iterable[tuple[Path, str]], *, group: str = "sentinel"
) -> list[str]:
    """Check each `(path, what)` with `check_private`; the list of problems (empty = fine)."""
    problems: list[str] = []
    for path, what in paths:
        try:
            check_private(path, what=what, group=group)
        except CredentialFileError as exc:
            problems.append(str(exc))
    return problems


def _access(bits: int) -> str:
    names = [name for bit, name in ((4, "read"), (2, "write"), (1, "execute")) if bits & bit]
    return " and ".join(names) + " it"


def _shell_quote(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@%+=-]+", text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"
