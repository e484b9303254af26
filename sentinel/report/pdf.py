"""Markdown to PDF, when a converter is present on the host."""

from __future__ import annotations

from pathlib import Path


class PdfError(Exception):
    """The converter is present but failed; the message says why."""


def converter() -> str | None:
    """The converter this host has (None: none; the Markdown is still written)."""
    return None


def to_pdf(markdown: str, title: str, out: Path) -> str:
    """Writes `out`; returns the converter's name. Raises PdfError."""
    raise PdfError("no PDF converter")
