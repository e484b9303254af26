"""`sentinel report security|runbook`: the paperwork, generated from the config as loaded.

Each document is Markdown (and PDF when the host has a converter: sentinel/report/pdf.py),
written under `[reports] dir` (default <state_dir>/reports) with the time in its name, or to
--output. Every run is recorded in the state database with the config's fingerprint, so
`sentinel status` can warn when the printed copy no longer matches the config.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from backup.keeper_record import write_atomic
from sentinel import migrations
from sentinel.cli.common import load_or_exit
from sentinel.config import Config, config_path
from sentinel.report import pdf, record, runbook, security
from sentinel.report.context import Lang, ReportContext
from sentinel.report.fingerprint import config_hash
from sentinel.store import Store, open_readonly

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
RENDERERS: dict[record.Kind, Callable[[ReportContext], str]] = {
    "security": security.render,
    "runbook": runbook.render,
}
TITLES = {
    "security": ("보안성 검토 자료", "Security review"),
    "runbook": ("복구 절차서", "Recovery runbook"),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `report security` and `report runbook`."""
    p = sub.add_parser("report", help="write the security-review pack or the recovery runbook")
    rsub = p.add_subparsers(dest="report_kind", metavar="REPORT")
    s = rsub.add_parser(
        "security",
        help="security-review pack (보안성 검토): flows, accounts, files, hardening, data, "
        "logging, findings",
    )
    r = rsub.add_parser(
        "runbook",
        help="recovery runbook (복구 절차서): who is paged, where the copy is, restore commands",
    )
    r.add_argument(
        "--restore-dir",
        help="where the runbook's commands restore to (default: [reports] restore_dir)",
    )
    for q, kind in ((s, "security"), (r, "runbook")):
        q.add_argument("--lang", choices=("ko", "en"), help="default: [reports] lang (ko)")
        q.add_argument(
            "-o",
            "--output",
            help="the Markdown file to write, or - for stdout "
            "(default: <[reports] dir>/<report>-<time>.md)",
        )
        q.add_argument(
            "--pdf",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="also write a PDF beside the Markdown (default: when a converter is present)",
        )
        q.set_defaults(func=_run, report=kind)


def _run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    kind: record.Kind = args.report
    lang: Lang = args.lang or config.reports.lang
    now = time.time()
    digest = config_hash(config)
    restore_dir = Path(getattr(args, "restore_dir", None) or config.reports.restore_dir).absolute()
    state = _open_state(config)
    try:
        ctx = ReportContext(
            config=config,
            config_path=config_path(getattr(args, "config", None)).absolute(),
            config_hash=digest,
            generated=now,
            lang=lang,
            state=state,
            restore_dir=restore_dir,
        )
        text = RENDERERS[kind](ctx)
    finally:
        if state is not None:
            state.close()
    written: list[str] = []
    if args.output and args.output != "-" and Path(args.output).suffix.lower() == ".pdf":
        # the Markdown would be written under that name and the PDF over it
        print(
            "sentinel: --output names the Markdown file (the PDF is written beside it as .pdf)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.output == "-":
        if args.pdf:
            print("sentinel: --pdf needs a file (--output FILE), not stdout", file=sys.stderr)
            return EXIT_USAGE
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        out = _output_path(config, kind, args.output, now)
        try:
            _write(out, text)
        except OSError as exc:
            print(f"sentinel: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILURE
        written.append(str(out))
        print(f"{kind}: {out}")
        failed = _pdf(args.pdf, text, TITLES[kind][lang == "en"], out, written)
        if failed:
            # the Markdown is current and may be printed: status must not call it stale
            _record(config, kind, now, digest, lang, written)
            return failed
    return _record(config, kind, now, digest, lang, written)


def _pdf(wanted: bool | None, text: str, title: str, out: Path, written: list[str]) -> int:
    """The PDF beside `out` (None: only when a converter is present)."""
    if wanted is False:
        return EXIT_OK
    name = pdf.converter()
    if name is None:
        if wanted:
            print(
                "sentinel: no PDF converter on this host (see docs/reports.md); "
                "the Markdown was written",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        print("pdf: no converter on this host; Markdown only (docs/reports.md)")
        return EXIT_OK
    target = out.with_suffix(".pdf")
    try:
        used = pdf.to_pdf(text, title, target)
    except pdf.PdfError as exc:
        print(f"sentinel: PDF not written: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    written.append(str(target))
    print(f"pdf: {target} ({used})")
    return EXIT_OK


def _record(
    config: Config, kind: record.Kind, now: float, digest: str, lang: str, written: list[str]
) -> int:
    """Notes the report in the state database; a report that cannot be noted is said so
    (status would keep warning that the printed copy is stale)."""

    async def save() -> None:
        store = await Store.open(config.daemon.state_dir)
        try:
            await migrations.migrate(store)
            await record.save_report(store.write, kind, now, digest, lang, written)
        finally:
            await store.close()

    try:
        asyncio.run(save())
    except (OSError, sqlite3.Error) as exc:
        print(
            f"sentinel: the report was written but not recorded in {config.daemon.state_dir} "
            f"({exc}); status will not know it is current",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


def _open_state(config: Config) -> sqlite3.Connection | None:
    try:
        return open_readonly(config.daemon.state_dir)
    except sqlite3.Error:  # a report without drill records says so
        return None


def _output_path(config: Config, kind: str, output: str | None, now: float) -> Path:
    if output:
        return Path(output)
    directory = config.reports.dir or config.daemon.state_dir / "reports"
    stamp = datetime.fromtimestamp(now).strftime("%Y%m%d-%H%M%S")
    return directory / f"{kind}-{stamp}.md"


def _write(path: Path, text: str) -> None:
    """Whole or not at all; 0640: the pack maps the network and names its accounts."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    write_atomic(path, text, mode=0o640)
