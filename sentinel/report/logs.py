"""Logging: what sentinel logs, where, for how long, and how secrets are kept out of it."""

from __future__ import annotations

import re
from pathlib import Path

from sentinel.config.types import format_duration
from sentinel.report.context import ReportContext

JOURNALD_CONF = Path("/etc/systemd/journald.conf")
JOURNALD_DROPINS = Path("/etc/systemd/journald.conf.d")
RETENTION_KEYS = ("Storage", "SystemMaxUse", "SystemKeepFree", "MaxRetentionSec", "MaxFileSec")


def journald_settings() -> dict[str, str] | None:
    """The retention settings set in journald.conf and its drop-ins (None: no file here)."""
    files = [JOURNALD_CONF] if JOURNALD_CONF.is_file() else []
    if JOURNALD_DROPINS.is_dir():
        files += sorted(JOURNALD_DROPINS.glob("*.conf"))
    if not files:
        return None
    found: dict[str, str] = {}
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^\s*(\w+)\s*=\s*(.*?)\s*$", text, re.MULTILINE):
            if m.group(1) in RETENTION_KEYS:
                found[m.group(1)] = m.group(2)
    return found


def section(ctx: ReportContext) -> list[str]:
    t = ctx.t
    c = ctx.config
    j = journald_settings()
    if j is None:
        journal = t(
            "이 호스트에 /etc/systemd/journald.conf 가 없습니다: journald 기본값을 따릅니다.",
            "No /etc/systemd/journald.conf on this host: journald's defaults apply.",
        )
    elif not j:
        journal = t(
            "journald.conf 에 보관 설정이 없습니다 (기본값: 영구 저장소 /var/log/journal 이 "
            "있으면 디스크의 10%, 최대 4 GiB까지; 기간 제한 없음).",
            "journald.conf sets no retention (defaults: with /var/log/journal, up to 10% of the "
            "disk, at most 4 GiB; no age limit).",
        )
    else:
        journal = (
            t("journald 보관 설정: ", "journald retention: ")
            + ", ".join(f"{k}={v}" for k, v in j.items())
            + "."
        )
    lines = [
        t(
            "- 무엇을: 경보 발생·해제, 알림 발송 결과, 복제·훈련 결과, 구성요소 오류. 로그 수준 "
            f"`{c.daemon.log_level}` (`[daemon] log_level`).",
            f"- What: alarms raised and cleared, alert delivery, replication and drill results, "
            f"component failures. Log level `{c.daemon.log_level}` (`[daemon] log_level`).",
        ),
        t(
            "- 어디에: 표준 출력 → systemd journald (`journalctl -u sentinel`).",
            "- Where: standard output → systemd journald (`journalctl -u sentinel`).",
        ),
        f"- {t('얼마나', 'How long')}: {journal}",
        t(
            f"- 상태 DB (`{c.daemon.state_dir}`): 센서 기록은 "
            f"{format_duration(c.alarms.history_keep)} 보관 (`[alarms] history_keep`).",
            f"- State database (`{c.daemon.state_dir}`): sensor history kept "
            f"{format_duration(c.alarms.history_keep)} (`[alarms] history_keep`).",
        ),
        t(
            "- 비밀 가림: 모든 로그 처리기에 마스킹 필터(sentinel/secrets.py, "
            "common/redaction.py)가 걸려 있습니다. "
            "설정의 비밀번호·Apprise URL·rsync 비밀번호는 정확한 문자열로 등록되어 어디에 나오든 "
            "`****` 로 바뀌고, "
            "URL의 `user:비밀번호@`, 토큰 모양의 경로, `?pass=`/`?token=` 값은 모양으로 "
            "가려집니다. "
            "예외 메시지와 스택도 같은 필터를 거칩니다.",
            "- Secrets masked: every log handler carries a masking filter (sentinel/secrets.py, "
            "common/redaction.py). The config's passwords, Apprise URLs and rsync passwords are "
            "registered as exact strings and replaced by `****` wherever they appear; "
            "`user:password@` in URLs, token-like path segments and `?pass=`/`?token=` values "
            "are masked by shape. Exception texts and stacks pass the same filter.",
        ),
    ]
    return lines
