"""Korean SMS gateways as Apprise plugins: Aligo, NHN Cloud SMS, Solapi (CoolSMS).

Each is a full Apprise plugin class (not a `@notify` function): Apprise then prints its
URL with the secrets hidden (`url(privacy=True)`), applies its own connect/read timeouts,
and our refusal line is the service's last warning, which the sender shows as the error.
They are registered with Apprise's plugin manager, the same registry `@notify` fills.
"""

from __future__ import annotations

from apprise.exception import AppriseImproperlyConfigured
from apprise.manager_plugins import NotificationManager

from alerts.gateways.aligo import Aligo
from alerts.gateways.base import Gateway
from alerts.gateways.nhn import NhnCloudSms
from alerts.gateways.solapi import Solapi

GATEWAYS: tuple[type[Gateway], ...] = (Aligo, NhnCloudSms, Solapi)
SCHEMES = frozenset({"aligo", "nhnsms", "toastsms", "solapi", "coolsms"})


def register() -> None:
    """Adds each gateway's schemes to Apprise's registry once per process."""
    manager = NotificationManager()
    for plugin in GATEWAYS:
        if plugin.schema_name() not in manager:
            manager.add(plugin=plugin)


def refusal(url: str) -> str | None:
    """Why a gateway URL cannot be loaded (its words hold no secret), None if it can or is
    not a gateway's: Apprise only logs that it skipped the URL."""
    scheme = url.split("://", 1)[0].strip().lower()
    for plugin in GATEWAYS:
        protocol = plugin.secure_protocol
        if scheme in ((protocol,) if isinstance(protocol, str) else protocol):
            results = plugin.parse_url(url)
            if not results:
                return "the URL cannot be parsed"
            try:
                plugin(**results)
            except AppriseImproperlyConfigured as exc:
                return str(exc)
    return None
