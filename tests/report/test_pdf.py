"""The report PDF: markdown-it-py renders the Markdown, Debian's chromium prints it. One real
chromium run for the module; a converter that fails is a fake chromium (a shell script), so
its stderr can be checked in the error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sentinel.report import pdf

MARKDOWN = """\
# 보안성 검토 자료: OO군청 전산실

| 구분 | 목적지 | 암호화 |
|---|---|---|
| 복제 | backup.example:22 | ssh |

**저장 시 암호화: sentinel은 복제본을 암호화하지 않습니다.**
"""


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    if pdf.converter() is None:
        pytest.skip("no chromium on this host (scripts/setup.sh installs it)")
    out = tmp_path_factory.mktemp("pdf") / "deep" / "security.pdf"
    return pdf.to_pdf(MARKDOWN, "보안성 검토 자료", out), out


def test_converter_names_chromium_and_its_version(printed: tuple[str, Path]) -> None:
    name, _ = printed
    assert re.fullmatch(r"chromium \d+(\.\d+)+", name), name


def test_a_real_pdf_with_the_hangul_font(printed: tuple[str, Path]) -> None:
    _, out = printed
    data = out.read_bytes()
    assert data[:5] == b"%PDF-"
    # chromium embeds only the fonts it laid glyphs out with: a Korean page without a CJK
    # font would show boxes and embed none
    assert re.search(rb"/FontName /[A-Z]{6}\+NotoSansCJKkr", data)
    assert oct(out.stat().st_mode & 0o777) == "0o640"
    assert not list(out.parent.glob(".*"))  # no staged file left behind


def test_tables_become_html_tables() -> None:
    page = pdf.to_html(MARKDOWN, "<제목>")
    assert "<table>" in page and "<td>backup.example:22</td>" in page
    assert "<title>&lt;제목&gt;</title>" in page
    assert 'charset="utf-8"' in page


def test_a_failing_converter_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "chromium"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "Chromium 120.0.1 built on Debian"; '
        'exit 0; fi\necho "ERROR: cannot open display: the sandbox ran out" >&2\nexit 21\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("SENTINEL_CHROMIUM", str(fake))
    assert pdf.converter() == "chromium 120.0.1"
    out = tmp_path / "x.pdf"
    with pytest.raises(pdf.PdfError, match=r"exited 21: .*the sandbox ran out"):
        pdf.to_pdf(MARKDOWN, "t", out)
    assert not out.exists()


def test_no_converter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_CHROMIUM", str(tmp_path / "absent"))
    assert pdf.converter() is None
    with pytest.raises(pdf.PdfError, match="no PDF converter"):
        pdf.to_pdf(MARKDOWN, "t", tmp_path / "x.pdf")


def test_masked_secrets_print_as_stars_not_markup() -> None:
    """`****` in a cell is the mask, not bold: printed, the reviewer must see it."""
    from sentinel.report.table import table

    rows = [["tgram://****/****", "mailtos://it-staff:****@mail.example/****", "deny = *"]]
    markdown = "\n".join(table(["a", "b", "c"], rows)) + "\n\n`/srv/x_y*` stays code\n"
    page = pdf.to_html(markdown, "t")
    assert "<td>tgram://****/****</td>" in page
    assert "<td>mailtos://it-staff:****@mail.example/****</td>" in page
    assert "<td>deny = *</td>" in page
    assert "<strong>" not in page and "<em>" not in page
    assert "<code>/srv/x_y*</code>" in page
