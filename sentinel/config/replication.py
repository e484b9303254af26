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
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from backup.target import TargetError, parse_target
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


class ReplicationConfig(Model):
    name: str
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
    guard: GuardConfig = GuardConfig()

    @field_validator("strict_host_key_checking", mode="before")
    @classmethod
    def _host_key_bool(cls, value: object) -> object:
        if isinstance(value, bool):  # the older true/false form
            return "yes" if value else "no"
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' or '-' (it names state rows)")
        return value

    @field_validator("source", "password_file", "identity_file", "known_hosts")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir") if info.context else None
        if value is not None and not value.is_absolute() and base is not None:
            return Path(base) / value
        return value

    @model_validator(mode="after")
    def _target_fits(self) -> ReplicationConfig:
        try:
            target = parse_target(self.target)
        except TargetError as exc:
            raise ValueError(f"target: {exc}") from None
        if target.kind != "rsyncd" and self.password_file is not None:
            raise ValueError("password_file is only for rsync:// targets")
        if target.kind != "ssh" and (self.identity_file or self.known_hosts or self.ssh_port):
            raise ValueError("identity_file, known_hosts and ssh_port are only for ssh targets")
        if target.kind == "local" and Path(self.target).resolve().is_relative_to(
            self.source.resolve()
        ):
            raise ValueError("the target must not be inside the source")
        return self
