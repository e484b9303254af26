"""Running rsync as an asyncio subprocess and reading what it says: exit codes and itemized
lines."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from backup.child_watcher import use_pidfd_watcher

# %i is 11 characters wide ("*deleting  " for deletions); the name follows after one space.
OUT_FORMAT = "--out-format=%i %n"
# Every command also passes `Target.exact_mtime_args` (nanosecond mtimes), in the form that
# reaches whichever side receives.
COMMON_ARGS = ("-8", OUT_FORMAT)
# Above this many bytes of arguments, the excludes go in a file (spill_excludes); Linux
# refuses an exec near 2 MiB of arguments and environment.
ARGS_INLINE_MAX = 256 * 1024

# Exit codes. 24 (source files vanished) is a success: the journal row of a vanished file
# was already shipped as a deletion or will be. 23 (partial transfer) is retried with backoff
# rather than treated as fatal: an unwritable or full target gives 23 and recovers by
# itself. A source file the account may not read also gives 23: the replicator splits the
# batch, sets the file aside and names it (backup/readability.py, replication_unreadable).
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


# stderr lines kept per run: one per unreadable file of a batch (batch_max_files is 5000
# by default), with room for the summary lines
ERROR_LINES_MAX = 20000


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
    # every stderr line (bounded): `error` keeps the last few for people, these name each
    # path the sender could not read (backup/readability.py sender_denied)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # the destination root rsync had to make ("created directory X"): a lost replica that
    # rsync re-created, unless the root was meant to be new
    created_root: str | None = None
    # files transferred or deleted whose lines were not kept (`run_rsync(lines=...)`)
    counted: int = 0

    @property
    def changed(self) -> int:
        """How many files this run transferred or deleted."""
        return len(self.transferred) + len(self.deleted) + self.counted

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def differences(self) -> list[str]:
        """Content or existence differences (for a dry-run compare)."""
        return self.transferred + self.deleted


CREATED_ROOT = "created directory "
# One itemized line (OUT_FORMAT): 11 change characters, a space, the name; the groups are
# the update type, the file type and the 9 attribute characters ("+++++++++": a new item).
ITEM = re.compile(r"^([<>ch.*])([fdLDS])(.{9}) ")
DELETING = "*deleting "


# errno texts that describe the receiving file system, not the path being written: a full,
# over-quota, read-only or failing replica fails every file the same way.
TARGET_CONDITIONS = (
    ("No space left on device (28)", "no space left on the replica"),
    ("Disk quota exceeded (122)", "disk quota exceeded on the replica"),
    ("Read-only file system (30)", "the replica is read-only"),
    ("Input/output error (5)", "I/O error on the replica"),
)


def target_condition(error: str) -> str | None:
    """What is wrong with the replica's file system, from rsync's error text (None when the
    error is about something else, or the sending side's own file)."""
    for line in error.split(" | "):
        if "[sender]" in line:
            continue
        for text, meaning in TARGET_CONDITIONS:
            if text in line:
                return meaning
    return None


def parse_itemized(lines: Sequence[str], result: RsyncResult) -> None:
    for line in lines:
        parse_line(line, result, keep=True)


def parse_line(line: str, result: RsyncResult, *, keep: bool) -> None:
    """One stdout line into `result`: its name into the lists with `keep`, else counted."""
    if line.startswith(CREATED_ROOT):  # the receiver's note, printed with %i only
        result.created_root = line[len(CREATED_ROOT) :]
        return
    if len(line) < 13 or line[11] != " ":
        return
    code = line[:11]
    if code.startswith("*deleting"):
        if keep:
            result.deleted.append(line[12:])
        else:
            result.counted += 1
    elif code[0] in "<>ch" and (code[1] != "d" or code[2:] == "+++++++++"):
        # file content, or a directory that does not exist on the other side
        if keep:
            result.transferred.append(line[12:])
        else:
            result.counted += 1
    elif keep:
        result.other.append(line[12:])


class _Lines:
    """Decoded stdout chunks cut into lines, each handed to `sink` and parsed, none kept."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self._sink = sink
        self._rest = ""
        self.result = RsyncResult(0, Outcome.OK)

    def feed(self, chunk: str) -> None:
        *whole, self._rest = (self._rest + chunk).split("\n")
        for line in whole:
            self._line(line)

    def close(self) -> None:
        if self._rest:
            self._line(self._rest)
            self._rest = ""

    def _line(self, line: str) -> None:
        parse_line(line, self.result, keep=False)
        self._sink(line)


async def run_rsync(
    args: Sequence[str],
    *,
    stdin: bytes | None = None,
    time_limit: float | None = None,
    on_output: Callable[[str], None] | None = None,
    pass_fds: Sequence[int] = (),
    lines: Callable[[str], None] | None = None,
) -> RsyncResult:
    """Runs `rsync *args`; never raises for a non-zero exit (see `RsyncResult.outcome`).

    `lines` gets each stdout line as it arrives, and the lines are not kept (a full pass
    itemizes every file of a fresh tree: ~18 MB per 100k files); the result then has
    `counted` and `created_root` but empty lists.

    Cancelling the caller kills rsync, so a daemon shutdown leaves no transfer behind.
    `on_output` gets decoded stdout chunks as they arrive, on the loop (for progress bars).
    `pass_fds`: descriptors rsync inherits, so that a lock on them (backup/target_lock.py)
    lasts until rsync exits, even when the caller is killed first.
    """
    # A plain asyncio subprocess, not `sh`: sh's await joins its I/O threads synchronously
    # on the event loop and often stalls a finished rsync for a whole second (its threads
    # poll with 1 s timeouts), which alone put the shipping latency p50 at ~0.5 s.
    began = time.monotonic()
    args, spilled = spill_excludes(args)
    try:
        return await _run(args, began, stdin, time_limit, on_output, tuple(pass_fds), lines)
    finally:
        if spilled is not None:
            os.unlink(spilled)


def spill_excludes(args: Sequence[str]) -> tuple[list[str], str | None]:
    """`args`, with the longest run of `--exclude=` moved into a file when the command line
    would pass ARGS_INLINE_MAX; and that file's path, for the caller to remove.

    Each path set aside (quarantined, unreadable) is one exclude: a store with tens of
    thousands of them (a 0600 archive folder) made a command the kernel refuses to exec
    (E2BIG near 2 MiB), and rsync could not start at all. The file keeps the run's place on
    the command line, so the rules keep their order, and is NUL-separated (--from0), as a
    name may hold a newline."""
    args = list(args)
    if sum(len(a) + 1 for a in args) <= ARGS_INLINE_MAX:
        return args, None
    if "--from0" not in args and any(a.startswith("--files-from") for a in args):
        return args, None  # a newline-separated list already: left as it was
    best = (0, 0)
    start = None
    for i, arg in enumerate([*args, ""]):
        if arg.startswith("--exclude="):
            start = i if start is None else start
        elif start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    first, end = best
    if end - first < 2:
        return args, None
    fd, path = tempfile.mkstemp(prefix="sentinel-excludes-")
    with os.fdopen(fd, "wb") as out:
        for arg in args[first:end]:
            out.write(os.fsencode(arg.removeprefix("--exclude=")) + b"\0")
    spilled = [*args[:first], f"--exclude-from={path}", *args[end:]]
    if "--from0" not in spilled:
        spilled.insert(0, "--from0")
    return spilled, path


async def _run(
    args: Sequence[str],
    began: float,
    stdin: bytes | None,
    time_limit: float | None,
    on_output: Callable[[str], None] | None,
    pass_fds: tuple[int, ...],
    lines: Callable[[str], None] | None = None,
) -> RsyncResult:
    use_pidfd_watcher()
    try:
        proc = await asyncio.create_subprocess_exec(
            rsync_path(),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=pass_fds,
        )
    except FileNotFoundError:
        return RsyncResult(127, Outcome.FATAL, error="rsync is not installed")
    except OSError as exc:  # E2BIG despite the spill, EAGAIN, ENOMEM: a failing run, paged
        return RsyncResult(
            20,
            Outcome.RETRY,
            error=f"cannot start rsync: {exc.strerror}",
            seconds=time.monotonic() - began,
        )
    cut = _Lines(lines) if lines is not None and on_output is None else None
    try:
        async with asyncio.timeout(time_limit):
            out, err = await _communicate(proc, stdin, cut.feed if cut else on_output)
    except TimeoutError:
        await _kill(proc)
        return RsyncResult(
            30,
            Outcome.RETRY,
            error=f"rsync killed after {time_limit:.0f}s",
            seconds=time.monotonic() - began,
        )
    except asyncio.CancelledError:
        await _kill(proc)
        raise
    code = proc.returncode if proc.returncode is not None else 255
    if code < 0:  # killed by a signal from elsewhere: worth another try
        code = 20
    result = RsyncResult(code, classify(code), seconds=time.monotonic() - began)
    if cut is not None:
        cut.close()
        result.counted = cut.result.counted
        result.created_root = cut.result.created_root
    elif on_output is None:
        result.output = out.decode("utf-8", "replace").splitlines()
        parse_itemized(result.output, result)
    if code != 0:
        text = err.decode("utf-8", "replace")
        result.error = _last_lines(text) or f"rsync exited {code}"
        result.errors = text.splitlines()[:ERROR_LINES_MAX]
    return result


_resolved: dict[str, str] = {}


def rsync_path() -> str:
    """rsync's absolute path, looked up once per PATH: a bare name made every spawn try
    each PATH entry in turn (an execve per entry). "rsync" when it is not found (the spawn
    then says so)."""
    search = os.environ.get("PATH", os.defpath)
    found = _resolved.get(search)
    if found is None:
        found = shutil.which("rsync", path=search) or "rsync"
        if found != "rsync":  # not installed yet: look again next time
            _resolved[search] = found
    return found


async def _communicate(
    proc: asyncio.subprocess.Process,
    stdin: bytes | None,
    on_output: Callable[[str], None] | None,
) -> tuple[bytes, bytes]:
    async def feed() -> None:
        if proc.stdin is None:
            return
        # rsync may exit before reading all of its list (e.g. a failed connection)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            proc.stdin.write(stdin or b"")
            await proc.stdin.drain()
        proc.stdin.close()

    async def pump(
        stream: asyncio.StreamReader | None, sink: Callable[[str], None] | None
    ) -> bytes:
        if stream is None:
            return b""
        chunks: list[bytes] = []
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while chunk := await stream.read(65536):
            if sink is None:
                chunks.append(chunk)
            else:  # progress output can be long: hand it on, do not keep it
                sink(decoder.decode(chunk))
        return b"".join(chunks)

    _, out, err = await asyncio.gather(
        feed(), pump(proc.stdout, on_output), pump(proc.stderr, None)
    )
    await proc.wait()
    return out, err


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    # reap it even when we are being cancelled (no zombie, no loop-closed warnings)
    with contextlib.suppress(BaseException):
        async with asyncio.timeout(5):
            # shielded: the timeout (or a second cancel) stops the wait, not the reaping
            await asyncio.shield(proc.wait())


def _last_lines(text: str, n: int = 3, width: int = 240) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    # cut long lines in the middle: the reason ("File name too long (36)") is at the end
    return " | ".join(
        ln if len(ln) <= width else f"{ln[: width // 2 - 2]}...{ln[-width // 2 :]}"
        for ln in lines[-n:]
    )
