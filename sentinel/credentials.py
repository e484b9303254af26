"""Which of the config's files hold credentials, and which secrets logs must never show.

The daemon refuses to start while any credential file is open to other users, and masks
every secret it knows of in every log line (sentinel/secrets.py does the masking).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from backup.password_file import password_file_problem
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
        if rep.stream_identity_file is not None:
            files.append((rep.stream_identity_file, f"stream ssh key for replication {rep.name!r}"))
    return files


def credential_problems(config: Config, config_path: Path | None = None) -> list[str]:
    problems = check_credential_files(credential_files(config, config_path))
    for rep in config.replication:
        path = rep.password_file
        # rsync has its own rule on top of ours (root must own it when rsync runs as
        # root; this user must be able to read it): without this check the daemon
        # starts and then every transfer fails
        if path is not None and not any(p.startswith(f"{path} (") for p in problems):
            problem = password_file_problem(path)
            if problem is not None:
                problems.append(f"replication {rep.name!r}: {problem}")
    return problems


def known_secrets(config: Config) -> list[str]:
    """Every secret string the config leads to: passwords, Apprise URLs, rsync passwords."""
    secrets: list[str] = []
    if config.mqtt is not None and config.mqtt.password is not None:
        secrets.append(config.mqtt.password.get_secret_value())
    secrets += [n.password.get_secret_value() for n in config.nut if n.password is not None]
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
