"""Running rsync through `sh` (async) and reading what it says: exit codes and itemized lines."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import sh

# %i is 11 characters wide ("*deleting  " for deletions); the name follows after one space.
OUT_FORMAT = "--out-format=%i %n"
# Nanosecond mtimes: with whole seconds, a same-size rewrite within one second looks
# unchanged to the quick check and would never be shipped.
COMMON_ARGS = ("-8", OUT_FORMAT, "--modify-window=-1")

# Exit codes. 24 (source files vanished) is a success: the journal row of a vanished file
# was already shipped as a deletion or will be. 23 (partial transfer) is retried with backoff
# rather than treated as fatal: an unwritable or full target gives 23 and recovers by
# itself; a persistently unreadable source file keeps failing and raises the failures alarm.
OK_CODES = frozenset({0, 24})
RETRYABLE_CODES = frozenset({5, 10, 11, 12, 14, 20, 21, 22, 23, 30, 35, 255})
# Everything else (1 syntax, 2 protocol, 3 file selection, 4 unsupported, 6 log, 13, 25
# max-delete, 127 no rsync...) is fatal: an operator has to fix something.


class Outcome(StrEnum):
    OK = "ok"
    RETRY = "retry"
    FATAL = "fatal"


def classify(exit_code: int) -> Outcome:
    if exit_code in OK_CODES:
        return Outcome.OK
    if exit_code in RETRYABLE_CODES:
        return Outcome.RETRY
    return Outcome.FATAL


@dataclass(slots=True)
class RsyncResult:
    """What one rsync run did."""

    exit_code: int
    outcome: Outcome
    transferred: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # attribute-only and directory items
    output: list[str] = field(default_factory=list)  # every stdout line
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def differences(self) -> list[str]:
        """Content or existence differences (for a dry-run compare)."""
        return self.transferred + self.deleted


def parse_itemized(lines: Sequence[str], result: RsyncResult) -> None:
    for line in lines:
        if len(line) < 13 or line[11] != " ":
            continue
        code, name = line[:11], line[12:]
        if code.startswith("*deleting"):
            result.deleted.append(name)
        elif code[0] in "<>ch" and (code[1] != "d" or code[2:] == "+++++++++"):
            # file content, or a directory that does not exist on the other side
            result.transferred.append(name)
        else:
            result.other.append(name)


async def run_rsync(
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    time_limit: float | None = None,
    on_output: Callable[[str], None] | None = None,
) -> RsyncResult:
    """Runs `rsync *args`; never raises for a non-zero exit (see `RsyncResult.outcome`).

    Cancelling the caller kills rsync, so a daemon shutdown leaves no transfer behind.
    `on_output` gets raw stdout chunks on sh's thread (for progress bars).
    """
    began = time.monotonic()
    kwargs: dict[str, object] = {
        "_async": True, "_return_cmd": True, "_tty_out": False, "_ok_code": list(range(256)),
        "_bg_exc": False, "_decode_errors": "replace",
    }
    if stdin is not None:
        kwargs["_in"] = stdin
    if time_limit is not None:
        kwargs["_timeout"] = time_limit
    if on_output is not None:
        kwargs["_out"] = on_output
        kwargs["_out_bufsize"] = 0
    try:
        cmd = sh.rsync(*args, **kwargs)
    except sh.CommandNotFound:
        return RsyncResult(127, Outcome.FATAL, error="rsync is not installed")
    try:
        done = await cmd
    except sh.TimeoutException:
        return RsyncResult(30, Outcome.RETRY, error=f"rsync killed after {time_limit:.0f}s",
                           seconds=time.monotonic() - began)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            cmd.kill()
        # let sh's output thread finish while the loop still exists (it calls back into it)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(cmd.aio_output_complete.wait(), 5)
        raise
    code = int(done.exit_code)
    result = RsyncResult(code, classify(code), seconds=time.monotonic() - began)
    if on_output is None:
        out = done.stdout.decode("utf-8", "replace") if isinstance(done.stdout, bytes) else ""
        result.output = out.splitlines()
        parse_itemized(result.output, result)
    if code not in (0,):
        err = done.stderr.decode("utf-8", "replace") if isinstance(done.stderr, bytes) else ""
        result.error = _last_lines(err) or f"rsync exited {code}"
    return result


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[:500]
