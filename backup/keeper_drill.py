"""The recovery drill against the keeper's history (issue 11): restore the newest snapshot the
keeper confirmed, through the room's read-only drill key, and compare it with the source.

The replica the room writes is write-only at a keeper (the landing module refuses reads), so
the plain drill (backup/restore.py `drill`) cannot read it back. The keeper's receipt says
which snapshot is newest and up to when it holds everything the room had ("data safe as
of"); the snapshot itself comes from the history module, reached with a different key than
the write key (docs/keeper.md, "The drill key"). Nothing is written at the keeper: the
receipt and the snapshot are pulled, and only into a private temporary directory.

A source file changed after the snapshot's "safe as of" is expected to differ: it is listed
as newer than the snapshot and does not fail the drill. Every other difference (a file the
snapshot lacks, different bytes, a file only the snapshot has) fails it.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from backup.keeper_record import RecordError, fetch_receipt
from backup.rsync import COMMON_ARGS, run_rsync
from backup.snapshot import parse_name
from backup.spec import ReplicationSpec
from backup.target import Target, TargetError
from backup.transfer import PROTECT, compare

# rsync's itemize code for an entry the receiving side does not have at all
_NEW = "+++++++++"


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    what: str  # "missing from the snapshot", "differs from the snapshot", "only in the snapshot"
    changed: float | None = None  # when the source last changed it (mtime/ctime), if known

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


@dataclass(slots=True)
class KeeperDrillResult:
    history: str  # the history address (no secrets in it)
    snapshot: str | None = None
    safe_as_of: float | None = None
    files: int = 0
    failed: list[Difference] = field(default_factory=list)
    newer: list[Difference] = field(default_factory=list)  # changed after safe_as_of
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.failed


class DrillError(RuntimeError):
    """The keeper's receipt or snapshot could not be read (the message says why)."""


async def keeper_drill(
    spec: ReplicationSpec, history: Target, receipt: Target, room: str
) -> KeeperDrillResult:
    """Restores the keeper's newest confirmed snapshot of `room` from `history` into a temp
    dir and compares it with `spec.source` by checksum (see the module doc)."""
    result = KeeperDrillResult(history=history.describe())
    with tempfile.TemporaryDirectory(prefix="sentinel-drill-") as tmp:
        work = Path(tmp)
        try:
            await _drill_into(spec, history, receipt, room, work, result)
        except (DrillError, RecordError, TargetError) as exc:
            result.error = str(exc)
        except OSError as exc:
            result.error = f"{exc.strerror or exc}: {exc.filename or receipt.describe()}"
    return result


async def _drill_into(
    spec: ReplicationSpec,
    history: Target,
    receipt_from: Target,
    room: str,
    work: Path,
    result: KeeperDrillResult,
) -> None:
    try:
        receipt = await fetch_receipt(receipt_from, spec.runtime_dir, work, io_timeout=spec.timeout)
    except (RecordError, OSError) as exc:
        text = (
            str(exc)
            if not isinstance(exc, OSError)
            else (f"{exc.strerror or exc}: {exc.filename or receipt_from.describe()}")
        )
        raise DrillError(
            f"cannot read the keeper's receipt at {receipt_from.describe()} "
            f"(it names the newest snapshot): {text}"
        ) from None
    if receipt.room != room:
        raise DrillError(
            f"the receipt at {receipt_from.describe()} is for room {receipt.room!r}, not {room!r}"
        )
    if receipt.snapshot is None:
        raise DrillError(
            f"the keeper has no snapshot of room {room!r} yet (receipt at "
            f"{receipt_from.describe()})"
        )
    # the name becomes a path on the keeper: only the keeper's own snapshot names pass
    if parse_name(receipt.snapshot) is None:
        raise DrillError(
            f"the receipt names snapshot {receipt.snapshot!r}, which is not a snapshot name"
        )
    result.snapshot, result.safe_as_of = receipt.snapshot, receipt.safe_as_of

    restored = work / "snapshot"
    restored.mkdir()
    # a pull, never a push: --safe-links leaves out links pointing out of the snapshot, and
    # PROTECT the keeper's and sentinel's own files (heartbeat, markers, versions)
    pulled = await run_rsync(
        [
            "-a",
            "--safe-links",
            *COMMON_ARGS,
            f"--timeout={max(1, int(spec.timeout))}",
            *history.transport_args(spec.runtime_dir),
            *PROTECT,
            history.path(receipt.snapshot) + "/",
            f"{restored}/",
        ]
    )
    if not pulled.ok:
        raise DrillError(
            f"reading snapshot {receipt.snapshot} from {history.describe()} "
            f"failed: {pulled.error}{_hint(pulled.error)}"
        )
    result.files = sum(len(f) for _, _, f in os.walk(restored))

    cmp = await compare(
        str(spec.source).rstrip("/") + "/",
        f"{restored}/",
        filters=spec.filters.rsync_args(),
        io_timeout=spec.timeout,
        safe_links=True,
    )
    if not cmp.ok:
        raise DrillError(f"comparing with the source failed: {cmp.error}")
    for diff in _differences(spec.source, cmp.output):
        late = (
            receipt.safe_as_of is not None
            and diff.changed is not None
            and diff.changed > receipt.safe_as_of
        )
        (result.newer if late else result.failed).append(diff)


def _hint(error: str) -> str:
    if "Unknown module" in error:
        return (
            " (the key used does not reach this module: is history_identity_file the "
            "drill key? The write key cannot read the history)"
        )
    if "Permission denied" in error:
        return (
            " (the keeper host refused this key for that account: history_identity_file "
            "must be the drill key installed in the keeper account's authorized_keys)"
        )
    if "module is write only" in error:
        return (
            " (history names the write-only landing module: use the room's history "
            "module, <room>-history)"
        )
    return ""


def _differences(source: Path, lines: list[str]) -> list[Difference]:
    """Every content or existence difference in a `compare` run's itemized output, with
    when the source last changed there."""
    out = []
    for line in lines:
        if len(line) < 13 or line[11] != " ":
            continue
        code, name = line[:11], line[12:]
        if code.startswith("*deleting"):
            # gone from the source: the deletion changed the nearest directory still there
            out.append(
                Difference(
                    name.rstrip("/"),
                    "only in the snapshot (not in the source)",
                    _changed_above(source, name.rstrip("/")),
                )
            )
        elif code[0] in "<>ch" and (code[1] != "d" or code[2:] == _NEW):
            what = "missing from the snapshot" if code[2:] == _NEW else "differs from the snapshot"
            out.append(Difference(name.rstrip("/"), what, _changed(source / name)))
    return out


def _changed(path: Path) -> float | None:
    """When this entry last changed at the source: ctime catches a file moved or restored
    into place with an old mtime."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return max(st.st_mtime, st.st_ctime)


def _changed_above(source: Path, rel: str) -> float | None:
    parent = posixpath.dirname(rel)
    while True:
        changed = _changed(source / parent if parent else source)
        if changed is not None or not parent:
            return changed
        parent = posixpath.dirname(parent)
