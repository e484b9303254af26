"""The SQL side of the SMS-agent channel: queue-table layouts, presets and the INSERT.

Nothing here does I/O. Table and column names come from config, so each one is checked
against a plain-identifier pattern when the URL is loaded (anything else is refused there,
with the reason) and then quoted for the dialect; every value is a bound parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from alerts.templates import SMS_LIMIT_BYTES, sms_bytes

MYSQL = "mysql"
POSTGRES = "pg"
DIALECTS = (MYSQL, POSTGRES)

# Letters, digits, underscore (and `$` as MySQL allows), not starting with a digit; at most
# 63 characters (PostgreSQL's limit, under MySQL's 64). Nothing that needs quoting, so a
# name can never close its quotes.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
# The agents' subject columns are 40 to 120 bytes; 40 EUC-KR bytes fits all of them.
SUBJECT_BYTES = 40


class LayoutError(ValueError):
    """A queue-table layout that cannot be used (bad name, missing column)."""


def check_identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        shown = name if len(name) <= 70 else name[:67] + "..."
        raise LayoutError(
            f"{what} {shown!r} is not a plain SQL identifier (letters, digits and _, not "
            "starting with a digit, at most 63 characters)"
        )
    return name


def check_table(name: str, what: str = "table") -> str:
    """A table name, optionally schema-qualified (`agent.SC_TRAN`)."""
    parts = name.split(".")
    if len(parts) > 2:
        raise LayoutError(f"{what} {name!r} has more than one '.' (schema.table at most)")
    for part in parts:
        check_identifier(part, what)
    return name


def quote(name: str, dialect: str) -> str:
    """A checked identifier quoted for the dialect (each part of schema.table alone)."""
    mark = "`" if dialect == MYSQL else '"'
    return ".".join(f"{mark}{part}{mark}" for part in name.split("."))


@dataclass(frozen=True)
class Layout:
    """One queue table: where the recipient, text, caller number, request time and (for
    long messages) the subject go, plus fixed values the agent expects (status '0' ...)."""

    table: str
    to: str
    body: str
    sender: str | None = None
    time: str | None = None
    subject: str | None = None
    extras: tuple[tuple[str, str], ...] = field(default=())

    def checked(self, what: str) -> Layout:
        check_table(self.table, f"{what} table")
        named = [("to", self.to), ("body", self.body)]
        named += [(n, c) for n, c in (("from", self.sender), ("time", self.time)) if c]
        named += [("subject", self.subject)] if self.subject else []
        for role, column in named:
            check_identifier(column, f"{what} {role} column")
        for column, _ in self.extras:
            check_identifier(column, f"{what} fixed column")
        columns = [c.lower() for _, c in named] + [c.lower() for c, _ in self.extras]
        doubled = sorted({c for c in columns if columns.count(c) > 1})
        if doubled:
            raise LayoutError(f"{what} table: column {', '.join(doubled)} is set twice")
        return self

    def folded(self) -> Layout:
        """The names as an unquoted CREATE TABLE leaves them in PostgreSQL (lower case)."""

        def low(name: str | None) -> str | None:
            return name.lower() if name else name

        return Layout(
            self.table.lower(),
            self.to.lower(),
            self.body.lower(),
            low(self.sender),
            low(self.time),
            low(self.subject),
            tuple((c.lower(), v) for c, v in self.extras),
        )


@dataclass(frozen=True)
class Preset:
    description: str
    sms: Layout
    lms: Layout | None = None


# From the agents' published table definitions and integration examples (see
# docs/sms-agent.md). Fixed values are strings: the agents' status/type columns are CHAR(1)
# in most versions, and both servers convert a string for an integer column.
PRESETS: Mapping[str, Preset] = {
    "uplus": Preset(
        "LG U+ SMS agent (SC_TRAN for SMS, MMS_MSG for LMS)",
        Layout(
            "SC_TRAN",
            "TR_PHONE",
            "TR_MSG",
            "TR_CALLBACK",
            "TR_SENDDATE",
            extras=(("TR_SENDSTAT", "0"), ("TR_MSGTYPE", "0")),
        ),
        Layout(
            "MMS_MSG",
            "PHONE",
            "MSG",
            "CALLBACK",
            "REQDATE",
            "SUBJECT",
            extras=(("STATUS", "0"), ("TYPE", "0")),
        ),
    ),
    "emma": Preset(
        "Daou emma / DBro agent (em_tran, SMS only: its LMS needs a second table row)",
        Layout(
            "em_tran",
            "tran_phone",
            "tran_msg",
            "tran_callback",
            "tran_date",
            extras=(("tran_status", "1"), ("tran_type", "4")),
        ),
    ),
}


def pick(sms: Layout, lms: Layout | None, body: str) -> tuple[Layout, bool]:
    """The SMS table for a text that fits 90 EUC-KR bytes (or when there is no long table),
    else the long-message table."""
    if lms is not None and sms_bytes(body) > SMS_LIMIT_BYTES:
        return lms, True
    return sms, False


def insert(
    layout: Layout, dialect: str, *, to: str, body: str, sender: str | None, subject: str
) -> tuple[str, tuple[str, ...]]:
    """The INSERT for one recipient. The time column gets the database's own clock, so a
    skewed clock on our host can neither hold a page back nor date it in the past."""
    columns: list[str] = [layout.to, layout.body]
    values: list[str] = [to, body]
    if layout.sender:
        columns.append(layout.sender)
        values.append(sender or "")
    if layout.subject:
        columns.append(layout.subject)
        values.append(subject)
    for column, value in layout.extras:
        columns.append(column)
        values.append(value)
    marks = ["%s"] * len(values)
    if layout.time:
        columns.append(layout.time)
        marks.append("CURRENT_TIMESTAMP")
    names = ", ".join(quote(c, dialect) for c in columns)
    sql = f"INSERT INTO {quote(layout.table, dialect)} ({names}) VALUES ({', '.join(marks)})"
    return sql, tuple(values)


def fit(text: str, limit: int) -> str:
    """The text cut to `limit` EUC-KR bytes (the SMS table's limit when there is no long
    one: the agent or the carrier would cut it anyway, and a DB column might refuse it)."""
    if sms_bytes(text) <= limit:
        return text
    while text and sms_bytes(text + "…") > limit:
        text = text[:-1]
    return text + "…"


def with_overrides(layout: Layout | None, given: Mapping[str, str], what: str) -> Layout | None:
    """A layout with the URL's `table=`/`col_*=` values over the preset's (or built from
    them alone); None when neither gives a table."""
    table = given.get("table")
    if layout is None:
        if not table:
            return None
        missing = [k for k in ("col_to", "col_body") if not given.get(k)]
        if missing:
            raise LayoutError(f"{what} table {table!r} needs {' and '.join(missing)}=")
        layout = Layout(table, given["col_to"], given["col_body"])
    return replace(
        layout,
        table=table or layout.table,
        to=given.get("col_to") or layout.to,
        body=given.get("col_body") or layout.body,
        sender=given.get("col_from", layout.sender) or None,
        time=given.get("col_time", layout.time) or None,
        subject=given.get("col_subject", layout.subject) or None,
    )


def with_extras(layout: Layout, extras: Mapping[str, str]) -> Layout:
    """Fixed values from the URL added to (or replacing) the preset's, by column name."""
    if not extras:
        return layout
    kept = [(c, v) for c, v in layout.extras if c.lower() not in {k.lower() for k in extras}]
    return replace(layout, extras=(*kept, *extras.items()))
