"""Why the MQTT connection failed, in the words an operator acts on.

aiomqtt reports a refused login as "[code:135] Not authorized" and a TLS failure as
"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ... (_ssl.c:1006)"; status,
the log and a page show this text instead, naming the setting to check. No password is
ever part of it.
"""

from __future__ import annotations

import ssl
from typing import Protocol

from aiomqtt.exceptions import MqttConnectError

# MQTT 3.1.1 CONNACK codes and the MQTT 5 reason codes paho maps them to.
_BAD_LOGIN = {4, 134}
_NOT_AUTHORISED = {5, 135}


class BrokerRefused(Exception):
    """The broker refused sentinel's login or its certificate failed verification: retrying
    alone will not fix it, a person must. Raised out of the source so the supervisor counts
    it, and past `restart_alarm_count` it pages (component alarm) instead of waiting for the
    sensors' `max_age`, which for a battery leak sensor is a day."""


class BrokerSettings(Protocol):
    @property
    def username(self) -> str | None: ...
    @property
    def tls(self) -> bool: ...
    @property
    def ca_file(self) -> str | None: ...
    @property
    def cert_file(self) -> str | None: ...


def connection_failure(
    exc: BaseException, settings: BrokerSettings, *, connected: bool = False
) -> str:
    """One line: what went wrong and what to check. `exc` is what the connection raised;
    `connected`: it was up and then lost (a reset or timeout then says nothing about the
    TLS or port settings, which worked)."""
    if connected:
        return f"broker disconnected: {str(exc) or type(exc).__name__}"
    code = _code(exc)
    if code in _BAD_LOGIN or code in _NOT_AUTHORISED:
        if settings.username is None:
            return (
                "not authorised: the broker refused an anonymous login; "
                "set [mqtt] username and password (docs/mqtt-broker.md)"
            )
        return (
            f"not authorised: the broker refused the login of user {settings.username!r} "
            "(wrong password, or the account is not in the broker's password file)"
        )
    tls = _tls_error(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        reason = tls.verify_message or "not trusted"
        if "mismatch" in reason:
            return (
                f"TLS certificate verify failed: the broker's certificate is not for this "
                f"host ({reason}); [mqtt] host must be a name or address the certificate "
                "lists"
            )
        if "expired" in reason or "not yet valid" in reason:
            return (
                f"TLS certificate verify failed: the broker's certificate is outside its "
                f"validity dates ({reason}); renew it (or check this host's clock)"
            )
        trusted = f"ca_file {settings.ca_file}" if settings.ca_file else "the system CAs"
        return (
            f"TLS certificate verify failed: the broker's certificate is not signed by "
            f"{trusted} ({reason})"
        )
    if tls is not None:
        return f"TLS handshake failed: {tls.reason or tls}; check [mqtt] tls, port and ca_file"
    text = str(exc) or type(exc).__name__
    if settings.tls and isinstance(_root(exc), ConnectionResetError):
        return (
            f"TLS handshake failed: the broker closed the connection ({text}); "
            "is this port a plain (non-TLS) listener?"
        )
    if isinstance(_root(exc), TimeoutError) or "timed out" in text.lower():
        hint = (
            "if the broker asks for a client certificate, check cert_file and key_file"
            if settings.tls
            else "if this port is a TLS listener, set [mqtt] tls = true"
        )
        return f"no answer from the broker (timed out); {hint}"
    return f"broker disconnected: {text}"


def is_refusal(exc: BaseException) -> bool:
    """A refused login or an untrusted broker certificate (not a broker that is down)."""
    code = _code(exc)
    return (
        code in _BAD_LOGIN
        or code in _NOT_AUTHORISED
        or isinstance(_tls_error(exc), ssl.SSLCertVerificationError)
    )


def _code(exc: BaseException) -> int | None:
    # only the CONNACK's code is about the login; a refused subscription has codes too
    if isinstance(exc, MqttConnectError):
        rc = exc.rc
        value = getattr(rc, "value", rc)
        return value if isinstance(value, int) else None
    return None


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None or isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _root(exc: BaseException) -> BaseException:
    for _ in range(10):  # a chain is short; the bound only guards against a cycle
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc
