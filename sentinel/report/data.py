"""Data: what personal or official data leaves the host, where it is kept, for how long,
and how it is protected in transit (per flow) and at rest."""

from __future__ import annotations

from sentinel.config.types import format_duration
from sentinel.report.context import ReportContext
from sentinel.report.flows import Flow
from sentinel.report.table import table


def _keep(ctx: ReportContext, seconds: float | None) -> str:
    return (
        ctx.t("무기한 (자동 삭제 없음)", "forever (never pruned)")
        if seconds is None
        else format_duration(seconds)
    )


def _transit(ctx: ReportContext, flows: list[Flow], part: str, name: str = "") -> str:
    """How the flows of `part` (named `name`, or all of them) protect the data: each
    distinct protocol and encryption once."""
    seen: list[str] = []
    for f in flows:
        if f.part == part and (not name or f.name == name):
            text = f"{f.protocol}: {f.encryption}"
            if text not in seen:
                seen.append(text)
    return "; ".join(seen) or ctx.t("네트워크 흐름 표 참조", "see the network flows table")


def section(ctx: ReportContext, flows: list[Flow]) -> list[str]:
    t = ctx.t
    c = ctx.config
    rows: list[list[object]] = []
    for r in c.replication:
        what = (
            t(
                "데이터베이스 아카이브 로그 (행정 데이터, 개인정보 포함 가능)",
                "database archive logs (records, may hold personal data)",
            )
            if r.kind == "archive-log"
            else t(
                "공문서·전자결재 파일 (개인정보 포함 가능)",
                "official documents / e-approval files (may hold personal data)",
            )
        )
        kept = t(f"복제 대상 `{r.target}`", f"replica target `{r.target}`")
        if r.keeper is not None:
            kept += t(
                f", 키퍼 스냅샷 (방 `{r.keeper_room}`)",
                f", keeper snapshots (room `{r.keeper_room}`)",
            )
        rows.append(
            [
                what,
                f"`{r.source}`",
                kept,
                t(
                    f"이전 버전 {_keep(ctx, r.versions_retention)}",
                    f"old versions {_keep(ctx, r.versions_retention)}",
                ),
                _transit(ctx, flows, "replication", r.name),
            ]
        )
    if c.keeper is not None:
        k = c.keeper
        rows.append(
            [
                t("각 방에서 받은 복제본 (공문서)", "the rooms' replicas (official documents)"),
                ", ".join(f"`{room.landing}`" for room in k.rooms),
                t(f"스냅샷 `{k.snapshot_dir}`", f"snapshots `{k.snapshot_dir}`"),
                t(
                    f"전부 {format_duration(k.keep_all)}, 시간별 "
                    f"{format_duration(k.keep_hourly)}, 일별 {format_duration(k.keep_daily)}",
                    f"all {format_duration(k.keep_all)}, hourly {format_duration(k.keep_hourly)}, "
                    f"daily {format_duration(k.keep_daily)}",
                ),
                t("로컬 디스크", "local disk"),
            ]
        )
    if c.alerts.apprise_config is not None:
        rows.append(
            [
                t(
                    "경보 문구 (방 이름, 경보 종류, 값); 채널 안의 전화번호·수신자",
                    "alert texts (room, alarm, value); phone numbers and recipients inside the "
                    "channels",
                ),
                f"`{c.alerts.apprise_config}`",
                t(
                    "각 알림 서비스 (문자, 메신저, 메일)",
                    "each alert service (SMS, messenger, mail)",
                ),
                t("서비스 제공자의 보관 정책", "the provider's own retention"),
                _transit(ctx, flows, "alert"),
            ]
        )
    lines = [
        t(
            "이 호스트 밖으로 나가는 개인·공공 데이터와 보관 위치, 보관 기간, 전송 중 보호입니다.",
            "The personal and official data that leaves this host, where it is kept, for how long, "
            "and how it is protected in transit.",
        ),
        "",
    ]
    header = [
        t("데이터", "Data"),
        t("원본", "Source"),
        t("보관 위치", "Kept at"),
        t("보관 기간", "Kept for"),
        t("전송 보호", "In transit"),
    ]
    if rows:
        lines += [*table(header, rows), ""]
    else:
        lines += [
            t(
                "이 설정에서는 데이터가 밖으로 나가지 않습니다.",
                "With this config no data leaves the host.",
            ),
            "",
        ]
    lines += [
        t(
            "**저장 시 암호화: sentinel은 복제본과 스냅샷을 암호화하지 않습니다.** 군은 백업 "
            "호스트의 디스크를 "
            "LUKS(dm-crypt) 등으로 암호화하고, 백업 호스트와 복제 디렉터리의 접근을 담당자로 "
            "제한하며, "
            "폐기 시 디스크를 완전 삭제해야 합니다.",
            "**At rest: sentinel does not encrypt replicas or snapshots.** The county must encrypt "
            "the backup host's disks (LUKS/dm-crypt or equivalent), restrict access to the backup "
            "host and the replica directories to the staff responsible, and wipe disks on "
            "disposal.",
        ),
    ]
    return lines
