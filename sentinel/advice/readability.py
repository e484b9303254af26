"""check-config's warnings about documents the service account cannot read.

Each replication source is walked as that account, and the first path it may not read is
named (a file it cannot open, a directory it cannot list or enter). Root's own access
proves nothing (root reads everything), so `--user sentinel` run by root checks in a forked
child that has dropped to the account's uid, gid and groups before it walks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import select
import shlex
import signal
import time
from typing import Any

from backup.filters import Filters
from backup.markers import SOURCE_MARKER
from backup.readability import first_unreadable
from sentinel.config import Config

# The whole check stops after this long (checked at every path, directories included): a
# store of millions of files must not hold check-config up. 100,000 files took 1.0-1.7 s
# as another user (ext4, warm cache; docs/install.md). `run` does not walk at all: the
# daemon names any unreadable file it meets.
BUDGET = 5.0
# what the child checking as another account gets beyond the budget before it is killed
CHILD_GRACE = 5.0


class UnknownUser(LookupError):
    """`--user` names no account on this host."""


def readability_advice(config: Config, user: str | None, *, budget: float = BUDGET) -> list[str]:
    if not config.replication:
        return []
    sources = [
        (str(rc.source), Filters(tuple(rc.include), tuple(rc.exclude))) for rc in config.replication
    ]
    if user is None:
        if os.geteuid() == 0:
            return []  # root reads everything: only `--user` tells something
        return _report(_walk(sources, budget), _me())
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise UnknownUser(f"--user {user}: no such account on this host") from None
    if account.pw_uid == os.geteuid():
        return _report(_walk(sources, budget), user)
    if os.geteuid() != 0:
        return [
            f"cannot check which documents {user} may read: only root can act as another "
            f"account (run check-config as root, or as {user})"
        ]
    return _report(_walk_as(account, sources, budget), user)


def _me() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _excluded(filters: Filters, rel: str, is_dir: bool) -> bool:
    return filters.excluded(rel, is_dir=is_dir)


def _walk(sources: list[tuple[str, Filters]], budget: float) -> list[dict[str, Any]]:
    """Per source: the first unreadable path (relative), paths looked at, seconds, and
    whether the budget ran out first."""
    deadline = time.monotonic() + budget
    out = []
    for root, filters in sources:
        began = time.monotonic()
        first, seen, complete = first_unreadable(
            root, functools.partial(_excluded, filters), deadline=deadline
        )
        # the first sync writes the source marker, but under the unit the store is
        # read-only (ReadOnlyPaths=) whatever the account may write: without the marker
        # the first start pages "source missing"
        marker = os.path.join(root, SOURCE_MARKER)
        no_marker = os.path.isdir(root) and not os.path.lexists(marker)
        out.append(
            {
                "source": root,
                "first": first,
                "seen": seen,
                "complete": complete,
                "seconds": round(time.monotonic() - began, 3),
                "no_marker": no_marker,
            }
        )
    return out


def _walk_as(
    account: pwd.struct_passwd, sources: list[tuple[str, Filters]], budget: float
) -> list[dict[str, Any]]:
    """The walk in a child that is `account` (uid, gid, supplementary groups) for real."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the account, walk, report, and never return
        code = 0
        try:
            os.close(read_end)
            os.setgroups(os.getgrouplist(account.pw_name, account.pw_gid))
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            result: Any = _walk(sources, budget)
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
            code = 1
        with contextlib.suppress(BaseException), os.fdopen(write_end, "w") as pipe:
            json.dump(result, pipe)
        os._exit(code)
    os.close(write_end)
    # a stat on a hung network mount never returns, whatever the walk's own budget says:
    # the child gets that budget and a grace, then it is killed and the check says so
    chunks: list[bytes] = []
    deadline = time.monotonic() + budget + CHILD_GRACE
    with os.fdopen(read_end, "rb") as pipe:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([pipe], [], [], left)[0]:
                continue
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
        else:
            os.kill(pid, signal.SIGKILL)
            chunks = []
    os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    try:
        result = json.loads(text)
    except ValueError:
        result = {"error": "the check as that account ended without an answer"}
    if isinstance(result, dict):
        return [{"error": str(result.get("error"))}]
    return list(result)


def _report(results: list[dict[str, Any]], user: str) -> list[str]:
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"cannot check which documents {user} may read: {r['error']}")
            continue
        root = str(r["source"]).rstrip("/")
        if r.get("no_marker"):
            lines.append(
                f"replication source {root}: no {SOURCE_MARKER} marker, and the service may "
                "only read the store, so its first sync cannot write it and would page "
                f"'source missing'; write it once as root (it also grants read access): "
                f"sudo scripts/install.sh grant-read {shlex.quote(root)}"
            )
        if r["first"] is not None:
            path = root if r["first"] == "." else f"{root}/{r['first']}"
            lines.append(
                f"replication source {root}: {user} may not read {path} (the first such "
                f"path; it would not be replicated). Grant read access: sudo "
                f"scripts/install.sh grant-read {shlex.quote(root)} --user {shlex.quote(user)} "
                "(ACLs, docs/install.md)"
            )
        elif not r["complete"]:
            lines.append(
                f"replication source {root}: readable by {user} as far as checked ({r['seen']} "
                f"paths in {r['seconds']:.1f}s, then the time ran out); the daemon names any "
                "document it cannot read when it meets it"
            )
    return lines
