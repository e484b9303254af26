"""`sentinel report security`: the security-review pack (보안성 검토) as Markdown."""

from __future__ import annotations

from sentinel.report.context import ReportContext
from sentinel.report.findings import findings
from sentinel.report.flows import flows


def render(ctx: ReportContext) -> str:
    found = flows(ctx)
    lines = [f"# {ctx.t('보안성 검토 자료', 'Security review')}", "", ctx.config_hash, ""]
    lines += ["| part | name | source | destination | port | protocol | encrypted | auth |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for f in found:
        lines.append(
            f"| {f.part} | {f.name} | {f.source} | {f.destination} | {f.port or ''} | "
            f"{f.protocol} | {f.encryption} | {f.auth} |"
        )
    for finding in findings(ctx, found):
        lines.append(f"- {finding.severity}: {finding.config_key}: {finding.problem} {finding.fix}")
    return "\n".join(lines) + "\n"
