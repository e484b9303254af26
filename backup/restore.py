"""Restore from the replica, optionally as of a point in time, and the recovery drill."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from backup.append_record import AppendRecord, fetch_records, rebuild, remove_beneath
from backup.rsync import COMMON_ARGS, RsyncResult, run_rsync
from backup.spec import ReplicationSpec
from backup.target import VERSIONS_DIR, Target
from backup.transfer import compare, fetch
from backup.versions import list_version_stamps, parse_stamp


class RestoreError(RuntimeError):
    """The replica could not be read."""


@dataclass(slots=True)
class RestoreResult:
    files: int = 0
    versions_used: list[str] = field(default_factory=list)
    # as of a time: files left out because only content written after it is kept (a file
    # created since, or one whose content then is gone: see `unrebuilt`)
    excluded_newer: int = 0
    # files rebuilt from an append record (the start of their later content)
    rebuilt: int = 0
    # "path: why" for each file whose content then was a dropped append version that could
    # not be rebuilt (its later content was pruned or changed): left out
    unrebuilt: list[str] = field(default_factory=list)
    # append records that could not be read (the files they describe are left out)
    problems: list[str] = field(default_factory=list)


STAGING_PREFIX = ".sentinel-restore-"


def dest_problem(dest: Path, *, into_existing: bool) -> str | None:
    """Why `dest` cannot receive a restore, or None. A restore never deletes, so a
    non-empty `dest` is refused unless `into_existing`: pointed at the live store by
    mistake, it would replace newer documents with older ones. (The replica's restore here
    and the keeper's snapshot restore both ask.)"""
    if dest.exists() and not dest.is_dir():
        return f"{dest} is not a directory"
    if dest.is_dir() and not into_existing:
        with os.scandir(dest) as entries:
            if any(True for _ in entries):
                return (
                    f"{dest} is not empty; restore into an empty or new directory, or "
                    "pass --into-existing to write the restored files into it (files "
                    "of the same name are replaced, nothing else is touched)"
                )
    return None


async def restore(
    target: Target,
    runtime_dir: Path,
    dest: Path,
    *,
    path: str = "",
    as_of: float | None = None,
    into_existing: bool = False,
) -> RestoreResult:
    """Copies `path` (relative; "" = everything) from the replica into `dest`.

    With `as_of`: a version dir stamped T holds what was live until T, so a file's content
    as of `as_of` is the oldest version stamped after it, else the current replica copy;
    files whose content was written after `as_of` (mtime, kept by rsync -a) are left out.
    A version dropped as an append (`backup.append_versions`) counts as a version: its
    record says it was the first N bytes of the path's next content, which the version
    sets applied newest first have put in place just before.

    A restore only ever writes and replaces the files it restores; it never deletes
    anything in `dest`. A non-empty `dest` is refused unless `into_existing`: pointed at
    the live store by mistake, it would replace newer documents with older ones.
    """
    problem = dest_problem(dest, into_existing=into_existing)
    if problem is not None:
        raise RestoreError(problem)
    dest.mkdir(parents=True, exist_ok=True)
    if as_of is None and not into_existing:  # an empty dest: everything in it is ours
        return await _restore_into(target, runtime_dir, dest, path, None)
    # Decide what to restore in a private staging directory, then copy only that in.
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest))
    try:
        result = await _restore_into(target, runtime_dir, staging, path, as_of)
        st = os.stat(dest)
        with contextlib.suppress(OSError):  # the root's owner and mode stay dest's own
            os.chown(staging, st.st_uid, st.st_gid)
        os.chmod(staging, stat.S_IMODE(st.st_mode))
        copied = await run_rsync(
            ["-a", "--safe-links", *COMMON_ARGS, "--modify-window=-1", f"{staging}/", f"{dest}/"]
        )
        if not copied.ok:
            raise RestoreError(f"writing into {dest} failed: {copied.error}")
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


