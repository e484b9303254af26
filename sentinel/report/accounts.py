"""Accounts and privileges: the service user and its groups (from the unit and sysusers,
checked live with pwd/grp), the keeper's user, and the remote accounts with the forced
commands and rsync module restrictions the shipped examples document."""

from __future__ import annotations

import grp
import pwd
import re
from pathlib import Path

from sentinel.report.context import ReportContext
from sentinel.report.table import table
from sentinel.report.units import SHIPPED, unit_file, unit_settings

# rsyncd.conf settings that restrict what a connecting room may do
RSYNC_LIMITS = (
    "read only",
    "write only",
    "uid",
    "gid",
    "use chroot",
    "auth users",
    "hosts allow",
    "hosts deny",
    "list",
    "refuse options",
)
_TARGET_USER = re.compile(r"^(?:rsync://)?([A-Za-z0-9_.-]+)@")


def _live_user(ctx: ReportContext, name: str) -> str:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return ctx.t("이 호스트에 없음", "not present on this host")
    groups = sorted(g.gr_name for g in grp.getgrall() if name in g.gr_mem)
    try:
        groups.insert(0, grp.getgrgid(pw.pw_gid).gr_name)
    except KeyError:
        groups.insert(0, str(pw.pw_gid))
    return f"uid {pw.pw_uid}, {ctx.t('그룹', 'groups')} {', '.join(groups)}, shell {pw.pw_shell}"


def _matching_lines(path: Path, pattern: str) -> list[re.Match[str]]:
    """The lines of `path` that match `pattern` at their start (none when it cannot be read:
    the report says the file is missing elsewhere)."""
    try:
        text = path.read_text()
    except OSError:
        return []
    return [m for line in text.splitlines() if (m := re.match(pattern, line))]


def _sysusers(path: Path) -> list[tuple[str, str]]:
    """(user, home and shell) of each `u` line of a sysusers.d file."""
    return [
        (m.group(1), f"{m.group(2)}, {m.group(3)}")
        for m in _matching_lines(path, r'^u\s+(\S+)\s+\S+\s+"[^"]*"\s+(\S+)\s+(\S+)')
    ]


def forced_commands(path: Path) -> list[tuple[str, str]]:
    """(forced command, other options) of each key line; the key itself is left out. A
    line commented out with "# " is an optional key (the stream road's) and is listed too:
    it is what the far host runs when it is set up."""
    pattern = r'^(?:# )?command="([^"]*)",?(\S*)\s'
    return [(m.group(1), m.group(2)) for m in _matching_lines(path, pattern)]


def rsync_modules(path: Path) -> list[tuple[str, str]]:
    """(module, its restrictions) of an rsyncd.conf; global settings count for each."""
    try:
        text = path.read_text()
    except OSError:
        return []
    glob: dict[str, str] = {}
    modules: dict[str, dict[str, str]] = {}
    current = glob
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.match(r"^\[(.+)\]$", line)
        if m:
            current = modules.setdefault(m.group(1), {})
            continue
        key, _, value = line.partition("=")
        if key.strip() in RSYNC_LIMITS:
            current[key.strip()] = value.strip()
    return [
        (name, "; ".join(f"{k} = {v}" for k, v in ({**glob, **own}).items()))
        for name, own in modules.items()
    ]


def section(ctx: ReportContext) -> list[str]:
    t = ctx.t
    c = ctx.config
    lines: list[str] = []
    role = "sentinel-keeper" if c.keeper is not None else "sentinel"
    unit = unit_file(role)
    settings = unit_settings(unit) if unit else {}
    user = settings.get("User", [SERVICE_DEFAULT[role]])[-1]
    groups = " ".join(settings.get("SupplementaryGroups", [])) or "-"
    caps = " ".join(settings.get("AmbientCapabilities", [])) or t("없음", "none")
    lines.append(
        t(
            f"서비스 계정: `{user}` (유닛 {unit or '없음'}). 추가 그룹: {groups}. 부여된 "
            f"권한(capability): {caps}.",
            f"Service account: `{user}` (unit {unit or 'none'}). Supplementary groups: {groups}. "
            f"Ambient capabilities: {caps}.",
        )
    )
    lines.append("")
    rows = []
    for name, home in _sysusers(SHIPPED / f"{role}.sysusers"):
        rows.append(
            [name, home, t("암호 없음 (잠김)", "no password (locked)"), _live_user(ctx, name)]
        )
    lines += table(
        [
            t("계정", "Account"),
            t("홈, 셸", "Home, shell"),
            t("암호", "Password"),
            t("이 호스트", "On this host"),
        ],
        rows,
    )
    lines.append("")
    remote = sorted(
        {m.group(1) for r in c.replication for m in [_TARGET_USER.match(r.target)] if m}
    )
    lines.append(
        t(
            "원격 계정 (복제 대상에 로그인하는 계정): "
            + (", ".join(f"`{u}`" for u in remote) or "없음 (로컬 대상)")
            + ".",
            "Remote accounts (that replication logs in as): "
            + (", ".join(f"`{u}`" for u in remote) or "none (local targets)")
            + ".",
        )
    )
    lines.append("")
    lines.append(
        t(
            "원격 계정의 키는 아래의 강제 명령(forced command)만 실행할 수 있습니다 (문서화된 "
            "예시 파일 기준):",
            "The remote accounts' keys can only run these forced commands (as the shipped "
            "examples document):",
        )
    )
    lines.append("")
    key_rows = [
        [p.name, cmd, opts]
        for p in sorted(SHIPPED.glob("*authorized_keys.example"))
        for cmd, opts in forced_commands(p)
    ]
    lines += table(
        [t("파일", "File"), t("강제 명령", "Forced command"), t("옵션", "Options")], key_rows
    )
    lines.append("")
    mod_rows = [
        [p.name, name, limits]
        for p in sorted(SHIPPED.glob("*rsyncd.conf.example"))
        for name, limits in rsync_modules(p)
    ]
    lines += table([t("파일", "File"), t("모듈", "Module"), t("제한", "Restrictions")], mod_rows)
    return lines


SERVICE_DEFAULT = {"sentinel": "sentinel", "sentinel-keeper": "sentinel-keeper"}
