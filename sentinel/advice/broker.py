"""check-config's warnings about the MQTT broker connection.

A broker sentinel reaches without a login is one every other client on that network can
write to: a forged {"water_leak": false} clears a leak alarm, a forged availability fakes a
sensor's state. On loopback only local processes can connect, so no warning there.
"""

from __future__ import annotations

from sentinel.advice.loopback import is_loopback
from sentinel.config import Config

DOC = "docs/mqtt-broker.md"


def broker_advice(config: Config) -> list[str]:
    mqtt = config.mqtt
    if mqtt is None or is_loopback(mqtt.host):
        return []
    where = f"[mqtt] host {mqtt.host!r} is not this machine"
    if not mqtt.tls and mqtt.username is None:
        return [
            f"{where} and sentinel connects with neither TLS nor a login: the broker "
            "accepts anonymous clients, so anyone on that network can forge sensor readings "
            'or clear an alarm (a fake {"water_leak": false}). Give each client an account '
            f"and an ACL, and use TLS off this host: see {DOC}"
        ]
    if not mqtt.tls:
        return [
            f"{where} and tls is off: the MQTT password of {mqtt.username!r} crosses the "
            "network in the clear, and whoever reads it can forge sensor readings or clear "
            f"an alarm. Set tls = true (the broker's TLS listener, {DOC})"
        ]
    if mqtt.username is None and mqtt.cert_file is None:
        return [
            f"{where} and sentinel logs in with neither a username nor a client certificate: "
            "the broker accepts anonymous clients, and TLS hides the traffic but does not "
            "stop anyone from forging sensor readings or clearing an alarm. Give sentinel "
            f"and each gateway an account and an ACL: see {DOC}"
        ]
    return []
