"""A replica location: the interface every transport implements (local path, rsync daemon,
ssh), and the names kept inside a replica root. `backup.transport.parse_target` turns an
address into the right one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

# Kept versions live under the replica root; excluded from shipping, compare and restore.
VERSIONS_DIR = ".sentinel-versions"
PARTIAL_DIR = ".rsync-partial"


class TargetError(ValueError):
    """A target that cannot be used (bad URL, password file readable by others...)."""


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How to reach an address, as configured. Each transport takes the options it uses and
    ignores the rest, so one set can reach a sibling address (the keeper's receipt, its
    history) the way the replica is reached."""

    password_file: Path | None = None
    ssh_port: int | None = None
    identity_file: Path | None = None
    known_hosts: Path | None = None
    strict_host_key_checking: str | bool = "yes"  # ssh's yes | accept-new | no
    contimeout: int = 10
    # ssh only: the key whose forced command is `sentinel receive DIR` (the stream road,
    # backup/stream.py); None: every batch is an rsync run
    stream_identity_file: Path | None = None


class Target(ABC):
    """Where a source is replicated to, and how rsync reaches it.

    A transport is one subclass in one module of `backup/transport/`, registered in
    `backup.transport.SCHEMES` by its URL scheme (local paths and ssh's `host:path` are
    rsync's own scheme-less forms). `url` is the rsync destination without a trailing slash,
    never holding a secret.
    """

    __slots__ = ()

    # A label for logs and tests; code asks `remote`, `local_root` or isinstance instead.
    kind: ClassVar[str]
    # Whether rsync runs a second, remote process for it (options then have to reach it).
    remote: ClassVar[bool] = True

    # Declared here, a field of each subclass.
    url: str

    @classmethod
    @abstractmethod
    def parse(cls, address: str, options: TransportOptions) -> Self:
        """The target `address` names (stripped, not empty), or TargetError."""

    @abstractmethod
    def transport_args(self, runtime_dir: Path) -> list[str]:
        """rsync options that reach this target (ssh command line, password file...)."""

    @property
    @abstractmethod
    def options(self) -> TransportOptions:
        """The options this target was built with that it uses (the rest at their
        defaults): what a sibling address on the same host is reached with."""

    def path(self, sub: str = "") -> str:
        """The rsync address of `sub` (relative) inside the replica; "" is the root."""
        sub = sub.strip("/")
        return f"{self.url}/{sub}" if sub else f"{self.url}/"

    def exact_mtime_args(self, *, push: bool) -> list[str]:
        """Nanosecond mtimes for rsync's quick check: with whole seconds a same-size rewrite
        within one second looks unchanged and is never shipped. The receiver compares, so in
        a push to a remote the option must reach the remote rsync. rsync forwards a negative
        --modify-window as `-@-1`, which rrsync refuses (it takes -@ with digits only), so it
        goes as a remote option in its long form, which rrsync and rsyncd (also over ssh)
        accept."""
        if push and self.remote:
            return ["--remote-option=--modify-window=-1"]
        return ["--modify-window=-1"]

    def describe(self) -> str:
        """For logs and status: the address without secrets."""
        return self.url

    @property
    def local_root(self) -> Path | None:
        """The replica root as a local directory, when it is one."""
        return None
