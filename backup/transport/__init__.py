"""Which transport reaches an address: `parse_target` is the one entry.

A `scheme://` address goes to the transport registered for its scheme in `SCHEMES`; the
two forms rsync itself knows without a scheme are a local path (`/mnt/backup`) and ssh's
`[user@]host:path` / `host::module`, which also takes any unregistered `x://` the way rsync
does (host `x`). Adding a transport (the keeper's, an S3-compatible store) is one module
with one `Target` subclass and one line in `SCHEMES`.
"""

from __future__ import annotations

import re
from pathlib import Path

from backup.target import Target, TargetError, TransportOptions
from backup.transport.local import LocalTarget
from backup.transport.rsyncd import RsyncdTarget
from backup.transport.ssh import SshTarget

SCHEMES: dict[str, type[Target]] = {
    "rsync": RsyncdTarget,
}

_SCHEME = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://")


def parse_target(
    address: str,
    *,
    password_file: Path | None = None,
    ssh_port: int | None = None,
    identity_file: Path | None = None,
    known_hosts: Path | None = None,
    strict_host_key_checking: str | bool = "yes",
    contimeout: int = 10,
    stream_identity_file: Path | None = None,
) -> Target:
    """`/mnt/backup`, `rsync://user@host[:port]/module/path`, `user@host:/path`,
    `user@host:` (the login's home, or the directory of an `rrsync DIR` key) or
    `user@host::module[/path]` (an rsync daemon module over ssh, docs/keeper.md)."""
    options = TransportOptions(
        password_file=password_file,
        ssh_port=ssh_port,
        identity_file=identity_file,
        known_hosts=known_hosts,
        strict_host_key_checking=strict_host_key_checking,
        contimeout=contimeout,
        stream_identity_file=stream_identity_file,
    )
    return target_for(address, options)


def target_for(address: str, options: TransportOptions) -> Target:
    """`parse_target` with the options as one value (a sibling of a target is reached with
    that target's `options`)."""
    address = address.strip()
    if not address:
        raise TargetError("target is empty")
    return transport_class(address).parse(address, options)


def transport_class(address: str) -> type[Target]:
    m = _SCHEME.match(address)
    registered = SCHEMES.get(m.group("scheme")) if m else None
    if registered is not None:
        return registered
    return LocalTarget if address.startswith("/") else SshTarget


__all__ = [
    "SCHEMES",
    "LocalTarget",
    "RsyncdTarget",
    "SshTarget",
    "parse_target",
    "target_for",
    "transport_class",
]
