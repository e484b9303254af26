"""A replica reached over ssh: `user@host:path` (a shell login, or an `rrsync` key) or
`user@host::module[/path]` (an rsync daemon module over ssh)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

from backup.control_socket import control_path
from backup.target import Target, TargetError, TransportOptions

# An empty path after the colon is the login's home directory, or, for a key restricted
# with `rrsync DIR` (docs/install.md), DIR itself.
_SSH = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^:/]+):(?P<path>.*)$")
# rsync(1) "USING RSYNC-DAEMON FEATURES VIA A REMOTE-SHELL CONNECTION": ssh starts
# `rsync --server --daemon`, which a forced command on the keeper host pins to its config
# (systemd/keeper-authorized_keys.example); the module then decides what may be written.
STREAM_CIPHERS = (
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,"
    "aes128-ctr,aes192-ctr,aes256-ctr"
)
_SSH_DAEMON = re.compile(
    r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^:/]+)::(?P<module>[^/:]+)(?P<path>(?:/.*)?)$"
)


@dataclass(frozen=True, slots=True)
class SshTarget(Target):
    """Both forms take the same ssh options: host key checking against `known_hosts`, a
    key of its own, and one persistent ControlMaster connection per host."""

    kind: ClassVar[str] = "ssh"

    url: str
    ssh_port: int | None = None
    identity_file: Path | None = None
    known_hosts: Path | None = None
    strict_host_key_checking: str = "yes"  # ssh's yes | accept-new | no
    contimeout: int = 10
    stream_identity_file: Path | None = None

    @classmethod
    def parse(cls, address: str, options: TransportOptions) -> Self:
        if "::" in address:
            m = _SSH_DAEMON.match(address)
            if not m:
                raise TargetError(
                    f"expected user@host::module[/path] (an rsync daemon module over ssh), "
                    f"found {address!r}"
                )
            if options.password_file is not None:
                raise TargetError(
                    "a host::module target logs in with its ssh key: no password_file"
                )
            url = f"{address[: m.start('path')]}{m.group('path').rstrip('/')}"
            return cls._with(url, options)
        m = _SSH.match(address)
        if m:
            path = m.group("path")
            # "host:/" is the host's root, "host:" the login's home: keep them apart
            url = address[: len(address) - len(path)] + (path.rstrip("/") or path[:1])
            return cls._with(url, options)
        raise TargetError(
            f"expected an absolute path, rsync://user@host/module/path, user@host:/path, "
            f"user@host: or user@host::module, "
            f"found {address!r}"
        )

    @classmethod
    def _with(cls, url: str, options: TransportOptions) -> Self:
        return cls(
            url,
            ssh_port=options.ssh_port,
            identity_file=options.identity_file,
            known_hosts=options.known_hosts,
            strict_host_key_checking=_host_key_checking(options.strict_host_key_checking),
            contimeout=options.contimeout,
            stream_identity_file=options.stream_identity_file,
        )

    @property
    def daemon_over_ssh(self) -> bool:
        """`user@host::module[/path]`: an rsync daemon module reached over ssh."""
        return _SSH_DAEMON.match(self.url) is not None

    def path(self, sub: str = "") -> str:
        sub = sub.strip("/")
        if self.url.endswith(":"):  # an empty path: "host:/x" would be the host's /x
            return f"{self.url}{sub}"
        return f"{self.url}/{sub}" if sub else f"{self.url}/"

    def transport_args(self, runtime_dir: Path) -> list[str]:
        return ["-e", shlex.join(self.ssh_command(runtime_dir))]

    def ssh_command(self, runtime_dir: Path) -> list[str]:
        """ssh with host key checking and a persistent ControlMaster connection."""
        cmd = self._ssh_base(self.identity_file)
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

    def stream_command(self) -> list[str] | None:
        """The stream road's session (backup/stream.py): its own key, whose forced command
        is `sentinel receive DIR`, and its own connection. Never the ControlMaster: a
        session multiplexed over the rsync key's connection would run that key's forced
        command."""
        if self.stream_identity_file is None:
            return None
        login = self.url.split(":", 1)[0]
        return [
            *self._ssh_base(self.stream_identity_file),
            "-o",
            f"ConnectTimeout={self.contimeout}",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            # OpenSSH's default ciphers with AES-GCM first: with AES-NI (any server CPU of
            # the last decade) it cost the session's ssh a quarter less CPU than
            # chacha20-poly1305, which is first by default (BENCHMARKS.md, issue 18)
            "-o",
            f"Ciphers={STREAM_CIPHERS}",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=3",
            "-T",
            login,
            # the forced command replaces it; without one sshd would run this name, which
            # does not exist, and the session fails with "not found" instead of writing
            # wherever a login shell lands
            "sentinel-stream-needs-a-forced-command",
        ]

    def _ssh_base(self, identity: Path | None) -> list[str]:
        cmd = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes"]
        if self.ssh_port is not None:
            cmd += ["-p", str(self.ssh_port)]
        if identity is not None:
            cmd += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
        if self.known_hosts is not None:
            cmd += [
                "-o",
                f"UserKnownHostsFile={self.known_hosts}",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
            ]
        cmd += ["-o", f"StrictHostKeyChecking={self.strict_host_key_checking}"]
        return cmd

    @property
    def options(self) -> TransportOptions:
        return TransportOptions(
            ssh_port=self.ssh_port,
            identity_file=self.identity_file,
            known_hosts=self.known_hosts,
            strict_host_key_checking=self.strict_host_key_checking,
            contimeout=self.contimeout,
        )


def _host_key_checking(value: str | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value not in ("yes", "accept-new", "no"):
        raise TargetError(f"strict_host_key_checking: use yes, accept-new or no, found {value!r}")
    return value
