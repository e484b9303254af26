"""Config for a replication of kind "archive-log" ([replication.database]): a database's
closed logs (PostgreSQL WAL segments, Oracle or Tibero archive logs) shipped as they close,
their sequence watched for gaps, the data RPO they give, a log switch when the database is
quiet, the base backup's age, and the drill that opens the database (issue 16).

```toml
[[replication]]
name = "onnara-db"
kind = "archive-log"
source = "/var/lib/postgresql/wal-archive"      # where archive_command puts closed logs
target = "backup@health-center:/srv/replica/onnara-db"
[replication.database]
preset = "postgresql"                # postgresql | oracle | tibero, or pattern = "<regex>"
switch_command = "psql -qAtc 'select pg_switch_wal()'"
switch_after = "5m"                  # no log closed for this long: run switch_command
base_backup_dir = "/srv/basebackup"  # or base_backup_command = "<prints its time>"
base_backup_max_age = "8d"
[replication.database.drill]         # `sentinel backup drill --database`
check_query = "select count(*) from approval_document"
```
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sentinel.config.types import ConfigPath, Duration, Model


class DatabaseDrillConfig(Model):
    """`sentinel backup drill --database`: restore the newest base backup and the shipped
    logs into a scratch directory, open the database up to a target time, run a check.

    PostgreSQL is driven by sentinel itself (`pg_bin`); Oracle and Tibero run the
    configured commands (docs/database.md), each with `{scratch}`, `{target_time}` and
    `{logs}` filled in."""

    pg_bin: ConfigPath = "/usr/lib/postgresql/15/bin"  # type: ignore[assignment]
    check_query: str = "select 1"
    # the check query runs in this database, as this role (over the drill's own socket,
    # trusted: the throwaway server listens on nothing else)
    database: str = "postgres"
    user: str = "postgres"
    scratch_dir: ConfigPath | None = None  # default: a temporary directory, removed after
    timeout: Duration = Field(3600.0, gt=0)
    # status warns (and pages) when the last successful drill is older than this
    max_age: Duration = Field(30 * 86400.0, gt=0)
    # Oracle / Tibero: shell commands run in order (restore, recover up to the target, check)
    restore_command: str | None = None
    recover_command: str | None = None
    check_command: str | None = None


class DatabaseConfig(Model):
    """[replication.database]: how this archive-log replication knows its database."""

    preset: Literal["postgresql", "oracle", "tibero"] | None = "postgresql"
    # a regex over the file name with a named group `seq` (and `thread` when the database
    # has several redo threads); wins over the preset's
    pattern: str | None = None
    switch_command: str | None = None
    switch_after: Duration = Field(300.0, gt=0)
    switch_timeout: Duration = Field(60.0, gt=0)
    base_backup_dir: ConfigPath | None = None
    base_backup_command: str | None = None
    base_backup_max_age: Duration = Field(8 * 86400.0, gt=0)
    drill: DatabaseDrillConfig | None = None

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"pattern is not a regular expression: {exc}") from None
        if "seq" not in compiled.groupindex:
            raise ValueError("pattern needs a named group (?P<seq>...) for the log sequence")
        return value

    @model_validator(mode="after")
    def _check(self) -> DatabaseConfig:
        if self.preset is None and self.pattern is None:
            raise ValueError("give a preset (postgresql, oracle, tibero) or a pattern")
        if self.base_backup_dir is not None and self.base_backup_command is not None:
            raise ValueError("give base_backup_dir or base_backup_command, not both")
        return self
