"""Reading sentinel.toml: parse once, validate once, and explain every mistake clearly."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sentinel.config.root import Config

DEFAULT_PATH = Path("/etc/sentinel/sentinel.toml")
ENV_VAR = "SENTINEL_CONFIG"


class ConfigError(Exception):
    """A config that cannot be used. The message is meant for a person; no traceback."""


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config wins, then $SENTINEL_CONFIG, then /etc/sentinel/sentinel.toml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return DEFAULT_PATH


def load_config(path: Path) -> Config:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        # utf-8-sig: Windows editors (Notepad) start a UTF-8 file with a byte-order mark
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return validate_config(data, path)


def validate_config(data: dict[str, Any], path: Path) -> Config:
    base = path.parent
    try:
        config = Config.model_validate(data, context={"base_dir": base})
    except ValidationError as exc:
        lines = [_describe(err) for err in exc.errors(include_url=False)]
        noun = "error" if len(lines) == 1 else "errors"
        raise ConfigError(f"{path}: {len(lines)} {noun}\n" + "\n".join(lines)) from None
    return _resolve_relative(config, base)


def _resolve_relative(config: Config, base: Path) -> Config:
    """Relative file paths in the config are relative to the config file, not the cwd."""
    apprise = config.alerts.apprise_config
    if apprise is not None and not apprise.is_absolute():
        alerts = config.alerts.model_copy(update={"apprise_config": base / apprise})
        config = config.model_copy(update={"alerts": alerts})
    web = config.web
    if web is not None:
        paths = {
            key: base / value
            for key in ("users_file", "tls_cert", "tls_key")
            if isinstance(value := getattr(web, key), Path) and not value.is_absolute()
        }
        if paths:
            config = config.model_copy(update={"web": web.model_copy(update=paths)})
    return config


def key_path(loc: tuple[str | int, ...]) -> str:
    """('sensors', 2, 'max_age') -> 'sensors[2].max_age'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(err: Any) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p and "]" in p))
    where = key_path(loc)
    found = err.get("input")
    if err["type"] == "extra_forbidden":
        return f"  {where}: unknown key (typo?); found {_show(found)}"
    if err["type"] == "missing":
        return f"  {where}: required key is missing"
    message = _TYPE_MESSAGES.get(err["type"]) or str(err["msg"]).removeprefix("Value error, ")
    if isinstance(found, str) and err["type"] in _QUOTED:
        message += " (write it without quotes)"
    if not loc:  # a check across sections: its message names the keys itself
        return f"  {message}"
    if "found" in message:
        return f"  {where}: {message}"
    return f"  {where}: {message}; found {_show(found)}"


# Pydantic's wording for strict types, said the way an admin editing TOML needs to read it.
_TYPE_MESSAGES = {
    "int_type": "expected a whole number",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "finite_number": "expected a finite number (nan and inf are not allowed)",
    "string_type": "expected a string in quotes",
}
_QUOTED = ("int_type", "float_type", "bool_type")


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
