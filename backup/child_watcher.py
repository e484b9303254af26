"""Waiting for subprocesses without a thread each (Python 3.11 on Linux).

Python 3.11's default child watcher starts a thread per subprocess to block in waitpid():
with one rsync per shipped batch that was a thread start and several GIL hand-offs per
batch. A pidfd (Linux 5.3+) becomes readable when the process exits, so the event loop
itself can wait for it. This is what Python 3.12 does by default; its 3.11 class is tied
to one loop, so this one, like 3.12's, serves whichever loop is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVarTuple, Unpack

_Ts = TypeVarTuple("_Ts")


class PidfdWatcher(asyncio.AbstractChildWatcher):
    """Reaps each child on the loop that started it, when its pidfd becomes readable."""

    def add_child_handler(
        self, pid: int, callback: Callable[[int, int, Unpack[_Ts]], object], *args: *_Ts
    ) -> None:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        loop.add_reader(pidfd, self._reap, loop, pid, pidfd, callback, args)

    @staticmethod
    def _reap(
        loop: asyncio.AbstractEventLoop, pid: int, pidfd: int, callback: Any, args: Any
    ) -> None:
        loop.remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # reaped elsewhere: the status is lost
            code = 255
        else:
            code = os.waitstatus_to_exitcode(status)
        os.close(pidfd)
        callback(pid, code, *args)

    def remove_child_handler(self, pid: int) -> bool:
        return True

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        pass

    def close(self) -> None:
        pass

    def is_active(self) -> bool:
        return True

    def __enter__(self) -> PidfdWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def use_pidfd_watcher() -> None:
    """Installs `PidfdWatcher` as the policy's child watcher once (cheap to call before
    every spawn: a new event loop policy, as tests make, gets it again). Nothing on
    Python 3.12+ (already its default) or where pidfds are missing."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        current = asyncio.get_child_watcher()
        if isinstance(current, PidfdWatcher):
            return
        try:  # a kernel before 5.3, or a seccomp filter: keep the threaded watcher
            os.close(os.pidfd_open(os.getpid()))
        except OSError:
            return
        with contextlib.suppress(Exception):
            asyncio.set_child_watcher(PidfdWatcher())
