"""A replica on a local path (a mounted disk, an NFS mount): rsync with no transport."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

from backup.target import Target, TransportOptions


@dataclass(frozen=True, slots=True)
class LocalTarget(Target):
    """`/mnt/backup`: an absolute path."""

    kind: ClassVar[str] = "local"
    remote: ClassVar[bool] = False

    url: str

    @classmethod
    def parse(cls, address: str, options: TransportOptions) -> Self:
        return cls(address.rstrip("/") or "/")

    def transport_args(self, runtime_dir: Path) -> list[str]:
        return []

    @property
    def options(self) -> TransportOptions:
        return TransportOptions()

    @property
    def local_root(self) -> Path:
        return Path(self.url)
