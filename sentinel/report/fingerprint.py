"""The config's fingerprint printed on every report and compared by status.

It is the SHA-256 of the validated config (every value after defaults, not the file's bytes:
a comment or a reordered table does not make a printed report stale) and of the Apprise
config file it names (the alert channels are in both reports). A password in the config
counts only as set or not (pydantic dumps it as stars): neither report prints it, and a
hash of it on paper would let a weak one be guessed offline."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import PurePath
from typing import Any

from pydantic_core import to_jsonable_python

from sentinel.config import Config

SHORT = 12  # what a report prints and status compares: enough to tell two configs apart


def config_hash(config: Config) -> str:
    digest = hashlib.sha256()
    dumped = json.dumps(config.model_dump(), sort_keys=True, default=_jsonable)
    digest.update(dumped.encode())
    apprise = config.alerts.apprise_config
    if apprise is not None:
        digest.update(b"\0apprise\0")
        try:
            digest.update(apprise.read_bytes())
        except OSError as exc:  # unreadable now: the hash still changes when it returns
            digest.update(f"unreadable: {exc.strerror}".encode())
    return digest.hexdigest()[:SHORT]


def _jsonable(value: Any) -> Any:
    # a relative path is as the config was named (`-c sentinel.toml` from /etc/sentinel, or
    # /etc/sentinel/sentinel.toml): the same file must give the same hash, or status calls
    # a report stale that was made from this very config
    if isinstance(value, PurePath):
        return os.path.abspath(value)
    return to_jsonable_python(value)
