"""The systemd units the reports describe: the installed one when present, else the one
shipped in systemd/ (what install.sh would install)."""

from __future__ import annotations

from pathlib import Path

# the repository's systemd/ directory; install.sh copies its examples to share/examples
_REPO = Path(__file__).resolve().parents[2] / "systemd"
SHIPPED = _REPO if _REPO.is_dir() else Path("/opt/sentinel/share/examples")
INSTALLED = (
    Path("/etc/systemd/system"),
    Path("/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
)


def unit_file(role: str) -> Path | None:
    """`role`.service as installed, else as shipped (None: neither)."""
    for base in (*INSTALLED, SHIPPED):
        path = base / f"{role}.service"
        if path.is_file():
            return path
    return None


def installed(path: Path) -> bool:
    return path.parent != SHIPPED


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Each [Service] setting's values in order (a setting may repeat), drop-ins
    (`<unit>.d/*.conf`, `systemctl edit`) applied after the unit, as systemd does: an empty
    assignment resets the list."""
    out: dict[str, list[str]] = {}
    dropins = path.with_name(path.name + ".d")
    files = [path, *sorted(dropins.glob("*.conf"))] if dropins.is_dir() else [path]
    for file in files:
        try:
            text = file.read_text()
        except OSError:
            continue
        section = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if section != "Service" or "=" not in line:
                continue
            key, _, value = line.partition("=")
            value = value.strip()
            if not value:
                out[key.strip()] = [""]
            else:
                values = out.setdefault(key.strip(), [])
                if values == [""]:
                    values.clear()
                values.append(value)
    return out
