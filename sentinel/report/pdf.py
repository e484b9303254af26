"""Markdown to PDF, when a converter is present on the host: markdown-it-py renders HTML,
Debian's chromium prints it (headless --print-to-pdf; fonts-noto-cjk gives it Hangul)."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from markdown_it import MarkdownIt

# chromium may be named either way; SENTINEL_CHROMIUM wins (tests/web do the same)
CANDIDATES = ("chromium", "chromium-browser")
TIMEOUT = 120.0
STDERR_TAIL = 800

# A4 paper, a readable body font, tables that fit the page and break between rows.
CSS = """
@page { size: A4; margin: 16mm 14mm; }
body { font-family: "Noto Sans CJK KR", "Noto Sans KR", sans-serif; font-size: 10pt;
       line-height: 1.45; }
h1 { font-size: 17pt; } h2 { font-size: 13pt; margin-top: 1.4em; } h3 { font-size: 11pt; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; font-size: 8.5pt; }
th, td { border: 1px solid #888; padding: 2px 4px; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #eee; } tr { break-inside: avoid; }
code { font-family: "Noto Sans Mono CJK KR", monospace; font-size: 8.5pt;
       overflow-wrap: anywhere; }
"""


class PdfError(Exception):
    """The converter is present but failed; the message says why."""


def _chromium() -> str | None:
    explicit = os.environ.get("SENTINEL_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def converter() -> str | None:
    """The converter this host has, "chromium <version>" (None: none; the Markdown is still
    written)."""
    exe = _chromium()
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.split()
    version = next((w for w in words if w[:1].isdigit()), "?")
    return f"chromium {version}" if done.returncode == 0 else None


def to_html(markdown: str, title: str) -> str:
    # no raw HTML: a name, a path or an error text (a file name in the store) holding
    # <iframe src="file:///etc/...">  would be loaded by chromium and printed in the PDF
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (
        '<!doctype html><html lang="ko"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


def to_pdf(markdown: str, title: str, out: Path) -> str:
    """Writes `out`; returns the converter's name. Raises PdfError."""
    name = converter()
    exe = _chromium()
    if name is None or exe is None:
        raise PdfError("no PDF converter (install Debian's chromium and fonts-noto-cjk)")
    with tempfile.TemporaryDirectory(prefix="sentinel-pdf-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(to_html(markdown, title), encoding="utf-8")
        pdf = Path(tmp) / "report.pdf"
        cmd = [
            exe,
            "--headless",
            # root (a container, the installer) cannot use chromium's sandbox; the page is
            # our own HTML with no script and no network
            *(["--no-sandbox"] if os.geteuid() == 0 else []),
            "--disable-gpu",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={tmp}/profile",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise PdfError(f"chromium did not finish within {TIMEOUT:.0f}s") from exc
        except OSError as exc:
            raise PdfError(f"chromium could not start: {exc.strerror or exc}") from exc
        if done.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
            tail = (done.stderr or "").strip()[-STDERR_TAIL:]
            raise PdfError(f"chromium exited {done.returncode}: {tail or 'no output'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        # whole or not at all, 0640 like the Markdown beside it
        staged = out.with_name(f".{out.name}.tmp")
        shutil.copyfile(pdf, staged)
        os.chmod(staged, 0o640)
        os.replace(staged, out)
    return name
