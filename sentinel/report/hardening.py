"""Hardening: the unit's sandboxing directives and the exposure score measured by
`systemd-analyze security` (the installed unit when systemd runs here, else the unit file
judged offline: `--offline=true`, systemd 252 on Debian 12)."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sentinel.report.context import ReportContext
from sentinel.report.table import table
from sentinel.report.units import installed, unit_file, unit_settings

# the directives that narrow what the service can reach (systemd.exec(5))
DIRECTIVES = (
    "User",
    "Group",
    "SupplementaryGroups",
    "UMask",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "PrivateIPC",
    "DevicePolicy",
    "DeviceAllow",
    "ReadOnlyPaths",
    "ReadWritePaths",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "RestrictRealtime",
    "RestrictNamespaces",
    "ProtectClock",
    "ProtectHostname",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectProc",
    "ProcSubset",
    "RestrictAddressFamilies",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "SystemCallErrorNumber",
    "IPAddressAllow",
    "IPAddressDeny",
)
TIMEOUT = 60.0
_SCORE = re.compile(r"Overall exposure level for \S+: ([0-9.]+) (\S+)")


@dataclass(frozen=True, slots=True)
class Score:
    value: float | None  # None: not measured (see `how`)
    rating: str  # systemd's word: OK, MEDIUM, EXPOSED, UNSAFE
    how: str  # the command run, or why none was


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def measure(unit: Path) -> Score:
    """The score of `unit` (measured once per file version and tool per process: a report
    renders in one go, and the tests render many)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return Score(None, "", "systemd-analyze is not installed")
    st = unit.stat()
    return _measure(unit, tool, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _measure(unit: Path, tool: str, _mtime: int, _size: int) -> Score:
    if installed(unit) and systemd_running():
        cmd = [tool, "security", "--no-pager", unit.name]
    else:
        cmd = [tool, "security", "--no-pager", "--offline=true", str(unit)]
    shown = " ".join(["systemd-analyze", *cmd[1:]])
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Score(None, "", f"{shown}: {exc}")
    m = _SCORE.search(done.stdout)
    if m is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return Score(None, "", f"{shown}: {tail[0]}")
    return Score(float(m.group(1)), m.group(2), shown)


def _role_section(ctx: ReportContext, role: str) -> list[str]:
    t = ctx.t
    unit = unit_file(role)
    if unit is None:
        return [
            t(
                f"{role}.service 유닛 파일을 찾지 못했습니다.",
                f"No {role}.service unit file found.",
            ),
            "",
        ]
    where = (
        t("설치된 유닛", "installed unit")
        if installed(unit)
        else t("배포본 유닛 (미설치)", "shipped unit (not installed)")
    )
    score = measure(unit)
    lines = [f"### {unit.name}", "", f"{where}: `{unit}`", ""]
    if score.value is None:
        lines.append(
            t(
                f"노출 점수: 측정 못함 ({score.how}).",
                f"Exposure score: not measured ({score.how}).",
            )
        )
    else:
        lines.append(
            t(
                f"**노출 점수 {score.value:.1f} {score.rating}** (0 = 가장 안전, 10 = 무방비). "
                f"측정: `{score.how}`.",
                f"**Exposure score {score.value:.1f} {score.rating}** (0 = safest, 10 = fully "
                "exposed). "
                f"Measured with `{score.how}`.",
            )
        )
    lines.append("")
    settings = unit_settings(unit)
    # an empty CapabilityBoundingSet= grants nothing: say so on paper, not a blank cell
    empty = t("(비어 있음: 없음)", "(empty: none)")
    rows = [[k, "; ".join(v or empty for v in settings[k])] for k in DIRECTIVES if k in settings]
    lines += table([t("설정", "Directive"), t("값", "Value")], rows)
    lines.append("")
    return lines


def section(ctx: ReportContext) -> list[str]:
    roles = ["sentinel-keeper"] if ctx.config.keeper is not None else ["sentinel"]
    lines = [
        ctx.t(
            "systemd 유닛의 격리 설정과 `systemd-analyze security` 로 측정한 노출 점수입니다.",
            "The unit's sandboxing directives and the exposure score measured by "
            "`systemd-analyze security`.",
        ),
        "",
    ]
    for role in roles:
        lines += _role_section(ctx, role)
    return lines
