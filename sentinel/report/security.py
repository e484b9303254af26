"""`sentinel report security`: the security-review pack (보안성 검토) as Markdown, for the
config as loaded: flows, accounts, files, hardening, data, logging and findings. Files,
accounts and the hardening score are checked live on the host that runs it."""

from __future__ import annotations

import socket

from sentinel import __version__
from sentinel.report import accounts, data, files, hardening, logs
from sentinel.report.context import ReportContext
from sentinel.report.findings import Finding, findings
from sentinel.report.flows import Flow, flows
from sentinel.report.table import table

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}


def _encrypted(ctx: ReportContext, flow: Flow) -> str:
    """ "yes (TLS)", "no", or for a local path what flows.py says (no network)."""
    if flow.encrypted is None:
        return flow.encryption or ctx.t("해당 없음 (로컬)", "n/a (local)")
    if not flow.encrypted:
        return ctx.t("아니오", "no")
    return f"{ctx.t('예', 'yes')} ({flow.encryption})"


def _flows(ctx: ReportContext, found: list[Flow]) -> list[str]:
    t = ctx.t
    if not found:
        return [
            t("이 설정은 네트워크 흐름이 없습니다.", "This configuration makes no network flows.")
        ]
    rows = [
        [
            f.part,
            f.name,
            f.source,
            f.destination,
            "" if f.port is None else f.port,
            f.protocol,
            _encrypted(ctx, f),
            f.auth,
        ]
        for f in found
    ]
    return table(
        [
            t("구분", "Part"),
            t("이름", "Name"),
            t("출발", "Source"),
            t("목적지", "Destination"),
            t("포트", "Port"),
            t("프로토콜", "Protocol"),
            t("암호화", "Encrypted"),
            t("인증", "Authentication"),
        ],
        rows,
    )


def _findings(ctx: ReportContext, found: list[Finding]) -> list[str]:
    t = ctx.t
    if not found:
        return [
            t("약점으로 판단된 설정이 없습니다.", "No setting was found to weaken the posture.")
        ]
    level = {"high": t("높음", "high"), "medium": t("중간", "medium"), "low": t("낮음", "low")}
    ordered = sorted(found, key=lambda f: SEVERITY_ORDER[f.severity])
    return table(
        [t("위험도", "Severity"), t("설정", "Setting"), t("문제", "Problem"), t("조치", "Fix")],
        [[level[f.severity], f.config_key, f.problem, f.fix] for f in ordered],
    )


def render(ctx: ReportContext) -> str:
    t = ctx.t
    c = ctx.config
    found = flows(ctx)
    problems = [*findings(ctx, found), *files.file_findings(ctx)]
    lines = [f"# {t('보안성 검토 자료', 'Security review')}: {c.site.name}", ""]
    lines += table(
        [t("항목", "Item"), t("값", "Value")],
        [
            [t("사이트", "Site"), c.site.name],
            [t("생성 시각", "Generated"), ctx.when(ctx.generated)],
            [t("설정 파일", "Config file"), ctx.config_path],
            [t("설정 지문", "Config hash"), ctx.config_hash],
            [t("sentinel 버전", "sentinel version"), __version__],
            [t("호스트", "Host"), socket.gethostname()],
            [
                t("역할", "Role"),
                t("키퍼 (보건소)", "keeper (health center)")
                if c.keeper
                else t("서버실", "server room"),
            ],
        ],
    )
    lines += [
        "",
        t(
            "이 문서는 위 설정 지문의 설정에서 자동으로 만들어졌습니다. 설정이 바뀌면 `sentinel "
            "status` 가 경고하며, 다시 만들어야 합니다.",
            "This document was generated from the config with the hash above. When the config "
            "changes, `sentinel status` warns and it must be generated again.",
        ),
    ]
    sections: list[tuple[str, list[str]]] = [
        (t("1. 네트워크 흐름", "1. Network flows"), _flows(ctx, found)),
        (t("2. 계정과 권한", "2. Accounts and privileges"), accounts.section(ctx)),
        (t("3. 파일", "3. Files"), files.section(ctx)),
        (t("4. 시스템 강화 (systemd)", "4. Hardening (systemd)"), hardening.section(ctx)),
        (t("5. 데이터", "5. Data"), data.section(ctx, found)),
        (t("6. 로그", "6. Logging"), logs.section(ctx)),
        (t("7. 발견 사항과 조치", "7. Findings and fixes"), _findings(ctx, problems)),
    ]
    for title, body in sections:
        lines += ["", f"## {title}", "", *body]
    return "\n".join(lines).rstrip("\n") + "\n"
