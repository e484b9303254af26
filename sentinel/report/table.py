"""Markdown tables for the printed reports. A cell is text, never markup: a masked secret
(`tgram://****/****`) would otherwise print as bold nothing, and a `|` would split the
column. What the report itself puts in backticks stays a code span."""

from __future__ import annotations

import re
from collections.abc import Sequence

# what CommonMark (with tables) reads as markup in running text: emphasis, raw HTML and
# autolinks, the column bar, the escape itself; `_` only where it may open or close emphasis
# (never inside a word: /etc/sentinel/id_ed25519 stays as typed)
_SPECIAL = re.compile(r"([\\*<|]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_CODE = re.compile(r"(`[^`]*`)")


def cell(value: object) -> str:
    text = "" if value is None else str(value).replace("\n", " ")
    parts = _CODE.split(text)
    # odd parts are code spans: markup is literal there already; only `|` must be escaped
    return "".join(
        part.replace("|", "\\|") if i % 2 else _SPECIAL.sub(r"\\\1", part)
        for i, part in enumerate(parts)
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines
