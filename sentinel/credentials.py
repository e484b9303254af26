"""Which of the config's files hold credentials, and which secrets logs must never show.

The daemon refuses to start while any credential file is open to other users, and masks
every secret it knows of in every log line (sentinel/secrets.py does the masking).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from sentinel.config import Config
from sentinel.secrets import SecretMaskingFilter, check_credential_files, install_masking, urls_in

log = logging.getLogger("sentinel.credentials")


def credential_files(config: Config, config_path: Path | None) -> list[tuple[Path, str]]:
    files: list[tuple[Path, str]] = []
    if config_path is not None and config.mqtt is not None and config.mqtt.password is not None:
        files.append((config_path, "sentinel config holding the MQTT password"))
    if config.mqtt is not None and config.mqtt.key_file is not None:
        files.append((config.mqtt.key_file, "MQTT TLS client key"))
    if config.alerts.apprise_config is not None:
        files.append((config.alerts.apprise_config, "Apprise channels (URLs hold tokens)"))
    for rep in config.replication:
        if rep.password_file is not None:
            files.append((rep.password_file, f"rsync password for replication {rep.name!r}"))
        if rep.identity_file is not None:
            files.append((rep.identity_file, f"ssh key for replication {rep.name!r}"))
    return files


def credential_problems(config: Config, config_path: Path | None = None) -> list[str]:
    return check_credential_files(credential_files(config, config_path))


def known_secrets(config: Config) -> list[str]:
    """Every secret string the config leads to: passwords, Apprise URLs, rsync passwords."""
    secrets: list[str] = []
    if config.mqtt is not None and config.mqtt.password is not None:
        secrets.append(config.mqtt.password.get_secret_value())
    apprise = config.alerts.apprise_config
    if apprise is not None:
        # an unreadable file is reported by the permission check and by delivery
        with contextlib.suppress(OSError):
            secrets += urls_in(apprise.read_text(encoding="utf-8"))
    for rep in config.replication:
        if rep.password_file is not None:
            with contextlib.suppress(OSError):
                secrets += [line.strip() for line in rep.password_file.read_text().splitlines()]
    return [s for s in secrets if s]


def install_log_masking(config: Config) -> SecretMaskingFilter:
    """Masks the config's secrets, and anything shaped like a URL credential, in all logs."""
    return install_masking(known_secrets(config))
