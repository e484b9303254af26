"""SMS through an on-premises SMS agent: one row per recipient in the agent's queue table.

Korean public offices often have no internet egress; their SMS leaves through an agent
(LG U+, emma/DBro, KT and others) that sends whatever is inserted into its queue table. This
channel is that INSERT, over a real database driver, as an Apprise plugin, so it has the
outbox, retries, status and routes of every other channel:

    smsagentmysql://user:pass@host:3306/database/01012345678/01098765432?preset=uplus&from=0212345678
    smsagentpg://user:pass@host:5432/database/01012345678?table=sms_queue&col_to=phone&col_body=msg

A committed INSERT is a delivery (the agent takes it from there); any database error is a
failure with the driver's reason (never the password), which the outbox retries. All the
recipients' rows go in one transaction: a failure leaves none of them, so the retry cannot
duplicate a row. One connection per send: pages are rare, and a held connection would only
go stale behind a firewall. The URL's options are described in docs/sms-agent.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextlib import closing
from typing import Any

from apprise import NotifyType
from apprise.plugins.base import NotifyBase
from apprise.url import PrivacyMode

from alerts import sms_agent_sql as sql
from alerts.templates import SMS_LIMIT_BYTES

MYSQL_SCHEME = "smsagentmysql"
PG_SCHEME = "smsagentpg"
SCHEMES = frozenset({MYSQL_SCHEME, PG_SCHEME})
DEFAULT_TIMEOUT = 5.0
# MariaDB's utf8mb4 carries every Korean character; an agent DB in EUC-KR says charset=euckr
CHARSETS = frozenset({"utf8mb4", "utf8", "euckr"})
_PHONE = re.compile(r"\+?[0-9][0-9-]{2,19}")
# query options (lower-cased by Apprise) this plugin reads; `:COL=v` / `:lms.COL=v` are the
# fixed values (Apprise keeps their case)
_LAYOUT_KEYS = ("table", "col_to", "col_body", "col_from", "col_time", "col_subject")
_OPTIONS = frozenset(
    {"preset", "from", "to", "timeout", "charset", *_LAYOUT_KEYS}
    | {f"lms_{k}" for k in _LAYOUT_KEYS}
)


class SmsAgentConfigError(ValueError):
    """The URL cannot describe a usable queue table (its text names no secret)."""


class Target:
    """What a URL asks for, checked: dialect, layouts, recipients, caller number."""

    def __init__(
        self,
        dialect: str,
        qsd: Mapping[str, str],
        extras: Mapping[str, str],
        path: str,
    ) -> None:
        self.dialect = dialect
        segments = [s for s in path.split("/") if s]
        if not segments:
            raise SmsAgentConfigError("the URL names no database (host/DATABASE/phone...)")
        self.database = segments[0]
        recipients = segments[1:] + [p for p in re.split(r"[,\s]+", qsd.get("to", "")) if p]
        bad = [n for n, p in enumerate(recipients, start=1) if not _PHONE.fullmatch(p)]
        if bad:
            # by position: the path is masked in every display of the URL
            raise SmsAgentConfigError(
                f"recipient {bad[0]} is not a phone number (digits, '-', a leading '+')"
            )
        if not recipients:
            raise SmsAgentConfigError("the URL names no recipient (host/database/PHONE...)")
        self.recipients = tuple(dict.fromkeys(recipients))
        unknown = sorted(k for k in qsd if k not in _OPTIONS and not k.startswith(":"))
        unknown = [k for k in unknown if k not in _APPRISE_OPTIONS]
        if unknown:
            raise SmsAgentConfigError(f"unknown option {unknown[0]}= (see docs/sms-agent.md)")
        self.sender = qsd.get("from") or None
        if self.sender and not _PHONE.fullmatch(self.sender):
            raise SmsAgentConfigError(f"from={self.sender!r} is not a phone number")
        self.preset_name = qsd.get("preset") or None
        self.timeout = _timeout(qsd.get("timeout"))
        self.charset = (qsd.get("charset") or "utf8mb4").lower()
        if self.charset not in CHARSETS:
            raise SmsAgentConfigError(f"charset={self.charset} (use {', '.join(sorted(CHARSETS))})")
        self.sms, self.lms = self._layouts(qsd, extras)
        if self.sms.sender and not self.sender:
            raise SmsAgentConfigError(
                f"the agent's table has a caller-number column ({self.sms.sender}): give "
                "from= (the office's registered number)"
            )

    def _layouts(
        self, qsd: Mapping[str, str], extras: Mapping[str, str]
    ) -> tuple[sql.Layout, sql.Layout | None]:
        preset: sql.Preset | None = None
        if self.preset_name:
            preset = sql.PRESETS.get(self.preset_name)
            if preset is None:
                raise SmsAgentConfigError(
                    f"preset={self.preset_name} is not known (known: {', '.join(sql.PRESETS)})"
                )
        base_sms = preset.sms if preset else None
        base_lms = preset.lms if preset else None
        if preset and self.dialect == sql.POSTGRES:
            # a preset's names as the agent's unquoted DDL leaves them in PostgreSQL
            base_sms = base_sms.folded() if base_sms else None
            base_lms = base_lms.folded() if base_lms else None
        try:
            sms = sql.with_overrides(base_sms, _given(qsd, ""), "SMS")
            lms = sql.with_overrides(base_lms, _given(qsd, "lms_"), "LMS")
            if sms is None:
                raise SmsAgentConfigError(
                    "give preset= (" + ", ".join(sql.PRESETS) + ") or table=, col_to= and col_body="
                )
            sms_extras = {k: v for k, v in extras.items() if not k.startswith("lms.")}
            lms_extras = {k[4:]: v for k, v in extras.items() if k.startswith("lms.")}
            if lms_extras and lms is None:
                raise SmsAgentConfigError(":lms.COLUMN= given but no LMS table (lms_table=)")
            sms = sql.with_extras(sms, sms_extras).checked("SMS")
            lms = sql.with_extras(lms, lms_extras).checked("LMS") if lms else None
        except sql.LayoutError as exc:
            raise SmsAgentConfigError(str(exc)) from None
        return sms, lms

    def rows(self, title: str, body: str) -> list[tuple[str, tuple[str, ...]]]:
        """Every INSERT for one message: one per recipient, in the table its length picks."""
        if self.charset == "euckr":
            # a character EUC-KR lacks (an emoji) would fail the insert on every retry
            title, body = _euckr(title), _euckr(body)
        text = f"{title} {body}" if title else body
        layout, long = sql.pick(self.sms, self.lms, text)
        if long:
            subject, text = sql.fit(title, sql.SUBJECT_BYTES) if title else "", body
        else:
            subject, text = "", sql.fit(text, SMS_LIMIT_BYTES)
        return [
            sql.insert(layout, self.dialect, to=r, body=text, sender=self.sender, subject=subject)
            for r in self.recipients
        ]


_APPRISE_OPTIONS = frozenset(
    {"format", "overflow", "emojis", "tz", "store", "retry", "wait", "optional", "cto", "rto"}
)


def _euckr(text: str) -> str:
    return text.encode("euc-kr", "replace").decode("euc-kr")


def _given(qsd: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {k: qsd[prefix + k] for k in _LAYOUT_KEYS if prefix + k in qsd}


def _timeout(text: str | None) -> float:
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.5 <= value <= 60:
        raise SmsAgentConfigError(f"timeout={text} (seconds, 0.5 to 60)")
    return value


def refusal(url: str) -> str | None:
    """Why a smsagent URL cannot be loaded, in words without its secrets; None if it can
    (or is not ours). Apprise only logs that it skipped a URL, not why."""
    results = NotifyBase.parse_url(url)
    if not results or results.get("schema") not in SCHEMES:
        return None
    try:
        _target(results)
    except SmsAgentConfigError as exc:
        return str(exc)
    return None


def _target(results: Mapping[str, Any]) -> Target:
    if not results.get("host"):
        raise SmsAgentConfigError("the URL names no database host")
    dialect = sql.MYSQL if results["schema"] == MYSQL_SCHEME else sql.POSTGRES
    return Target(
        dialect,
        dict(results.get("qsd") or {}),
        dict(results.get("qsd:") or {}),
        NotifyBase.unquote(results.get("fullpath") or ""),
    )


class _SmsAgent(NotifyBase):
    """Common to both dialects; a subclass names its scheme, port and driver."""

    default_port = 0
    # a long page goes to the long-message table whole; Apprise must not split it
    body_maxlen = 2000
    title_maxlen = 250
    request_rate_per_sec = 0
    templates = ("{schema}://{user}:{password}@{host}:{port}/{database}/{targets}",)  # type: ignore[assignment]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        try:
            self.target = _target(kwargs)
        except SmsAgentConfigError as exc:
            # Apprise logs that the URL was skipped; channels.py asks `refusal` for why
            self.logger.warning("SMS agent URL refused: %s", exc)
            raise TypeError(str(exc)) from None
        self._qsd = {k: v for k, v in kwargs.get("qsd", {}).items() if k in _OPTIONS}
        self._extras = dict(kwargs.get("qsd:", {}))

    def url(self, privacy: bool = False, *args: Any, **kwargs: Any) -> str:
        params = dict(self._qsd)
        params.update({f":{k}": v for k, v in self._extras.items()})
        params.update(self.url_parameters(*args, privacy=privacy, **kwargs))
        auth = ""
        if self.user:
            auth = self.quote(self.user, safe="")
            if self.password:
                secret = self.pprint(self.password, privacy, mode=PrivacyMode.Secret, safe="")
                auth += f":{secret}"
            auth += "@"
        port = f":{self.port}" if self.port else ""
        path = "/".join(
            self.quote(p, safe="") for p in (self.target.database, *self.target.recipients)
        )
        return f"{self.secure_protocol}://{auth}{self.host}{port}/{path}?{self.urlencode(params)}"

    def __len__(self) -> int:
        return len(self.target.recipients)

    def send(
        self, body: str, title: str = "", notify_type: NotifyType = NotifyType.INFO, **kwargs: Any
    ) -> bool:
        rows = self.target.rows(title, body)
        try:
            self._insert(rows)
        except Exception as exc:
            reason = self._clean(f"{type(exc).__name__}: {exc}")
            self.logger.warning(
                "SMS agent at %s:%s: insert failed: %s",
                self.host,
                self.port or self.default_port,
                reason,
            )
            return False
        self.logger.info(
            "SMS agent: %d row(s) queued in %s", len(rows), rows[0][0].split(" (", 1)[0]
        )
        return True

    def _clean(self, text: str) -> str:
        # drivers do not print the password, but a wrapped error might carry the DSN
        for secret in {self.password, self.quote(self.password or "", safe="")}:
            if secret:
                text = text.replace(secret, "****")
        return " ".join(text.split())

    def _insert(self, rows: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        raise NotImplementedError


_STRICT = (
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')"
)


class SmsAgentMySQL(_SmsAgent):
    service_name = "SMS agent (MySQL/MariaDB)"  # type: ignore[assignment]
    secure_protocol = MYSQL_SCHEME  # type: ignore[assignment]
    default_port = 3306

    def _insert(self, rows: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        import pymysql  # only a site with this channel needs the driver loaded

        timeout = self.target.timeout
        connection = pymysql.connect(
            host=self.host,
            port=self.port or self.default_port,
            user=self.user or "",
            password=self.password or "",
            database=self.target.database,
            charset=self.target.charset,
            connect_timeout=max(1, round(timeout)),
            read_timeout=timeout,
            write_timeout=timeout,
            autocommit=False,
            # a lax server (sql_mode '', common on old agent hosts) cuts a text too long for
            # its column and stores Korean a latin1 column cannot hold as '?': the page
            # would count as sent, mangled. Strict, either is an error the operator sees.
            init_command=_STRICT,
        )
        with closing(connection):
            with connection.cursor() as cursor:
                for statement, values in rows:
                    cursor.execute(statement, values)
            connection.commit()


class SmsAgentPostgres(_SmsAgent):
    service_name = "SMS agent (PostgreSQL)"  # type: ignore[assignment]
    secure_protocol = PG_SCHEME  # type: ignore[assignment]
    default_port = 5432

    def _insert(self, rows: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        import psycopg

        timeout = self.target.timeout
        with (
            psycopg.connect(
                host=self.host,
                port=self.port or self.default_port,
                user=self.user or "",
                password=self.password or "",
                dbname=self.target.database,
                # libpq counts whole seconds, at least 2
                connect_timeout=max(2, round(timeout)),
                application_name="sentinel",
                options=f"-c statement_timeout={int(timeout * 1000)}",
            ) as connection,
            connection.cursor() as cursor,
        ):
            # an EUC_KR agent database refuses a character EUC-KR lacks (an emoji) on every
            # retry, whether or not the URL said charset=euckr: the server says what it is
            euckr = connection.info.parameter_status("server_encoding") == "EUC_KR"
            # the connection's block commits on success and rolls back on any error
            for statement, values in rows:
                if euckr:
                    values = tuple(_euckr(v) if isinstance(v, str) else v for v in values)
                cursor.execute(statement, values)
