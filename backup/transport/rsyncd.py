"""A replica in an rsync daemon module: `rsync://user@host[:port]/module[/path]`, logged in
with a password file (never a password in the URL)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

from backup.password_file import PasswordFileCheck
from backup.target import Target, TargetError, TransportOptions

_RSYNCD = re.compile(
    r"^rsync://(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+)(?::(?P<port>\d+))?/(?P<path>.+)$"
)


@dataclass(frozen=True, slots=True)
class RsyncdTarget(Target):
    """`rsync://user@host[:port]/module[/path]`; `url` carries the user and port, never the
    password: that stays in `password_file`."""

    kind: ClassVar[str] = "rsyncd"

    url: str
    password_file: Path | None = None
    contimeout: int = 10
    # rsync would refuse a password file others may read and fail every transfer with exit
    # 5: checked when built, and again when the file changes, to say why and what to run
    _password_check: PasswordFileCheck | None = field(
        init=False, default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.password_file is not None:
            object.__setattr__(self, "_password_check", PasswordFileCheck(self.password_file))

    @classmethod
    def parse(cls, address: str, options: TransportOptions) -> Self:
        m = _RSYNCD.match(address)
        if not m:
            raise TargetError(f"expected rsync://user@host[:port]/module[/path], found {address!r}")
        if ":" in (m.group("user") or ""):
            raise TargetError("put the rsync daemon password in password_file, not in the URL")
        return cls(
            address.rstrip("/"), password_file=options.password_file, contimeout=options.contimeout
        )

    @property
    def host(self) -> str:
        m = _RSYNCD.match(self.url)
        assert m is not None  # parse() matched it
        return m.group("host")

    def transport_args(self, runtime_dir: Path) -> list[str]:
        args = [f"--contimeout={self.contimeout}"]
        if self._password_check is not None:
            problem = self._password_check.problem()
            if problem is not None:
                raise TargetError(problem)
            args.append(f"--password-file={self.password_file}")
        return args

    @property
    def options(self) -> TransportOptions:
        return TransportOptions(password_file=self.password_file, contimeout=self.contimeout)
