"""`sentinel report runbook`: the recovery procedure (복구 절차서) as Markdown.

The page someone follows after the disaster, printed and kept in the binder: who is paged,
where the off-site copy is, the exact commands that bring the documents and the database
back on a replacement host (restore_steps.py), how to check the result, and what the last
drill measured. Everything comes from the config as loaded and the drill records; no secret
is printed (channel URLs masked, credential files named, never read)."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from alerts.channels import ChannelConfigError, load_channels
from backup import drill_record
from backup.database_drill_record import drill_view, duration_text
from backup.target import VERSIONS_DIR, Target, TargetError
from backup.transport.local import LocalTarget
from backup.transport.rsyncd import RsyncdTarget
from backup.transport.ssh import SshTarget
from common.redaction import mask
from sentinel.config.replication import ReplicationConfig
from sentinel.replication import spec_from_config
from sentinel.report import restore_steps
from sentinel.report.context import ReportContext
from sentinel.room_heartbeat import history_target

_SSH_HOST = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^:/]+):")


def render(ctx: ReportContext) -> str:
    t = ctx.t
    parts = [
        _header(ctx),
        _paging(ctx),
        _copies(ctx),
        _restore(ctx),
        _checks(ctx),
        _drills(ctx),
    ]
    text = "\n".join(parts)
    return text.rstrip("\n") + "\n\n---\n" + t("끝.", "End.") + "\n"


# -- header --------------------------------------------------------------------------------


def _header(ctx: ReportContext) -> str:
    t = ctx.t
    return "\n".join(
        [
            f"# {t('복구 절차서', 'Recovery runbook')}: {_cell(ctx.config.site.name)}",
            "",
            f"| {t('항목', 'Item')} | {t('값', 'Value')} |",
            "|---|---|",
            f"| {t('현장', 'Site')} | {_cell(ctx.config.site.name)} |",
            f"| {t('생성 시각', 'Generated')} | {ctx.when(ctx.generated)} |",
            f"| {t('설정 파일', 'Config file')} | `{_cell(str(ctx.config_path))}` |",
            f"| {t('설정 해시', 'Config hash')} | `{ctx.config_hash}` |",
            f"| {t('복구 위치', 'Restore into')} | `{_cell(str(ctx.restore_dir))}` |",
            "",
            "> "
            + t(
                "인쇄하여 바인더에 보관하십시오. 설정이 바뀌면 다시 생성하십시오. "
                "설정 해시가 현재 설정과 다르면 이 문서는 낡은 것입니다.",
                "Print this and keep it in the binder. Generate it again when the config "
                "changes: a config hash that differs from the running config's means this "
                "copy is out of date.",
            ),
            "",
        ]
    )


# -- 1. who is paged -------------------------------------------------------------------------


def _paging(ctx: ReportContext) -> str:
    t = ctx.t
    alerts = ctx.config.alerts
    out = [f"## 1. {t('호출 대상과 경로', 'Who is paged, and how')}", ""]
    if alerts.apprise_config is None:
        out += [t("알림 채널이 설정되지 않았습니다.", "No alert channel is configured."), ""]
    else:
        out += [
            t("알림 채널 (비밀값은 가림):", "Alert channels (secrets masked):"),
            "",
            f"| # | {t('채널', 'Channel')} | {t('종류', 'Service')} | {t('태그', 'Tags')} |",
            "|---|---|---|---|",
        ]
        try:
            channels = load_channels(alerts.apprise_config)
        except ChannelConfigError as exc:
            out = [
                *out[:-4],
                t(
                    f"알림 채널을 읽을 수 없습니다: {mask(str(exc))}",
                    f"The alert channels cannot be read: {mask(str(exc))}",
                ),
            ]
        else:
            for ch in channels:
                tags = ", ".join(sorted(ch.tags)) or t("(전부 받음)", "(receives all)")
                out.append(
                    f"| {ch.index + 1} | `{_cell(ch.display)}` | {_cell(ch.service)} "
                    f"| {_cell(tags)} |"
                )
        out.append("")
    out += [
        t("경보 등급별 태그:", "Which alarms go to which tags:"),
        "",
        f"| {t('등급', 'Severity')} | {t('태그', 'Tags')} |",
        "|---|---|",
    ]
    for severity, route in alerts.routes.items():
        out.append(f"| {severity} | {_cell(', '.join(route)) or '-'} |")
    escalation = t("확대", "escalation")
    for step in ctx.config.alarms.escalation:
        out.append(f"| {escalation} +{duration_text(step.after)} | {_cell(', '.join(step.tags))} |")
    for rule in ctx.config.rules:
        # a rule's own escalation replaces the default one for its alarms
        label = _cell(rule.name or rule.sensor or "?")
        for step in rule.escalation or []:
            out.append(
                f"| {label}: {escalation} +{duration_text(step.after)} "
                f"| {_cell(', '.join(step.tags))} |"
            )
    out.append("")
    if alerts.fallback_tags:
        out += [
            t(
                f"모든 채널이 {duration_text(alerts.fallback_after)} 동안 실패하면 예비 경로 "
                f"({', '.join(alerts.fallback_tags)}, 예: 문자 모뎀)로 보냅니다.",
                f"When every channel has failed for {duration_text(alerts.fallback_after)}, "
                f"alarms also go to the fallback ({', '.join(alerts.fallback_tags)}, "
                "e.g. the SMS modem).",
            ),
            "",
        ]
    contacts = ctx.config.reports.contacts
    out += [f"### {t('연락처', 'Contacts')}", ""]
    if not contacts:
        out += [
            t(
                "[reports] contacts에 연락처가 없습니다. 손으로 적어 두십시오.",
                "No contacts in [reports] contacts: write them in by hand.",
            ),
            "",
        ]
    else:
        out += [
            f"| {t('역할', 'Role')} | {t('이름', 'Name')} | {t('전화', 'Phone')} |",
            "|---|---|---|",
        ]
        out += [f"| {_cell(c.role)} | {_cell(c.name)} | {_cell(c.phone)} |" for c in contacts]
        out.append("")
    return "\n".join(out)


# -- 2. where the copy is --------------------------------------------------------------------


def _copies(ctx: ReportContext) -> str:
    t = ctx.t
    out = [f"## 2. {t('원격 사본의 위치', 'Where the off-site copy is')}", ""]
    if not ctx.config.replication:
        return "\n".join(
            [*out, t("복제가 설정되지 않았습니다.", "No replication is configured."), ""]
        )
    for rc in ctx.config.replication:
        out += [f"### {_cell(rc.name)}", ""]
        out += [f"| {t('항목', 'Item')} | {t('값', 'Value')} |", "|---|---|"]
        kind = (
            t("문서 저장소", "document store")
            if rc.kind == "files"
            else t("데이터베이스 아카이브 로그", "database archive logs")
        )
        out.append(f"| {t('종류', 'Kind')} | {kind} |")
        out.append(f"| {t('원본', 'Source')} | `{_cell(str(rc.source))}` |")
        try:
            target = _target(rc)
        except TargetError as exc:
            out += [f"| {t('사본', 'Replica')} | {_cell(mask(str(exc)))} |", ""]
            continue
        out.append(f"| {t('사본', 'Replica')} | `{_cell(target.describe())}` |")
        out.append(f"| {t('호스트', 'Host')} | {_cell(_host(target, ctx))} |")
        out.append(f"| {t('전송 방식', 'Transport')} | {_transport(target, ctx)} |")
        for label, path in _credential_files(rc, ctx):
            out.append(f"| {label} | `{_cell(str(path))}` |")
        versions = (
            t(
                f"{_span(rc.versions_retention, ctx)} 보관",
                f"kept {_span(rc.versions_retention, ctx)}",
            )
            if rc.versions_retention is not None
            else t("무기한 보관", "kept for ever")
        )
        out.append(
            f"| {t('이전 버전', 'Older versions')} | `{_cell(target.path(VERSIONS_DIR))}` "
            f"({versions}) |"
        )
        if rc.keeper is not None:
            out.append(
                f"| {t('키퍼 수신 확인', 'Keeper receipt')} | `{_cell(rc.keeper.receipt)}` |"
            )
            if rc.keeper.history is not None:
                out.append(
                    f"| {t('키퍼 스냅숏', 'Keeper snapshots')} | `{_cell(rc.keeper.history)}` |"
                )
        if rc.database is not None and rc.database.base_backup_dir is not None:
            out.append(
                f"| {t('기본 백업', 'Base backups')} "
                f"| `{_cell(str(rc.database.base_backup_dir))}` |"
            )
        out.append("")
    return "\n".join(out)


def _target(rc: ReplicationConfig) -> Target:
    return spec_from_config(rc, Path("/nonexistent")).target


def _host(target: Target, ctx: ReportContext) -> str:
    if isinstance(target, RsyncdTarget):
        return target.host
    if isinstance(target, SshTarget) and (m := _SSH_HOST.match(target.url)):
        return m.group("host")
    return ctx.t("이 호스트의 경로 (디스크, 마운트)", "a path on this host (disk, mount)")


def _transport(target: Target, ctx: ReportContext) -> str:
    if isinstance(target, RsyncdTarget):
        return ctx.t("rsync 데몬 (암호화 없음)", "rsync daemon (not encrypted)")
    if isinstance(target, SshTarget):
        if target.daemon_over_ssh:
            return ctx.t("ssh 위의 rsync 데몬 모듈", "rsync daemon module over ssh")
        return ctx.t("ssh 위의 rsync", "rsync over ssh")
    return ctx.t("로컬 경로", "local path")


def _credential_files(rc: ReplicationConfig, ctx: ReportContext) -> list[tuple[str, Path]]:
    """The files that hold the credentials, by name: their content stays in them."""
    t = ctx.t
    found: list[tuple[str, Path]] = []
    if rc.password_file is not None:
        found.append((t("비밀번호 파일", "Password file"), rc.password_file))
    if rc.identity_file is not None:
        found.append((t("ssh 키 파일", "ssh key file"), rc.identity_file))
    if rc.known_hosts is not None:
        found.append((t("ssh known_hosts", "ssh known_hosts"), rc.known_hosts))
    if rc.keeper is not None and rc.keeper.history_identity_file is not None:
        found.append((t("훈련용 키 파일", "Drill key file"), rc.keeper.history_identity_file))
    return found


# -- 3. restore commands ---------------------------------------------------------------------


def _dest(ctx: ReportContext, rc: ReplicationConfig) -> Path | None:
    """Where this replication is restored to; None when that would be the source (a
    restore there would overwrite newer documents with older ones)."""
    dest = ctx.restore_dir / rc.name
    # the replica on a local disk is the copy being restored from: writing into it (or it
    # into itself) spoils the last good copy. Real paths: `..` or a symlink in
    # --restore-dir must not slip past a comparison of the names
    kept = [rc.source]
    with contextlib.suppress(TargetError):
        if isinstance(target := _target(rc), LocalTarget):
            kept.append(Path(target.url))
    real = Path(os.path.realpath(dest))
    for path in kept:
        other = Path(os.path.realpath(path))
        if real.is_relative_to(other) or other.is_relative_to(real):
            return None
    return dest


def _restore(ctx: ReportContext) -> str:
    t = ctx.t
    out = [
        f"## 3. {t('복구 명령', 'Restore commands')}",
        "",
        t(
            "새 호스트에서 root로 실행합니다. 각 블록은 그대로 복사해 실행할 수 있습니다. "
            "맨 위의 변수만 필요하면 바꾸십시오. 복구는 원본이 아닌 복구 위치에 씁니다.",
            "Run as root on the replacement host. Each block runs as printed; change only "
            "the variables at its top if needed. Restores write into the restore directory, "
            "never over the source.",
        ),
        "",
    ]
    for n, rc in enumerate(ctx.config.replication, 1):
        out += [f"### 3.{n} {_cell(rc.name)}", ""]
        dest = _dest(ctx, rc)
        if dest is None:
            out += [
                t(
                    f"복구 위치 {ctx.restore_dir}가 원본 {rc.source} 또는 사본과 겹칩니다. "
                    "--restore-dir로 다른 위치를 지정해 다시 생성하십시오.",
                    f"The restore directory {ctx.restore_dir} overlaps the source "
                    f"{rc.source} or the replica: generate again with another --restore-dir.",
                ),
                "",
            ]
            continue
        try:
            target = _target(rc)
        except TargetError as exc:
            out += [mask(str(exc)), ""]
            continue
        if rc.kind == "files":
            out += _files_blocks(ctx, rc, target, dest)
        else:
            out += _database_blocks(ctx, rc, target, dest)
    return "\n".join(out)


def _files_blocks(
    ctx: ReportContext, rc: ReplicationConfig, target: Target, dest: Path
) -> list[str]:
    t = ctx.t
    out: list[str] = []
    if rc.keeper is not None:
        # the landing module at a keeper takes writes only: the copy comes from a snapshot
        out += [
            t(
                "키퍼의 수신 모듈은 쓰기 전용입니다. 복구는 키퍼의 스냅숏에서 합니다.",
                "The keeper's landing module takes writes only: restore from its snapshots.",
            ),
            "",
        ]
        if rc.keeper.history is None:
            return [
                *out,
                t(
                    "[replication.keeper] history가 없어 명령을 만들 수 없습니다. "
                    "docs/keeper.md를 따르십시오.",
                    "No [replication.keeper] history is configured, so no commands can be "
                    "printed: follow docs/keeper.md.",
                ),
                "",
            ]
        try:
            history = history_target(rc.keeper, target)
        except TargetError as exc:
            return [*out, mask(str(exc)), ""]
        return [
            *out,
            f"**A. {t('키퍼의 최신 스냅숏에서', 'From the keeper’s newest snapshot')}**",
            "",
            *_sh(restore_steps.files_from_keeper(history, dest)),
        ]
    if isinstance(target, SshTarget) and target.url.endswith(":"):
        # `user@host:` is an rrsync key; the documented one is write-only (rrsync -wo)
        out += [
            t(
                "이 주소는 rrsync로 제한된 키입니다. 키가 쓰기 전용(-wo)이면 읽을 수 없으니 "
                "백업 호스트의 읽기 권한으로 실행하십시오 (systemd/authorized_keys.example).",
                "This address is an rrsync-restricted key. A write-only key (-wo) cannot "
                "read: run the block with read access on the backup host "
                "(systemd/authorized_keys.example).",
            ),
            "",
        ]
    out += [
        "**A. "
        + t("사본에서 rsync로 (sentinel 없이)", "From the replica with rsync (no sentinel needed)")
        + "**",
        "",
        *_sh(restore_steps.files_from_replica(target, dest)),
        "**B. "
        + t(
            "sentinel이 설치된 경우 (특정 시점 복구 가능)",
            "With sentinel installed (also as of a time)",
        )
        + "**",
        "",
        *_sh(restore_steps.files_with_sentinel(t, ctx.config_path, rc.name, dest)),
        t(
            "블록마다 빈 복구 위치가 필요합니다. 다른 블록을 시도하기 전에 비우십시오.",
            "Each block wants an empty restore directory: empty it before trying another.",
        ),
        "",
    ]
    return out


def _database_blocks(
    ctx: ReportContext, rc: ReplicationConfig, target: Target, dest: Path
) -> list[str]:
    t = ctx.t
    db = rc.database
    preset = db.preset if db is not None else None
    if db is not None and preset == "postgresql" and db.pattern is None:
        return [
            t(
                "PostgreSQL 특정 시점 복구: 최신 기본 백업 + 사본의 WAL. "
                "TARGET_TIME을 비워 두면 전송된 마지막 로그까지 복구합니다.",
                "PostgreSQL point-in-time recovery: the newest base backup plus the "
                "replica's WAL. With TARGET_TIME empty it recovers as far as the shipped "
                "logs go.",
            ),
            "",
            *_sh(restore_steps.postgresql(t, db, target, dest)),
        ]
    block = restore_steps.by_commands(t, db, target, dest) if db is not None else None
    if block is None:
        return [
            t(
                "[replication.database.drill]의 restore_command가 없어 명령을 만들 수 "
                "없습니다. docs/database.md를 따르십시오.",
                "No [replication.database.drill] restore_command is configured, so no "
                "commands can be printed: follow docs/database.md.",
            ),
            "",
        ]
    return [
        t(
            f"{preset or 'database'}: 설정된 훈련 명령 (비밀번호는 ****로 가림: 직접 입력).",
            f"{preset or 'database'}: the configured drill commands (passwords shown as "
            "****: type them in).",
        ),
        "",
        *_sh(block),
    ]


# -- 4. checks -----------------------------------------------------------------------------


def _checks(ctx: ReportContext) -> str:
    t = ctx.t
    out = [f"## 4. {t('결과 확인', 'Checking the result')}", ""]
    for n, rc in enumerate(ctx.config.replication, 1):
        dest = _dest(ctx, rc)
        out += [f"### 4.{n} {_cell(rc.name)}", ""]
        if dest is None:
            out += ["-", ""]
            continue
        try:
            target = _target(rc)
        except TargetError:
            out += ["-", ""]
            continue
        if rc.kind == "files":
            last = _last_file_drill(ctx, rc.name)
            count = (
                t(
                    f" 최근 훈련에서는 {last.files}개였습니다.",
                    f" The last drill restored {last.files}.",
                )
                if last is not None and last.files is not None
                else ""
            )
            out += [
                t(
                    "사본과 체크섬으로 비교합니다. 아무것도 출력되지 않으면 모든 파일이 같습니다.",
                    "Compare with the replica by checksum: no output means every file came "
                    "back identical.",
                ),
                "",
                *_sh(restore_steps.check_against_replica(target, dest)),
                t(
                    f"복구 명령이 출력한 파일 수를 확인하십시오.{count}",
                    f"Look at the file count the restore printed.{count}",
                )
                + t(
                    f" 원본 자리로 옮긴 뒤에는 `sentinel backup verify {rc.name}`가 OK여야 합니다.",
                    f" Once the files are back in place, `sentinel backup verify {rc.name}` "
                    "must say OK.",
                ),
                "",
            ]
        elif rc.database is not None and rc.database.drill is not None:
            drill = rc.database.drill
            if rc.database.preset == "postgresql" and drill.restore_command is None:
                query = restore_steps.q(drill.check_query)
                out += [
                    t("훈련의 확인 쿼리를 실행합니다:", "Run the drill's check query:"),
                    "",
                    *_sh(
                        "\n".join(
                            [
                                f"RESTORE={restore_steps.q(str(dest))}",
                                f"PGBIN={restore_steps.q(str(drill.pg_bin))}",
                                f'"$PGBIN/psql" -At -h "$RESTORE" '
                                f"-d {restore_steps.q(drill.database)} "
                                f"-U {restore_steps.q(drill.user)} -c {query}",
                            ]
                        )
                    ),
                ]
            else:
                out += [
                    t(
                        "설정된 check_command의 결과를 확인하십시오 (3절 블록의 마지막 명령).",
                        "Check the output of the configured check_command (the last "
                        "command of the block in section 3).",
                    ),
                    "",
                ]
        else:
            out += [
                t(
                    "확인 쿼리가 설정되지 않았습니다 ([replication.database.drill]).",
                    "No check query is configured ([replication.database.drill]).",
                ),
                "",
            ]
    return "\n".join(out)


# -- 5. the last drills ----------------------------------------------------------------------


def _last_file_drill(ctx: ReportContext, name: str) -> drill_record.FileDrill | None:
    if ctx.state is None:
        return None
    return drill_record.last_drill(ctx.state, name)


def _drills(ctx: ReportContext) -> str:
    t = ctx.t
    none = t("기록된 훈련 없음", "no drill recorded")
    out = [
        f"## 5. {t('최근 복구 훈련', 'The most recent restore drill')}",
        "",
        f"| {t('복제', 'Replication')} | {t('훈련', 'Drill')} | {t('실행 시각', 'Ran at')} "
        f"| {t('결과', 'Result')} | RTO | {t('파일 수', 'Files')} |",
        "|---|---|---|---|---|---|",
    ]
    for rc in ctx.config.replication:
        name = _cell(rc.name)
        if rc.kind == "files":
            last = _last_file_drill(ctx, rc.name)
            if last is None:
                out.append(f"| {name} | - | {none} | - | - | - |")
                continue
            good = last if last.ok or ctx.state is None else None
            if good is None and ctx.state is not None:
                good = drill_record.last_drill(ctx.state, rc.name, ok_only=True)
            for drill in (last, good) if good is not last else (last,):
                if drill is None:
                    continue
                kind = (
                    t("키퍼 스냅숏", "keeper snapshot")
                    if drill.kind == "keeper"
                    else t("사본", "replica")
                )
                # a failed drill's time is no RTO: the RTO is the last passed one's
                out.append(
                    f"| {name} | {kind} | {ctx.when(drill.ts)} "
                    f"| {_result(ctx, drill.ok, drill.error)} "
                    f"| {_rto(drill.rto if drill.ok else None)} "
                    f"| {drill.files if drill.files is not None else '-'} |"
                )
            continue
        view = drill_view(ctx.state, rc.name, ctx.generated) if ctx.state is not None else None
        db_last = view["last"] if view is not None else None
        if db_last is None:
            out.append(f"| {name} | - | {none} | - | - | - |")
            continue
        db_ok = view["last_ok"] if view is not None else None
        for row in (db_last, db_ok) if not db_last["ok"] else (db_last,):
            if row is None:
                continue
            out.append(
                f"| {name} | {t('데이터베이스', 'database')} | {ctx.when(float(row['ts']))} "
                f"| {_result(ctx, bool(row['ok']), row['error'] or '')} "
                f"| {_rto(row['rto'] if row['ok'] else None)} | - |"
            )
    out += [
        "",
        t(
            "RTO: 복구를 시작해서 결과를 확인할 때까지 걸린 시간 (훈련에서 측정). "
            "정기적으로 `sentinel backup drill`을 실행해 기록을 남기십시오.",
            "RTO: from the start of the restore until the result was checked, as the drill "
            "measured it. Run `sentinel backup drill` regularly to keep the record current.",
        ),
        "",
    ]
    return "\n".join(out)


def _result(ctx: ReportContext, ok: bool, error: str) -> str:
    if ok:
        return ctx.t("성공", "passed")
    return ctx.t("실패", "FAILED") + (f": {_cell(mask(error))}" if error else "")


def _span(seconds: float, ctx: ReportContext) -> str:
    """A retention as people say it: 30일 / 30 days (hours and minutes below a day)."""
    if seconds >= 86400:
        days = round(seconds / 86400, 1)
        shown = f"{days:g}"
        return ctx.t(f"{shown}일", f"{shown} days")
    return duration_text(seconds)


def _rto(rto: float | None) -> str:
    return "-" if rto is None else duration_text(float(rto))


# -- Markdown ------------------------------------------------------------------------------


def _sh(block: str) -> list[str]:
    # a value with a newline and ``` (a path, a host) would close a fixed fence mid-command
    # and print the rest as a block of its own: the fence outruns every backtick run inside
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", block)), default=0))
    return [fence + "sh", block, fence, ""]


def _cell(text: str) -> str:
    """A table cell on one line: a `|` or a newline in a name must not break the table."""
    return text.replace("|", "\\|").replace("\n", " ")