async def _restore_into(
    target: Target, runtime_dir: Path, dest: Path, path: str, as_of: float | None
) -> RestoreResult:
    """Fetches into `dest`, which holds nothing else (it may delete files in it)."""
    result = RestoreResult()
    current = await fetch(target, runtime_dir, "", path, dest)
    # as of a time, a path deleted since is only in the versions: 23 (nothing there) is
    # not yet an error
    missing_now = as_of is not None and path.strip("/") != "" and current.exit_code == 23
    if not current.ok and not missing_now:
        raise RestoreError(f"reading the replica failed: {current.error}")
    if as_of is not None:
        try:
            stamps = await list_version_stamps(target, runtime_dir)
        except RuntimeError as exc:
            raise RestoreError(str(exc)) from exc
        later = [s for s in stamps if (parse_stamp(s) or 0) > as_of]
        try:
            records, result.problems = await fetch_records(target, runtime_dir, later)
        except RuntimeError as exc:
            raise RestoreError(str(exc)) from exc
        unrebuilt: dict[str, str] = {}
        rebuilt: dict[str, AppendRecord] = {}
        for stamp in reversed(later):  # newest first, so the oldest one after as_of wins
            got: RsyncResult = await fetch(
                target, runtime_dir, f"{VERSIONS_DIR}/{stamp}", path, dest
            )
            if got.exit_code not in (0, 23, 24):  # 23: this version has nothing under path
                raise RestoreError(f"reading version {stamp} failed: {got.error}")
            mine = _under(records.get(stamp, {}), path)
            if got.transferred or mine:
                result.versions_used.append(stamp)
            for rel, record in mine.items():
                unrebuilt.pop(rel, None)  # an older state: decided here or below
                why = rebuild(dest, rel, record)
                if why is None:
                    rebuilt[rel] = record
                else:
                    # what is there is a later content: not this file as of then (a
                    # directory or a path through a link there is no such file: left)
                    with contextlib.suppress(OSError):
                        remove_beneath(dest, rel)
                    unrebuilt[rel] = why
        for rel in [r for r in unrebuilt if os.path.lexists(dest / r)]:
            del unrebuilt[rel]  # an older version set had the file itself
        result.unrebuilt = [f"{rel}: {why}" for rel, why in sorted(unrebuilt.items())]
        for root, _dirs, files in os.walk(dest):
            for name in files:
                full = os.path.join(root, name)
                if os.lstat(full).st_mtime > as_of:
                    os.unlink(full)
                    result.excluded_newer += 1
        if missing_now and not os.path.lexists(dest / path.strip("/")):
            if path.strip("/") in unrebuilt:
                raise RestoreError(
                    f"{path} as of {_shown_time(as_of)} cannot be rebuilt: "
                    f"{unrebuilt[path.strip('/')]}"
                )
            raise RestoreError(
                f"{path} did not exist at {_shown_time(as_of)} (it is neither "
                "on the replica nor in a version kept after that time)"
            )
        # the ones still as their record says (an older version set may have replaced one)
        result.rebuilt = sum(_is(dest / rel, rec) for rel, rec in rebuilt.items())
    result.files = sum(len(f) for _, _, f in os.walk(dest))
    return result


def _is(path: Path, record: AppendRecord) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return st.st_size == record.length and st.st_mtime_ns == record.mtime_ns


def _under(records: dict[str, AppendRecord], path: str) -> dict[str, AppendRecord]:
    """The records of the paths a restore of `path` ("" = everything) covers."""
    path = path.strip("/")
    if not path:
        return records
    return {r: rec for r, rec in records.items() if r == path or r.startswith(path + "/")}


def _shown_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


@dataclass(slots=True)
class DrillResult:
    ok: bool
    files: int
    differences: list[str]
    error: str = ""


async def drill(spec: ReplicationSpec) -> DrillResult:
    """Disaster-recovery drill: restore everything into a temp dir, compare with the
    source by checksum."""
    with tempfile.TemporaryDirectory(prefix="sentinel-drill-") as tmp:
        dest = Path(tmp)
        try:
            restored = await restore(spec.target, spec.runtime_dir, dest)
        except RestoreError as exc:
            return DrillResult(False, 0, [], str(exc))
        cmp = await compare(
            str(spec.source).rstrip("/") + "/",
            str(dest) + "/",
            filters=spec.filters.rsync_args(),
            io_timeout=spec.timeout,
            safe_links=True,
        )
        return DrillResult(
            cmp.ok and not cmp.differences,
            restored.files,
            cmp.differences,
            "" if cmp.ok else cmp.error,
        )
