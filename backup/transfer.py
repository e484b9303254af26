"""The rsync command lines: ship a batch, full reconcile, checksum compare."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from backup.keeper_record import HEARTBEAT_FILE
from backup.markers import SOURCE_MARKER, TARGET_MARKER
from backup.rsync import COMMON_ARGS, OUT_FORMAT, Outcome, RsyncResult, run_rsync
from backup.spec import ReplicationSpec
from backup.target import PARTIAL_DIR, VERSIONS_DIR, Target
from backup.target_lock import HeldLock, target_lock
from backup.versions import backup_dir_arg

_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR})
# Excluded on both sides: never shipped, never deleted on the replica by --delete, never
# compared, never restored. The markers prove identity (backup/markers.py): the source
# marker is not a document, and the target marker must survive every --delete. The keeper's
# heartbeat (backup/keeper_record.py) is pushed to the replica root on its own, without
# --backup: a full pass must neither delete it nor keep a version of it per heartbeat.
PROTECTED = frozenset({VERSIONS_DIR, PARTIAL_DIR, SOURCE_MARKER, TARGET_MARKER, HEARTBEAT_FILE})
# sorted: the same rsync command line in every process (a set's order is per process)
PROTECT = tuple(f"--exclude=/{name}" for name in sorted(PROTECTED))


def _base(spec: ReplicationSpec, *, partial: bool = True) -> list[str]:
    # --partial-dir makes rsync look for a partial file next to every file it checks: it
    # doubled the time of a full pass over an unchanged 100k-file tree, so the full
    # reconcile goes without it (an interrupted big file is sent again from the start).
    return [
        "-a",
        *COMMON_ARGS,
        *spec.target.exact_mtime_args(push=True),
        f"--timeout={max(1, int(spec.timeout))}",
        *([f"--partial-dir={PARTIAL_DIR}"] if partial else []),
        # holes stay holes (a 4 KB sparse file is not 100 MB on the replica); hard links stay
        # links among the files of one run (a batch, or the whole tree in a full pass)
        *(["--sparse"] if spec.sparse else []),
        *(["-H"] if spec.hardlinks else []),
        *spec.target.transport_args(spec.runtime_dir),
    ]


def _source(spec: ReplicationSpec) -> str:
    return str(spec.source).rstrip("/") + "/"


def shipping_list(source: Path, paths: Iterable[str]) -> list[str]:
    """The sorted list for --files-from.

    A vanished path is replaced by its topmost vanished ancestor, and paths below a vanished
    one are dropped: rsync does not delete a missing argument whose parent is missing too
    ("parent dir is absent in the file list"). A vanished path below an ancestor that is no
    longer a directory is replaced by that ancestor (a directory became a file: the sender
    cannot even stat the old child, "Not a directory"). An existing directory is listed with
    a trailing "/": with `-d --delete` rsync then sends its entries and removes entries the
    replica has that the source no longer has (a directory moved away and re-created)."""
    root = str(source)
    out: set[str] = set()
    gone: set[str] = set()
    for rel in paths:
        try:
            mode: int | None = os.lstat(os.path.join(root, rel)).st_mode
        except OSError as exc:
            mode = None
            if exc.errno not in _VANISHED:  # too long, unreadable...: let rsync say why
                out.add(rel)
                continue
        if mode is not None:
            out.add(rel + "/" if stat.S_ISDIR(mode) else rel)
            continue
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            try:
                st = os.lstat(os.path.join(root, prefix))
            except OSError as exc:
                (gone if exc.errno in _VANISHED else out).add(prefix)
                break
            if not stat.S_ISDIR(st.st_mode):
                out.add(prefix)  # the type change itself ships the removal below it
                break
    for g in gone:
        parts = g.split("/")
        if not any("/".join(parts[:i]) in gone for i in range(1, len(parts))):
            out.add(g)
    return sorted(out)


async def ship_batch(
    spec: ReplicationSpec,
    paths: Sequence[str],
    now: float,
    *,
    skip: Iterable[str] = (),
    dry_run: bool = False,
) -> RsyncResult:
    """Ships the listed paths (relative to the source); a listed path that no longer exists
    is deleted on the replica; replaced and deleted files go to the versions dir. `skip`:
    quarantined paths (a listed directory's entries may include them). `dry_run`: the same
    command with --dry-run, itemizing every replica file it would delete or replace."""
    listing = b"\0".join(os.fsencode(p) for p in shipping_list(spec.source, paths)) + b"\0"
    args = [
        *_base(spec),
        "-R",
        "--files-from=-",
        "--from0",
        "--delete-missing-args",
        # --force: a vanished non-empty directory is deleted (its files go to the versions);
        # -d --delete: a listed "dir/" loses the entries the source no longer has
        "--force",
        "-d",
        "--delete",
        "--backup",
        backup_dir_arg(now),
        *PROTECT,
        *skip_args(skip),
        *spec.filters.rsync_args(),
        *(["--dry-run"] if dry_run else []),
        _source(spec),
        spec.target.path(),
    ]
    if dry_run:
        return await run_rsync(args, stdin=listing)
    return await _write_target(spec, args, stdin=listing)


async def _write_target(
    spec: ReplicationSpec,
    args: list[str],
    *,
    stdin: bytes | None = None,
    on_output: Callable[[str], None] | None = None,
    lines: Callable[[str], None] | None = None,
) -> RsyncResult:
    """An rsync that writes the replica, under the target's lock: another process (a
    by-hand sync, a second daemon) never writes the same replica at the same time."""
    async with lock_target(spec) as held:
        return await run_rsync(
            args, stdin=stdin, on_output=on_output, pass_fds=held.pass_fds, lines=lines
        )


def partial_paths(paths: Iterable[str]) -> list[str]:
    """Where rsync keeps partial files of each path: its own, in `--partial-dir` beside it,
    and, for a directory, the partial dir inside it (which a deletion would otherwise move
    into the versions)."""
    out = []
    for rel in paths:
        rel = rel.rstrip("/")
        head, _, name = rel.rpartition("/")
        if name in ("", ".", ".."):
            continue
        out.append(f"{head}/{PARTIAL_DIR}/{name}" if head else f"{PARTIAL_DIR}/{name}")
        out.append(f"{rel}/{PARTIAL_DIR}")
    return out


async def remove_partials(spec: ReplicationSpec, paths: Sequence[str]) -> RsyncResult:
    """Deletes the replica's partial files of `paths` (gone from the source, or set aside):
    an interrupted big file must not keep filling the target. No --backup: a partial file
    is no version of anything. Each listed partial is a missing argument on the source side,
    so rsync deletes it where it exists and skips it where it does not (exit 24 at worst)."""
    wanted = [p for p in partial_paths(paths) if not _under_a_file(spec.source, p)]
    if not wanted:
        return RsyncResult(0, Outcome.OK)
    listing = b"".join(os.fsencode(p) + b"\0" for p in wanted)
    args = [
        "-a",
        *COMMON_ARGS,
        *spec.target.exact_mtime_args(push=True),
        f"--timeout={max(1, int(spec.timeout))}",
        *spec.target.transport_args(spec.runtime_dir),
        "-R",
        "--files-from=-",
        "--from0",
        "--delete-missing-args",
        "--force",
        _source(spec),
        spec.target.path(),
    ]
    return await _write_target(spec, args, stdin=listing)


def _under_a_file(source: Path, rel: str) -> bool:
    """The partial dir inside a path that is a file on the source (a set-aside file): rsync
    cannot even look for it there ("Not a directory"), and rsync keeps partial dirs in
    directories only."""
    try:
        os.lstat(os.path.join(source, rel))
    except OSError as exc:
        return exc.errno == errno.ENOTDIR
    return False


async def full_sync(
    spec: ReplicationSpec,
    now: float,
    *,
    on_output: Callable[[str], None] | None = None,
    dry_run: bool = False,
    skip: Iterable[str] = (),
    into_empty: HeldLock | None = None,
    on_line: Callable[[str], None] | None = None,
    itemize: bool = True,
    deletions: bool = True,
) -> RsyncResult:
    """The whole source, with the same backup semantics (the backstop for lost events).
    `dry_run`: the same command with `--dry-run --stats`: what it would change, itemized.
    `skip`: quarantined paths, left alone on both sides so they cannot fail the pass.
    `into_empty`: the target's lock, held by a caller that found the replica without files
    under it: nothing there to delete or replace, so no --delete/--backup (their cost).
    The itemized lines are not kept (`RsyncResult.changed` counts them); `on_line` gets each
    one as it arrives, for a dry run's caller.
    `itemize=False` (a pass into an empty local replica whose root exists, nothing watching
    its output): no line per file, the count comes from `--stats`. Reading 100,000 itemized
    lines cost the daemon ~1 s of CPU beside rsync on a 2-core host; the lines say nothing
    an empty replica needs (no deletion, no replaced file, the root is not created).
    `deletions=False` (a dry run only): no --delete/--backup, for a caller that looks for
    replica-only names itself (backup/orphans.py): rsync's receiver then does not read and
    stat every replica directory, a third of an unchanged reconcile."""
    base = _base(spec, partial=False)
    quiet = not itemize and into_empty is not None and on_output is None and on_line is None
    if quiet:
        base = [a for a in base if a != OUT_FORMAT] + ["--stats"]
    args = [
        *base,
        *(
            ()
            if into_empty is not None or (dry_run and not deletions)
            else ("--delete", "--backup", backup_dir_arg(now))
        ),
        *PROTECT,
        *skip_args(skip, walking=True),
        *spec.filters.rsync_args(),
    ]
    if dry_run:
        # The whole file list first, not one directory at a time: the dry run is all of a
        # reconcile of an unchanged tree (issue 18: <= 1.2x a plain `rsync -a`). 100k files
        # on tmpfs, median of 7-11 runs, 2 shared cores: in 1,000 dirs 0.74-0.85 s with
        # incremental recursion, 0.67-0.75 s without (`rsync -a` 0.51-0.61 s); in 10,000
        # dirs 1.17 s -> 0.87 s (`rsync -a` 0.87 s). Most of what is left is --delete
        # (1,000 dirs: 0.60 s, 0.45 s without it). The cost is rsync's memory, not ours: the
        # list is held at once, the 3 local rsync processes' peak RSS 18 -> 34 MB (1,000
        # dirs) and 25 -> 34 MB (10,000 dirs), ~160 bytes a file. The real pass keeps
        # incremental recursion: a fresh big tree starts transferring before it is listed.
        args += ["--dry-run", "--stats", "--no-inc-recursive"]
    elif on_output is not None:
        args += ["--info=progress2", "--no-inc-recursive"]
    args += [_source(spec), spec.target.path()]
    lines = on_line or _unkept
    if dry_run:
        return await run_rsync(args, on_output=on_output, lines=lines)
    if into_empty is not None:
        created = _Created()
        result = await run_rsync(
            args,
            on_output=on_output,
            pass_fds=into_empty.pass_fds,
            lines=created.feed if quiet else lines,
        )
        if quiet:
            result.counted = created.files
        return result
    return await _write_target(spec, args, on_output=on_output, lines=lines)


def _unkept(line: str) -> None:
    pass


class _Created:
    """`--stats`: "Number of created files: 101,012 (reg: 100,001, dir: 1,011)": what the
    itemized lines would have counted (files, links and new directories)."""

    def __init__(self) -> None:
        self.files = 0

    def feed(self, line: str) -> None:
        if line.startswith(_CREATED):
            self.files = _number(line[len(_CREATED) :].partition("(")[0])


_CREATED = "Number of created files: "


def _number(text: str) -> int:
    digits = "".join(c for c in text if c.isdigit())
    return int(digits) if digits else 0


def lock_target(spec: ReplicationSpec) -> contextlib.AbstractAsyncContextManager[HeldLock]:
    """The lock every write of the replica runs under (`_write_target`), for a caller that
    must look at the replica and write it with nothing in between."""
    return target_lock(spec.lock_dir or spec.runtime_dir, spec.target.url)


def skip_args(paths: Iterable[str], *, walking: bool = False) -> list[str]:
    """Excludes for quarantined paths. `walking` (full pass, verify): rsync reports a name
    longer than its MAXPATHLEN while listing the parent, before any filter could skip the
    name, so for such a path the whole parent is left to the live shipping."""
    out = set()
    for p in paths:
        if p.strip("/") in ("", "."):
            continue  # never the root
        if walking and len(os.fsencode(p)) >= RSYNC_PATH_MAX - 1 and "/" in p:
            p = p.rpartition("/")[0]
        out.add(p)
    return [f"--exclude={exact_pattern(p)}" for p in sorted(out)]


RSYNC_PATH_MAX = 4096
# rsync discards a longer filter rule ("discarding over-long filter"); MAXPATHLEN is 4096.
PATTERN_MAX = 4000


def exact_pattern(rel: str) -> str:
    """An rsync filter pattern that matches `rel` from the transfer root. A backslash escapes
    only in a pattern that has wildcards, so escape only then. A path too long for a rule
    (rsync cannot transfer it either) gets "*" for middle components until the rule fits:
    it can then also match names of the same depth and leaf, which are as long."""
    parts = rel.strip("/").split("/")
    wild = [False] * len(parts)
    i = len(parts) - 2
    while len(os.fsencode("/" + "/".join(parts))) > PATTERN_MAX and i >= 1:
        parts[i], wild[i] = "*", True
        i -= 1
    if any(wild) or any(c in rel for c in "*?["):
        parts = [
            p if w else "".join("\\" + c if c in "*?[\\" else c for c in p)
            for p, w in zip(parts, wild, strict=True)
        ]
    return "/" + "/".join(parts)


async def compare(
    source: str,
    dest: str,
    *,
    transport: Sequence[str] = (),
    filters: Sequence[str] = (),
    io_timeout: float = 60,
    safe_links: bool = False,
) -> RsyncResult:
    """Dry-run checksum comparison; `result.differences` lists every path that differs.
    `safe_links`: leave out symlinks that point outside the tree (restore does).
    (No --modify-window: -c compares content, mtimes only itemize as attribute changes.)"""
    args = [
        "-anc",
        "--delete",
        *COMMON_ARGS,
        f"--timeout={max(1, int(io_timeout))}",
        *transport,
        *(["--safe-links"] if safe_links else []),
        *PROTECT,
        *filters,
        source,
        dest,
    ]
    return await run_rsync(args)


async def verify_replica(spec: ReplicationSpec, *, skip: Iterable[str] = ()) -> RsyncResult:
    return await compare(
        _source(spec),
        spec.target.path(),
        transport=spec.target.transport_args(spec.runtime_dir),
        filters=[*skip_args(skip, walking=True), *spec.filters.rsync_args()],
        io_timeout=spec.timeout,
    )


async def fetch(
    target: Target,
    runtime_dir: Path,
    remote_sub: str,
    rel: str,
    dest: Path,
    *,
    io_timeout: float = 60,
) -> RsyncResult:
    """Copies `<replica>/<remote_sub>/<rel>` to `dest/<rel>` (whole replica when rel is "").
    Never deletes in `dest`; symlinks pointing outside the replica (absolute ones, `../`
    escapes) are not restored: a planted link to /etc/shadow must not come back as one."""
    base = target.path(remote_sub).rstrip("/")
    base += "" if base.endswith(":") else "/"  # "host:" (home, rrsync's dir) is not "host:/"
    rel = rel.strip("/")
    if target.remote and any(c in rel for c in "*?["):
        # the remote rsync globs an argument with wildcards ("*" is a name here); a
        # backslash escapes only then, as in `exact_pattern`
        rel = "".join("\\" + c if c in "*?[\\" else c for c in rel)
    src = f"{base}./{rel}" if rel else f"{base}./"
    args = [
        "-aR",
        "--safe-links",
        *COMMON_ARGS,
        *target.exact_mtime_args(push=False),
        f"--timeout={max(1, int(io_timeout))}",
        *target.transport_args(runtime_dir),
        *PROTECT,
        src,
        str(dest).rstrip("/") + "/",
    ]
    return await run_rsync(args)
