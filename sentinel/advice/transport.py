"""check-config's warnings about how replicated records cross the network.

The rsync daemon protocol (`rsync://host/module`) authenticates with a challenge-response
but encrypts nothing: every record shipped is readable and alterable on the path, and a
captured login can be guessed offline. ssh targets (`user@host:path`, and `user@host::module`,
which sentinel always runs over ssh with `-e`) are encrypted. A daemon wrapped in TLS is
reached through a local stunnel client, so its target names a loopback address: that is how
a config says "this rsync:// is wrapped" (docs/transport.md), and it is not warned about."""

from __future__ import annotations

from backup.target import TargetError
from backup.transport import RsyncdTarget, parse_target
from sentinel.advice.loopback import is_loopback
from sentinel.config import Config

_FIX = (
    "use an ssh target (user@host: with rrsync, or user@host::module), or wrap the "
    "daemon in stunnel and point the target at the local stunnel client, "
    "rsync://user@127.0.0.1:PORT/module (docs/transport.md)"
)


def transport_advice(config: Config) -> list[str]:
    advice = []
    for rc in config.replication:
        host = cleartext_host(rc.target)
        if host is not None:
            advice.append(
                f"replication {rc.name!r}: target {rc.target} is a plain rsync daemon on "
                f"{host}: the official records it ships cross the network unencrypted, "
                "readable and alterable by anyone on the path, and its password login can "
                f"be captured and guessed offline; {_FIX}"
            )
        # The history (backup drill) is not checked: its validator admits only a local
        # path or user@host::module, both of which stay off the clear-text daemon protocol.
        receipt = rc.keeper.receipt if rc.keeper else None
        host = cleartext_host(receipt) if receipt else None
        if host is not None:
            advice.append(
                f"replication {rc.name!r}: keeper receipt {receipt} is read from a plain "
                f"rsync daemon on {host}: anyone on the path can forge the keeper's "
                '"data safe as of" answer, and the password login can be captured and '
                f"guessed offline; {_FIX}"
            )
    return advice


def cleartext_host(address: str) -> str | None:
    """The host `address` reaches over the rsync daemon's unencrypted protocol, or None
    when it is a local path, goes over ssh, or stays on this host (loopback: a local
    stunnel client, or a daemon on this machine)."""
    try:
        target = parse_target(address)
    except TargetError:
        return None  # check-config refuses it on its own
    if not isinstance(target, RsyncdTarget):
        return None
    host = target.host
    return None if is_loopback(host) else host
