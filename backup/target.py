"""Where a source is replicated to, and how rsync reaches it (local path, rsync daemon, ssh,
or an rsync daemon module over ssh)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from backup.control_socket import control_path
from backup.password_file import password_file_problem

# Kept versions live under the replica root; excluded from shipping, compare and restore.
VERSIONS_DIR = ".sentinel-versions"
PARTIAL_DIR = ".rsync-partial"

_RSYNCD = re.compile(
    r"^rsync://(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+)(?::(?P<port>\d+))?/(?P<path>.+)$"
)
# An empty path after the colon is the login's home directory, or, for a key restricted
# with `rrsync DIR` (docs/install.md), DIR itself.
_SSH = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^:/]+):(?P<path>.*)$")
# rsync(1) "USING RSYNC-DAEMON FEATURES VIA A REMOTE-SHELL CONNECTION": ssh starts
# `rsync --server --daemon`, which a forced command on the keeper host pins to its config
# (systemd/keeper-authorized_keys.example); the module then decides what may be written.
_SSH_DAEMON = re.compile(
    r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^:/]+)::(?P<module>[^/:]+)(?P<path>(?:/.*)?)$"
)


class TargetError(ValueError):
    """A target that cannot be used (bad URL, password file readable by others...)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A replica location. `kind` is "local", "rsyncd" or "ssh".

    `url` is the rsync destination without a trailing slash (for rsyncd it carries the user
    and port, never the password: that stays in `password_file`). An ssh target is either
    `user@host:path` (a shell login, or an rrsync key) or `user@host::module[/path]` (an
    rsync daemon module reached over ssh, `daemon_over_ssh`): both take the same ssh options.
    """

    kind: str
    url: str
    password_file: Path | None = None
    ssh_port: int | None = None
    identity_file: Path | None = None
    known_hosts: Path | None = None
    strict_host_key_checking: str = "yes"  # ssh's yes | accept-new | no
    contimeout: int = 10

    @property
    def daemon_over_ssh(self) -> bool:
        """`user@host::module[/path]`: an rsync daemon module reached over ssh."""
        return self.kind == "ssh" and _SSH_DAEMON.match(self.url) is not None

    def path(self, sub: str = "") -> str:
        """The rsync address of `sub` (relative) inside the replica; "" is the root."""
        sub = sub.strip("/")
        if self.url.endswith(":"):  # ssh with an empty path: "host:/x" would be the host's /x
            return f"{self.url}{sub}"
        return f"{self.url}/{sub}" if sub else f"{self.url}/"

    def exact_mtime_args(self, *, push: bool) -> list[str]:
        """Nanosecond mtimes for rsync's quick check: with whole seconds a same-size rewrite
        within one second looks unchanged and is never shipped. The receiver compares, so in
        a push to a remote the option must reach the remote rsync. rsync forwards a negative
        --modify-window as `-@-1`, which rrsync refuses (it takes -@ with digits only), so it
        goes as a remote option in its long form, which rrsync and rsyncd (also over ssh)
        accept."""
        if push and self.kind != "local":
            return ["--remote-option=--modify-window=-1"]
        return ["--modify-window=-1"]

    def transport_args(self, runtime_dir: Path) -> list[str]:
        """rsync options that reach this target (ssh command line, password file...)."""
        if self.kind == "rsyncd":
            args = [f"--contimeout={self.contimeout}"]
            if self.password_file is not None:
                check_password_file(self.password_file)
                args.append(f"--password-file={self.password_file}")
            return args
        if self.kind == "ssh":
            return ["-e", shlex.join(self.ssh_command(runtime_dir))]
        return []

    def ssh_command(self, runtime_dir: Path) -> list[str]:
        """ssh with host key checking and a persistent ControlMaster connection."""
        cmd = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes"]
        if self.ssh_port is not None:
            cmd += ["-p", str(self.ssh_port)]
        if self.identity_file is not None:
            cmd += ["-i", str(self.identity_file), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts is not None:
            cmd += [
                "-o",
                f"UserKnownHostsFile={self.known_hosts}",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
            ]
        cmd += ["-o", f"StrictHostKeyChecking={self.strict_host_key_checking}"]
        cmd += [
            "-o",
            f"ConnectTimeout={self.contimeout}",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={control_path(runtime_dir)}",
            "-o",
            "ControlPersist=60",
            "-o",
            "ServerAliveInterval=15",
        ]
        return cmd

    def describe(self) -> str:
        """For logs and status: the address without secrets."""
        return self.url

    @property
    def local_root(self) -> Path | None:
        return Path(self.url) if self.kind == "local" else None


def parse_target(
    address: str,
    *,
    password_file: Path | None = None,
    ssh_port: int | None = None,
    identity_file: Path | None = None,
    known_hosts: Path | None = None,
    strict_host_key_checking: str | bool = "yes",
    contimeout: int = 10,
) -> Target:
    """`/mnt/backup`, `rsync://user@host[:port]/module/path`, `user@host:/path`,
    `user@host:` (the login's home, or the directory of an `rrsync DIR` key) or
    `user@host::module[/path]` (an rsync daemon module over ssh, docs/keeper.md)."""
    address = address.strip()
    if not address:
        raise TargetError("target is empty")
    if address.startswith("rsync://"):
        m = _RSYNCD.match(address)
        if not m:
            raise TargetError(f"expected rsync://user@host[:port]/module[/path], found {address!r}")
        if ":" in (m.group("user") or ""):
            raise TargetError("put the rsync daemon password in password_file, not in the URL")
        return Target(
            "rsyncd", address.rstrip("/"), password_file=password_file, contimeout=contimeout
        )
    if address.startswith("/"):
        return Target("local", address.rstrip("/") or "/")
    if "::" in address:
        m = _SSH_DAEMON.match(address)
        if not m:
            raise TargetError(
                f"expected user@host::module[/path] (an rsync daemon module over ssh), "
                f"found {address!r}"
            )
        if password_file is not None:
            raise TargetError("a host::module target logs in with its ssh key: no password_file")
        module_path = m.group("path").rstrip("/")
        url = f"{address[: m.start('path')]}{module_path}"
        return _ssh_target(
            url, ssh_port, identity_file, known_hosts, strict_host_key_checking, contimeout
        )
    m = _SSH.match(address)
    if m:
        path = m.group("path")
        # "host:/" is the host's root, "host:" the login's home: keep them apart
        url = address[: len(address) - len(path)] + (path.rstrip("/") or path[:1])
        return _ssh_target(
            url, ssh_port, identity_file, known_hosts, strict_host_key_checking, contimeout
        )
    raise TargetError(
        f"expected an absolute path, rsync://user@host/module/path, user@host:/path, "
        f"user@host: or user@host::module, "
        f"found {address!r}"
    )


def rsyncd_host(url: str) -> str:
    """The host part of an `rsync://` address (`parse_target` has already accepted it)."""
    m = _RSYNCD.match(url)
    if m is None:
        raise TargetError(f"not an rsync:// address: {url!r}")
    return m.group("host")


def _ssh_target(
    url: str,
    ssh_port: int | None,
    identity_file: Path | None,
    known_hosts: Path | None,
    strict_host_key_checking: str | bool,
    contimeout: int,
) -> Target:
    return Target(
        "ssh",
        url,
        ssh_port=ssh_port,
        identity_file=identity_file,
        known_hosts=known_hosts,
        strict_host_key_checking=_host_key_checking(strict_host_key_checking),
        contimeout=contimeout,
    )


def _host_key_checking(value: str | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value not in ("yes", "accept-new", "no"):
        raise TargetError(f"strict_host_key_checking: use yes, accept-new or no, found {value!r}")
    return value


def check_password_file(path: Path) -> None:
    """rsync's own password file rule (see backup/password_file.py), before rsync says it."""
    problem = password_file_problem(path)
    if problem is not None:
        raise TargetError(problem)
