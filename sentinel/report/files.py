"""The files that hold a secret, and the state directory, checked live (os.stat): owner,
group, mode and a verdict, plus a finding for each that is too open, missing or wrongly
owned. The rule is the daemon's own (sentinel/secrets.py check_private): no access for
others, no write for the group."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.redaction import command_secrets
from sentinel.config import Config
from sentinel.report.context import ReportContext
from sentinel.report.findings import Finding

SERVICE_USER = "sentinel"
STUNNEL_DIR = Path("/etc/stunnel")
KEEPER_ETC = Path("/etc/sentinel-keeper")
# stunnel's own secret lines: its TLS key and the pre-shared keys (docs/transport.md)
_STUNNEL_SECRET = re.compile(r"^\s*(key|PSKsecrets)\s*=\s*(\S+)", re.MULTILINE)

Verdict = Literal["ok", "too open", "missing", "wrong owner"]


@dataclass(frozen=True, slots=True)
class SecretFile:
    path: Path
    what: str
    config_key: str
    owner: str  # "user:group", "" when missing
    mode: int | None  # None: missing or unreadable
    verdict: Verdict
    directory: bool = False


def _name(lookup: str, ident: int) -> str:
    try:
        if lookup == "user":
            return pwd.getpwuid(ident).pw_name
        return grp.getgrgid(ident).gr_name
    except KeyError:  # an id without a name on this host: print the number
        return str(ident)


def _daemon_uids() -> set[int]:
    """Who may own a secret: root and the service user (when present here)."""
    uids = {0, os.geteuid()}
    with contextlib.suppress(KeyError):  # not installed here: root alone
        uids.add(pwd.getpwnam(SERVICE_USER).pw_uid)
    return uids


def check(path: Path, what: str, config_key: str, *, directory: bool = False) -> SecretFile:
    try:
        st = path.stat()
    except OSError:
        return SecretFile(path, what, config_key, "", None, "missing", directory)
    mode = stat.S_IMODE(st.st_mode)
    owner = f"{_name('user', st.st_uid)}:{_name('group', st.st_gid)}"
    verdict: Verdict = "ok"
    if mode & 0o007 or mode & 0o020:
        verdict = "too open"
    elif st.st_uid not in _daemon_uids():
        verdict = "wrong owner"
    return SecretFile(path, what, config_key, owner, mode, verdict, directory)


def _database_commands(c: Config) -> list[str]:
    """The archive-log commands the config holds: `sqlplus sys/pw@db`, `PGPASSWORD=x ...`."""
    out: list[str] = []
    for rc in c.replication:
        db = rc.database
        if db is None:
            continue
        out += [db.switch_command or "", db.base_backup_command or ""]
        if db.drill is not None:
            d = db.drill
            out += [d.restore_command or "", d.recover_command or "", d.check_command or ""]
    return [command for command in out if command]


def secret_files(ctx: ReportContext) -> list[SecretFile]:
    """Every file of `ctx.config` that holds a secret (or code run with the daemon's rights)."""
    c = ctx.config
    t = ctx.t
    wanted: list[tuple[Path, str, str]] = []
    if (
        (c.mqtt and c.mqtt.password)
        or any(n.password for n in c.nut)
        or any(command_secrets(command) for command in _database_commands(c))
    ):
        wanted.append(
            (ctx.config_path, t("설정 파일 (비밀번호 포함)", "config file (holds passwords)"), "-c")
        )
    if c.alerts.apprise_config:
        wanted.append(
            (
                c.alerts.apprise_config,
                t("Apprise 채널 (토큰)", "Apprise channels (tokens)"),
                "[alerts] apprise_config",
            )
        )
    if c.mqtt and c.mqtt.key_file:
        wanted.append(
            (c.mqtt.key_file, t("MQTT 클라이언트 키", "MQTT client key"), "[mqtt] key_file")
        )
    for i, r in enumerate(c.replication):
        key = f"replication[{i}]"
        if r.password_file:
            wanted.append(
                (
                    r.password_file,
                    t("rsync 비밀번호 파일", "rsync password file"),
                    f"{key}.password_file",
                )
            )
        if r.identity_file:
            wanted.append(
                (r.identity_file, t("ssh 개인 키", "ssh private key"), f"{key}.identity_file")
            )
        if r.stream_identity_file:
            wanted.append(
                (
                    r.stream_identity_file,
                    t("스트림 ssh 키", "stream ssh key"),
                    f"{key}.stream_identity_file",
                )
            )
        if r.keeper and r.keeper.history_identity_file:
            wanted.append(
                (
                    r.keeper.history_identity_file,
                    t("훈련용 ssh 키", "drill ssh key"),
                    f"{key}.keeper.history_identity_file",
                )
            )
    if c.web is not None:
        users = c.web.users_file or c.daemon.state_dir / "web-users"
        wanted.append(
            (
                users,
                t("웹 사용자 (비밀번호 해시)", "web users (password hashes)"),
                "[web] users_file",
            )
        )
        if c.web.tls_key:
            wanted.append((c.web.tls_key, t("웹 TLS 키", "web TLS key"), "[web] tls_key"))
    if c.alerts.plugin_dir:
        wanted.append(
            (
                c.alerts.plugin_dir,
                t(
                    "Apprise 플러그인 (데몬 권한으로 실행되는 코드)",
                    "Apprise plugins (code run as the daemon)",
                ),
                "[alerts] plugin_dir",
            )
        )
    if c.keeper is not None:
        # the TCP entrance's room passwords (docs/keeper.md); absent when only ssh is used
        for secrets in sorted(KEEPER_ETC.glob("*secrets")) if KEEPER_ETC.is_dir() else []:
            wanted.append((secrets, t("rsyncd 비밀번호", "rsyncd passwords"), str(secrets)))
    for conf in sorted(STUNNEL_DIR.glob("*.conf")) if STUNNEL_DIR.is_dir() else []:
        try:
            text = conf.read_text(errors="replace")
        except OSError:
            continue
        for m in _STUNNEL_SECRET.finditer(text):
            what = (
                "stunnel PSK"
                if m.group(1) == "PSKsecrets"
                else t("stunnel TLS 키", "stunnel TLS key")
            )
            wanted.append((Path(m.group(2)), what, str(conf)))
    seen: set[Path] = set()
    out: list[SecretFile] = []
    for path, what, key in wanted:
        if path in seen:
            continue
        seen.add(path)
        out.append(check(path, what, key, directory=path == c.alerts.plugin_dir))
    return out


def state_dir(ctx: ReportContext) -> SecretFile:
    return check(
        ctx.config.daemon.state_dir,
        ctx.t("상태 디렉터리", "state directory"),
        "[daemon] state_dir",
        directory=True,
    )


def mode_text(mode: int | None) -> str:
    return "" if mode is None else f"{mode:04o}"


def verdict_text(ctx: ReportContext, verdict: Verdict) -> str:
    return {
        "ok": ctx.t("적합", "ok"),
        "too open": ctx.t("권한 과다", "too open"),
        "missing": ctx.t("없음", "missing"),
        "wrong owner": ctx.t("소유자 부적합", "wrong owner"),
    }[verdict]


def file_findings(ctx: ReportContext) -> list[Finding]:
    """A finding per secret file (or state directory) that is too open, missing or owned by
    someone other than root or the service user."""
    t = ctx.t
    out: list[Finding] = []
    for f in [*secret_files(ctx), state_dir(ctx)]:
        q = str(f.path)
        # the fix is pasted as root: the path one word, whatever it holds (spaces, $(...))
        arg = shlex.quote(q)
        # the daemon writes its state directory (systemd/sentinel.tmpfiles: sentinel
        # sentinel); root-owned, it could not; secret files it only reads
        owner = f"{SERVICE_USER}:{SERVICE_USER}" if f.directory else f"root:{SERVICE_USER}"
        if f.verdict == "too open":
            mode = "750" if f.directory else "640"
            fix = f"sudo chown {owner} {arg} && sudo chmod {mode} {arg}"
            out.append(
                Finding(
                    "high",
                    f.config_key,
                    t(
                        f"{f.what} {q}: 권한 {mode_text(f.mode)} — 다른 사용자가 읽거나 그룹이 쓸 "
                        "수 있습니다.",
                        f"{f.what} {q}: mode {mode_text(f.mode)}, other users can read it or its "
                        "group can write it.",
                    ),
                    fix,
                )
            )
        elif f.verdict == "wrong owner":
            out.append(
                Finding(
                    "medium",
                    f.config_key,
                    t(
                        f"{f.what} {q}: 소유자 {f.owner} — root 또는 {SERVICE_USER} 가 아닙니다.",
                        f"{f.what} {q}: owned by {f.owner}, not root or {SERVICE_USER}.",
                    ),
                    f"sudo chown {owner} {arg}",
                )
            )
        elif f.verdict == "missing" and not f.directory:
            out.append(
                Finding(
                    "medium",
                    f.config_key,
                    t(f"{f.what} {q}: 파일이 없습니다.", f"{f.what} {q}: the file is missing."),
                    t(
                        "파일을 만들거나 설정의 경로를 고치십시오.",
                        "Create it, or fix the path in the config.",
                    ),
                )
            )
    return out


def section(ctx: ReportContext) -> list[str]:
    from sentinel.report.table import table

    t = ctx.t
    rows = [
        [f.what, f.path, f.owner, mode_text(f.mode), verdict_text(ctx, f.verdict)]
        for f in [*secret_files(ctx), state_dir(ctx)]
    ]
    lines = [
        t(
            "비밀을 담은 파일과 상태 디렉터리입니다. 소유자와 권한은 보고서를 만든 순간 이 "
            "호스트에서 직접 확인했습니다. "
            "기준: 다른 사용자 접근 없음, 그룹 쓰기 없음 (권장 0640 root:sentinel, 디렉터리 0750).",
            "The files that hold a secret, and the state directory. Owner and mode were checked "
            "live on this host when the report was made. Rule: no access for other users, no "
            "group write (0640 root:sentinel; directories 0750).",
        ),
        "",
    ]
    lines += table(
        [
            t("용도", "What"),
            t("경로", "Path"),
            t("소유자", "Owner"),
            t("권한", "Mode"),
            t("판정", "Verdict"),
        ],
        rows,
    )
    return lines
