"""`sentinel report runbook`: the recovery procedure (복구 절차서) as Markdown."""

from __future__ import annotations

from sentinel.report.context import ReportContext


def render(ctx: ReportContext) -> str:
    return f"# {ctx.t('복구 절차서', 'Recovery runbook')}\n\n{ctx.config_hash}\n"
