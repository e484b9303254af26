"""Config for replication sources ([[replication]]). Owned by the backup work (issue 6).

```toml
[[replication]]
name = "onnara"
source = "/srv/onnara/docs"
target = "backup@health-center:/srv/replica/onnara"   # or /mnt/x, rsync://user@host/mod/path
identity_file = "/etc/sentinel/id_ed25519"
known_hosts = "/etc/sentinel/known_hosts"
exclude = ["*.tmp", "cache/*"]
[replication.guard]
max_files = 200
[replication.keeper]                  # optional: a keeper at the health center (issue 11)
room = "main-office"                  # the name the keeper knows this room by
heartbeat = "5s"
receipt = "backup@health-center::main-office-receipt/receipt.json"
confirm_wait = "1.5s"
history = "sentinel-keeper@health-center::main-office-history"   # for `backup drill`
history_identity_file = "/etc/sentinel/id_drill"                # the drill key, not the write key
```
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from backup.target import Target, TargetError
from backup.transport import LocalTarget, RsyncdTarget, SshTarget, parse_target
from sentinel.config.database import DatabaseConfig
from sentinel.config.types import ConfigPath, Duration, Model

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class GuardConfig(Model):
    """Ransomware guard: pause shipping when more than `max_files`, or more than
    `max_share` of the existing files (once at least `min_files`), are modified, deleted
    or renamed within `window`."""

    enabled: bool = True
    window: Duration = Field(60.0, gt=0)
    max_files: int = Field(200, ge=1)
    max_share: float = Field(0.2, gt=0, le=1)
    min_files: int = Field(50, ge=1)


# A longer wait is no latency budget any more: the nightly and at-start full passes and
# lsyncd-like batching are there for that.
LATENCY_BUDGET_MAX = 60.0


# A critical page waits at most this long for the keeper's "data safe to" confirmation.
CONFIRM_WAIT_MAX = 5.0
# Default age at which a receipt counts as the keeper not answering (see KeeperLinkConfig).
RECEIPT_STALE = 90.0


class KeeperLinkConfig(Model):
    """The keeper (`sentinel keeper` on the backup host) this replication reports to: a
    heartbeat pushed to the target root every `heartbeat`, and the keeper's receipt read
    back from `receipt` (an absolute path for a local target, `rsync://user@host/<room>-receipt
    /receipt.json`, or `user@host::<room>-receipt/receipt.json`: the rsync daemon over ssh).
    `receipt_stale`: a receipt older than this is reported as the keeper not answering
    (default 90 s, or 6 heartbeats when longer: while changes keep landing, the keeper
    rewrites its receipt only at its next snapshot, up to its `snapshot_within`, 60 s).

    `history` (optional): where `sentinel backup drill` reads the keeper's snapshots, the
    room's read-only history module `user@host::<room>-history` reached with the separate
    drill key `history_identity_file` (docs/keeper.md, "The drill key"), or an absolute path
    for a keeper on a local disk. The replication's other ssh options (port, known hosts,
    host key checking) apply. Without it the drill reads the replica as before."""

    room: str | None = None  # default: the replication's name
    heartbeat: Duration = Field(5.0, ge=1.0, le=300.0)
    receipt: str
    confirm_wait: Duration = Field(1.5, ge=0.0, le=CONFIRM_WAIT_MAX)
    receipt_stale: Duration | None = Field(None, gt=0)
    history: str | None = None
    history_identity_file: ConfigPath | None = None

    @field_validator("room")
    @classmethod
    def _room(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value):
            raise ValueError(
                "use letters, digits, '.', '_' or '-' (it names the keeper's "
                "directories and rsync modules)"
            )
        return value

    @field_validator("receipt")
    @classmethod
    def _receipt(cls, value: str) -> str:
        try:
            target = parse_target(value)
        except TargetError as exc:
            raise ValueError(f"receipt: {exc}") from None
        if value.endswith(("/", ":")) or not posixpath.basename(target.url):
            raise ValueError("receipt: name the file (…/receipt.json), not a directory")
        return value

    @field_validator("history")
    @classmethod
    def _history(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            target = parse_target(value)
        except TargetError as exc:
            raise ValueError(f"history: {exc}") from None
        # the history is reached as the keeper's read-only module over ssh (the drill key's
        # forced command) or on a local disk; a shell login or a TCP rsync daemon is not how
        # docs/keeper.md exposes it, and a writable place is no history
        if not (
            isinstance(target, LocalTarget)
            or (isinstance(target, SshTarget) and target.daemon_over_ssh)
        ):
            raise ValueError(
                "history: use user@host::<room>-history (the keeper's read-only "
                "snapshot module, reached with the drill key) or an absolute "
                "path for a keeper on this host"
            )
        return value

    @field_validator("history_identity_file")
    @classmethod
    def _history_key_relative(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir") if info.context else None
        if value is not None and not value.is_absolute() and base is not None:
            return Path(base) / value
        return value

    @model_validator(mode="after")
    def _history_key(self) -> KeeperLinkConfig:
        if self.history is None:
            if self.history_identity_file is not None:
                raise ValueError(
                    "history_identity_file is the drill key for `history`: set "
                    "history too, or remove it"
                )
            return self
        remote = isinstance(parse_target(self.history), SshTarget)
        if remote and self.history_identity_file is None:
            raise ValueError(
                "history_identity_file: an ssh history needs the separate drill "
                'key (docs/keeper.md, "The drill key"); the write key cannot '
                "read the snapshots"
            )
        if not remote and self.history_identity_file is not None:
            raise ValueError(
                "history_identity_file is only for an ssh history (user@host::<room>-history)"
            )
        return self

    @property
    def stale_after(self) -> float:
        if self.receipt_stale is not None:
            return self.receipt_stale
        return max(RECEIPT_STALE, 6 * self.heartbeat)


class ReplicationConfig(Model):
    name: str
    # "files": a document store; "archive-log": a database's closed logs
    # ([replication.database], sentinel/config/database.py)
    kind: Literal["files", "archive-log"] = "files"
    source: ConfigPath
    target: str
    include: list[str] = []
    exclude: list[str] = []
    # rsync daemon targets
    password_file: ConfigPath | None = None
    # ssh targets
    ssh_port: int | None = Field(None, ge=1, le=65535)
    identity_file: ConfigPath | None = None
    known_hosts: ConfigPath | None = None
    # a second key, whose forced command on the backup host is `sentinel receive DIR`:
    # plain files then go over one ssh session for the daemon's life, not an rsync run
    # each (docs/transport.md, "The stream road")
    stream_identity_file: ConfigPath | None = None
    # ssh's StrictHostKeyChecking: "yes" (default: the key must be in known_hosts),
    # "accept-new" (trust a host's first key, refuse a changed one), or "no"/false (trust
    # any key: turning it off must be this explicit)
    strict_host_key_checking: Literal["yes", "accept-new", "no"] = "yes"
    timeout: Duration = Field(60.0, gt=0)
    batch_max_files: int = Field(5000, ge=1)
    batch_max_bytes: int = Field(1 << 30, ge=1)
    reconcile_at_start: bool = True
    reconcile_every: Duration | None = 86400.0  # nightly; none = only at start and by hand
    verify_every: Duration | None = 7 * 86400.0
    versions_retention: Duration | None = 30 * 86400.0
    fallback_reconcile: Duration = Field(300.0, gt=0)
    retry_max: Duration = Field(60.0, gt=0)
    # the source root must be a mountpoint: an unmounted disk is refused, not mirrored
    require_mountpoint: bool = False
    sparse: bool = True  # keep holes in sparse files (rsync --sparse)
    hardlinks: bool = True  # keep hard links (rsync -H); off for a target without them
    # a local target: copy plain files in-process (no rsync run each); false: rsync for all
    local_copy: bool = True
    # how long a change may wait for its ship run (default 100 ms local, 400 ms remote):
    # wider means fewer rsync runs, so less CPU while writes keep coming (backup/coalesce.py)
    latency_budget: Duration | None = None
    guard: GuardConfig = GuardConfig()
    keeper: KeeperLinkConfig | None = None
    database: DatabaseConfig | None = None

    @property
    def keeper_room(self) -> str:
        """The name the keeper knows this room by."""
        return (self.keeper.room if self.keeper and self.keeper.room else None) or self.name

    @field_validator("strict_host_key_checking", mode="before")
    @classmethod
    def _host_key_bool(cls, value: object) -> object:
        if isinstance(value, bool):  # the older true/false form
            return "yes" if value else "no"
        return value

    @field_validator("latency_budget")
    @classmethod
    def _latency_budget(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value <= LATENCY_BUDGET_MAX:
            raise ValueError(
                'use a duration above 0 and at most 60s, such as "100ms" or "1s" '
                "(leave it out for 100 ms local, 400 ms remote)"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' or '-' (it names state rows)")
        return value

    @field_validator(
        "source", "password_file", "identity_file", "known_hosts", "stream_identity_file"
    )
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir") if info.context else None
        if value is not None and not value.is_absolute() and base is not None:
            return Path(base) / value
        return value

    @model_validator(mode="before")
    @classmethod
    def _database_default(cls, data: object) -> object:
        # an archive-log replication without [replication.database] gets the PostgreSQL preset
        if isinstance(data, dict) and data.get("kind") == "archive-log":
            data.setdefault("database", {})
        return data

    @model_validator(mode="after")
    def _database_fits(self) -> ReplicationConfig:
        if self.kind != "archive-log" and self.database is not None:
            raise ValueError('[replication.database] is for kind = "archive-log"')
        return self

    @model_validator(mode="after")
    def _target_fits(self) -> ReplicationConfig:
        try:
            target = parse_target(self.target)
        except TargetError as exc:
            raise ValueError(f"target: {exc}") from None
        if not isinstance(target, RsyncdTarget) and self.password_file is not None:
            raise ValueError("password_file is only for rsync:// targets")
        if not isinstance(target, SshTarget) and (
            self.identity_file or self.known_hosts or self.ssh_port or self.stream_identity_file
        ):
            raise ValueError(
                "identity_file, known_hosts, ssh_port and stream_identity_file are only for "
                "ssh targets"
            )
        if self.stream_identity_file is not None and (
            self.stream_identity_file == self.identity_file
            or (
                self.identity_file is not None
                and _same_file(self.stream_identity_file, self.identity_file)
            )
        ):
            raise ValueError(
                "stream_identity_file is the rsync key (identity_file): the stream needs a "
                "key of its own, whose forced command is `sentinel receive DIR` "
                '(docs/transport.md, "The stream road")'
            )
        if isinstance(target, LocalTarget) and Path(self.target).resolve().is_relative_to(
            self.source.resolve()
        ):
            raise ValueError("the target must not be inside the source")
        key = self.keeper.history_identity_file if self.keeper else None
        if (
            key is not None
            and self.identity_file is not None
            and (key == self.identity_file or _same_file(key, self.identity_file))
        ):
            raise ValueError(
                "keeper.history_identity_file is the replication's write key "
                "(identity_file): the drill needs its own read-only key, and the "
                'write key stays write-only (docs/keeper.md, "The drill key")'
            )
        return self


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def target_place(target: Target, ssh_port: int | None = None) -> tuple[str, tuple[str, ...]]:
    """Where a target is, as (host, path components), comparable between replications: a
    local path resolved (symlinks, ".."), a remote host lower-cased with its port, the
    rsyncd module and path, an ssh path (a home-relative one under the login's name)."""
    if isinstance(target, LocalTarget):
        return "", Path(target.url).resolve().parts
    if isinstance(target, RsyncdTarget):
        m = re.match(r"^rsync://(?:[^@/]+@)?([^:/]+)(?::(\d+))?/(.*)$", target.url)
        assert m is not None  # parse_target matched it
        host, port, path = m.group(1), m.group(2) or "873", m.group(3)
        return f"rsync://{host.lower()}:{port}", _parts(path)
    login, _, path = target.url.partition(":")
    user, _, host = login.rpartition("@")
    place = f"ssh://{host.lower()}:{ssh_port or 22}"
    if path.startswith("/"):
        return place, _parts(path)
    return place, (f"~{user}", *_parts(path))  # relative to the login's home


def _parts(path: str) -> tuple[str, ...]:
    norm = posixpath.normpath("/" + path)
    return tuple(p for p in norm.split("/") if p)


def targets_apart(replications: list[ReplicationConfig]) -> None:
    """Two replications on one target (or one inside the other's) delete each other's files
    at every full pass, and share one marker that then proves nothing: refused."""
    places = []
    for r in replications:
        try:
            places.append((r, target_place(parse_target(r.target), r.ssh_port)))
        except TargetError:
            continue  # already reported on the entry itself
    for i, (a, (host_a, parts_a)) in enumerate(places):
        for b, (host_b, parts_b) in places[i + 1 :]:
            n = min(len(parts_a), len(parts_b))
            if host_a == host_b and parts_a[:n] == parts_b[:n]:
                how = "the same target" if parts_a == parts_b else "nested targets"
                raise ValueError(
                    f"replication {a.name!r} (target {a.target}) and replication {b.name!r} "
                    f"(target {b.target}) have {how}: a full pass of one would delete the "
                    "other's replica; give each replication a target of its own"
                )


def stream_keys_apart(replications: list[ReplicationConfig]) -> None:
    """A stream key's forced command names one directory on the backup host: two
    replications with one key would write into one replica (docs/transport.md)."""
    seen: dict[Path, str] = {}
    for r in replications:
        key = r.stream_identity_file
        if key is None:
            continue
        other = next((name for k, name in seen.items() if k == key or _same_file(k, key)), None)
        if other is not None:
            raise ValueError(
                f"replication {r.name!r} and replication {other!r} have the same "
                f"stream_identity_file ({key}): its forced command names one directory on "
                "the backup host, so each replication needs a stream key of its own"
            )
        seen[key] = r.name
