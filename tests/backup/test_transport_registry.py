"""backup.transport: one class per transport, picked by URL scheme, and the rsync password
file checked when the target is built and again only when the file changes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

import pytest

import backup.password_file
from backup.target import Target, TargetError, TransportOptions
from backup.transport import SCHEMES, LocalTarget, RsyncdTarget, SshTarget, parse_target


@dataclass(frozen=True, slots=True)
class _BucketTarget(Target):
    kind: ClassVar[str] = "bucket"

    url: str

    @classmethod
    def parse(cls, address: str, options: TransportOptions) -> Self:
        return cls(address.rstrip("/"))

    def transport_args(self, runtime_dir: Path) -> list[str]:
        return []

    @property
    def options(self) -> TransportOptions:
        return TransportOptions()


def test_each_form_gets_its_own_transport() -> None:
    assert isinstance(parse_target("/mnt/backup"), LocalTarget)
    assert isinstance(parse_target("rsync://u@h/module"), RsyncdTarget)
    assert isinstance(parse_target("u@h:"), SshTarget)
    assert isinstance(parse_target("u@h::module"), SshTarget)


def test_a_new_transport_plugs_in_by_its_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    # unregistered, rsync reads "s3://b" as host "s3", path "//b": so does sentinel
    assert isinstance(parse_target("s3://bucket/docs"), SshTarget)
    monkeypatch.setitem(SCHEMES, "s3", _BucketTarget)
    target = parse_target("s3://bucket/docs/")
    assert target == _BucketTarget("s3://bucket/docs")
    assert target.path("a") == "s3://bucket/docs/a"


def test_a_sibling_address_is_reached_with_the_same_options(tmp_path: Path) -> None:
    key = tmp_path / "key"
    replica = parse_target("u@h::room", ssh_port=2222, identity_file=key, contimeout=5)
    receipt = parse_target("u@h::room/receipt.json", **_kwargs(replica.options))
    assert isinstance(receipt, SshTarget)
    assert (receipt.ssh_port, receipt.identity_file, receipt.contimeout) == (2222, key, 5)


def _kwargs(options: TransportOptions) -> dict[str, object]:
    return {f: getattr(options, f) for f in TransportOptions.__dataclass_fields__}


def test_password_file_is_checked_once_while_it_is_unchanged(
    tmp_path: Path, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = tmp_path / "rsync.password"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    checks: list[Path] = []
    real = backup.password_file.password_file_problem

    def counted(path: Path, **kw: str) -> str | None:
        checks.append(path)
        return real(path, **kw)

    monkeypatch.setattr(backup.password_file, "password_file_problem", counted)
    target = parse_target("rsync://u@h/module", password_file=password)
    assert len(checks) == 1  # when built
    for _ in range(3):
        assert f"--password-file={password}" in target.transport_args(runtime)
    assert len(checks) == 1  # unchanged since: not read again


def test_password_file_changed_after_start_is_checked_again(tmp_path: Path, runtime: Path) -> None:
    password = tmp_path / "rsync.password"
    password.write_text("s3cret\n")
    password.chmod(0o600)
    target = parse_target("rsync://u@h/module", password_file=password)
    assert f"--password-file={password}" in target.transport_args(runtime)
    password.chmod(0o644)
    with pytest.raises(TargetError, match="other users can read"):
        target.transport_args(runtime)
    password.chmod(0o600)
    assert f"--password-file={password}" in target.transport_args(runtime)
    os.unlink(password)
    with pytest.raises(TargetError, match="file not found"):
        target.transport_args(runtime)
