"""Whether a configured host name stays on this machine, for the warnings about cleartext
traffic (the broker, the rsync daemon)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`. Any other name, `*.localhost` included, is not: glibc
    resolves those through /etc/hosts and DNS like any name (it has no RFC 6761 rule), so
    `keeper.localhost` can point at the LAN. check-config must not depend on the resolver
    either: a name is judged as written, not by what it resolves to today."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
