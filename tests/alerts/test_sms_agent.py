"""The SMS-agent channel against real MariaDB and PostgreSQL servers, through the real
Sender, Outbox and SQLite store: a page becomes one queue-table row per recipient."""

from __future__ import annotations

import itertools
import json
import logging
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.channels import ChannelConfigError, load_channels
from alerts.status import read_status
from sentinel.store import Store
from tests.alerts.helpers import enqueue, event, make_delivery, rows, running, write_apprise
from tests.fixtures.databases import MariaDB, Postgres
from tests.fixtures.poll import until

PASSWORD = "Ag3ntPw0rdX9"
PHONES = ("01012345678", "010-9876-5432")
CALLER = "0212345678"
HOSTILE = '전산실\'); DROP TABLE SC_TRAN; -- "q" \\ `b` %s ;'
_numbers = itertools.count(1)

UPLUS_MYSQL = [
    """CREATE TABLE SC_TRAN (
        TR_NUM BIGINT AUTO_INCREMENT PRIMARY KEY,
        TR_SENDDATE DATETIME NOT NULL,
        TR_ID VARCHAR(16),
        TR_SENDSTAT VARCHAR(1) NOT NULL DEFAULT '0',
        TR_RSLTSTAT VARCHAR(2) DEFAULT '00',
        TR_MSGTYPE VARCHAR(1) NOT NULL DEFAULT '0',
        TR_PHONE VARCHAR(20) NOT NULL,
        TR_CALLBACK VARCHAR(20),
        TR_RSLTDATE DATETIME,
        TR_MSG VARCHAR(160),
        TR_NET VARCHAR(4)
    ) DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE MMS_MSG (
        MSGKEY BIGINT AUTO_INCREMENT PRIMARY KEY,
        SUBJECT VARCHAR(120),
        PHONE VARCHAR(15) NOT NULL,
        CALLBACK VARCHAR(15) NOT NULL,
        STATUS VARCHAR(2) NOT NULL DEFAULT '0',
        REQDATE DATETIME NOT NULL,
        MSG VARCHAR(4000),
        FILE_CNT INT DEFAULT 0,
        TYPE VARCHAR(2) NOT NULL DEFAULT '0'
    ) DEFAULT CHARSET=utf8mb4""",
]


def _mysql_agent_db(server: MariaDB, tables: list[str], grant_on: tuple[str, ...]) -> str:
    """A fresh database with the agent's tables and an account that may only INSERT into
    the queue tables (the grant docs/sms-agent.md asks for)."""
    n = next(_numbers)
    db, user = f"agent{n}", f"sentinel{n}"
    server.execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
    server.execute(tables, db)
    server.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
    for table in grant_on:
        server.execute(f"GRANT INSERT ON {db}.{table} TO '{user}'@'127.0.0.1'")
    return f"smsagentmysql://{user}:{PASSWORD}@127.0.0.1:{server.port}/{db}"


def _pg_agent_db(server: Postgres, tables: list[str], grant_on: tuple[str, ...]) -> str:
    n = next(_numbers)
    db, user = f"agent{n}", f"sentinel{n}"
    server.execute(f"CREATE DATABASE {db} ENCODING 'UTF8'")
    server.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'")
    server.execute(tables, db)
    for table in grant_on:
        server.execute(f"GRANT INSERT ON {table} TO {user}", db)
        # a serial column's sequence is used by the INSERT too
        server.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {user}", db)
    return f"smsagentpg://{user}:{PASSWORD}@127.0.0.1:{server.port}/{db}"


def _status(store: Store) -> dict[str, object]:
    conn = sqlite3.connect(store.path)
    try:
        return read_status(conn, 0.0)
    finally:
        conn.close()


async def test_uplus_preset_short_page_to_sc_tran_long_page_to_mms_msg(
    store: Store, mariadb: MariaDB, tmp_path: Path
):
    base = _mysql_agent_db(mariadb, UPLUS_MYSQL, ("SC_TRAN", "MMS_MSG"))
    targets = "/".join(PHONES)
    url = f"{base}/{targets}?preset=uplus&from={CALLER}"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, ["critical"]), (url, ["critical", "lms"])])
    outbox, sender = await make_delivery(store, yml)
    async with running(sender):
        await enqueue(store, outbox, event("A7F3"))
        await until(lambda: sender.health()["sent"] == 2, 20, "both channels sent")
    db = base.rsplit("/", 1)[1]
    sms = mariadb.query(
        "SELECT TR_PHONE, TR_CALLBACK, TR_SENDSTAT, TR_MSGTYPE, TR_MSG, TR_SENDDATE IS NOT NULL "
        "FROM SC_TRAN ORDER BY TR_NUM",
        db,
    )
    assert [r[0] for r in sms] == list(PHONES)  # one row per recipient
    for _, caller, sendstat, msgtype, text, dated in sms:
        assert (caller, sendstat, msgtype, dated) == (CALLER, "0", "0", 1)
        assert "#A7F3" in text and "누수" in text and "전산실 UPS 하단" in text
        assert len(text.encode("euc-kr")) <= 90  # the SMS form
    lms = mariadb.query(
        "SELECT PHONE, CALLBACK, STATUS, TYPE, SUBJECT, MSG FROM MMS_MSG ORDER BY MSGKEY", db
    )
    assert [r[0] for r in lms] == list(PHONES)
    for _, caller, status, kind, subject, text in lms:
        assert (caller, status, kind) == (CALLER, "0", "0")
        assert subject and "누수" in text and "#A7F3" in text
        assert len(text.encode("euc-kr")) > 90  # long enough that only LMS carries it whole
    assert await rows(store, "SELECT state FROM outbox_message") == [("sent",), ("sent",)]


async def test_agent_db_down_retried_and_delivered_once_when_back(
    store: Store, mariadb: MariaDB, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    base = _mysql_agent_db(mariadb, UPLUS_MYSQL[:1], ("SC_TRAN",))
    db = base.rsplit("/", 1)[1]
    yml = write_apprise(
        tmp_path / "apprise.yml", [(f"{base}/{PHONES[0]}?preset=uplus&from={CALLER}", [])]
    )
    outbox, sender = await make_delivery(store, yml, retry_max=0.5)
    mariadb.stop()
    try:
        async with running(sender):
            await enqueue(store, outbox, event("D0A1"))
            await until(lambda: sender.health()["failed_sends"] >= 3, 20, "3 failed sends")
            channel = _status(store)["channels"][0]  # type: ignore[index]
            assert channel["sent"] == 0
            assert "Can't connect" in channel["last_error"]  # the driver's reason
            assert PASSWORD not in json.dumps(channel)
            assert await rows(store, "SELECT state FROM outbox_message") == [("pending",)]
            mariadb.start()
            await until(lambda: sender.health()["sent"] == 1, 20, "sent once the DB is back")
    finally:
        mariadb.start()
    got = mariadb.query("SELECT TR_PHONE, TR_MSG FROM SC_TRAN", db)
    assert len(got) == 1  # exactly one row: the failed attempts left nothing behind
    assert got[0][0] == PHONES[0] and "#D0A1" in got[0][1]
    assert PASSWORD not in caplog.text


async def test_missing_table_or_grant_fails_clearly_and_keeps_the_page(
    store: Store, mariadb: MariaDB, tmp_path: Path
):
    # the account may insert into SC_TRAN only; the long page needs MMS_MSG, which is absent
    base = _mysql_agent_db(mariadb, UPLUS_MYSQL[:1], ("SC_TRAN",))
    url = f"{base}/{PHONES[0]}?preset=uplus&from={CALLER}"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, ["critical", "lms"])])
    outbox, sender = await make_delivery(store, yml, retry_max=0.5)
    async with running(sender):
        await enqueue(store, outbox, event("E001"))
        await until(lambda: sender.health()["failed_sends"] >= 2, 20, "2 failed sends")
    error = _status(store)["channels"][0]["last_error"]  # type: ignore[index]
    assert "MMS_MSG" in error and "denied" in error
    assert await rows(store, "SELECT state FROM outbox_message") == [("pending",)]


@pytest.mark.parametrize(
    ("column", "shown"),
    [
        ("msg VARCHAR(200) CHARACTER SET latin1", "Incorrect string value"),
        ("msg VARCHAR(12) CHARACTER SET utf8mb4", "Data too long for column 'msg'"),
    ],
    ids=["latin1-column", "short-column"],
)
async def test_a_lax_agent_server_does_not_mangle_the_page_into_a_delivery(
    store: Store, mariadb: MariaDB, tmp_path: Path, column: str, shown: str
):
    # an old agent host with sql_mode '' stores Korean in a latin1 column as '?' and cuts
    # a text too long for its column, with a warning only: that must not count as sent
    table = f"CREATE TABLE q (id INT AUTO_INCREMENT PRIMARY KEY, dest VARCHAR(20), {column})"
    base = _mysql_agent_db(mariadb, [table], ("q",))
    db = base.rsplit("/", 1)[1]
    url = f"{base}/{PHONES[0]}?table=q&col_to=dest&col_body=msg"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, [])])
    outbox, sender = await make_delivery(store, yml, retry_max=0.3)
    [(mode,)] = mariadb.query("SELECT @@GLOBAL.sql_mode")
    mariadb.execute("SET GLOBAL sql_mode = ''")
    try:
        async with running(sender):
            await enqueue(store, outbox, event("LAX1"))
            await until(lambda: sender.health()["failed_sends"] >= 2, 20, "2 failed sends")
    finally:
        mariadb.execute(f"SET GLOBAL sql_mode = '{mode}'")
    assert mariadb.query("SELECT count(*) FROM q", db) == [(0,)]
    assert shown in _status(store)["channels"][0]["last_error"]  # type: ignore[index]
    assert await rows(store, "SELECT state FROM outbox_message") == [("pending",)]


async def test_a_column_too_short_for_the_lms_fails_that_channel_only(
    store: Store, mariadb: MariaDB, tmp_path: Path
):
    # the agent's long-message column is narrower than an LMS: every retry fails the same
    # way. The page must still go out through the other channel, and the operator must
    # read which column is at fault
    table = "CREATE TABLE q (id INT AUTO_INCREMENT PRIMARY KEY, dest VARCHAR(20), msg VARCHAR(60))"
    base = _mysql_agent_db(mariadb, [table], ("q",))
    db = base.rsplit("/", 1)[1]
    agent = f"{base}/{PHONES[0]}?table=q&col_to=dest&col_body=msg"
    copy = tmp_path / "pages.txt"
    yml = write_apprise(
        tmp_path / "apprise.yml", [(agent, ["critical", "lms"]), (f"sentinelfile://{copy}", [])]
    )
    outbox, sender = await make_delivery(store, yml, retry_max=0.3)
    async with running(sender):
        await enqueue(store, outbox, event("LMS9"))
        await until(lambda: sender.health()["failed_sends"] >= 3, 20, "3 failed sends")
        await until(lambda: sender.health()["sent"] == 1, 20, "the file channel sent")
    assert "#LMS9" in copy.read_text("utf-8")
    assert mariadb.query("SELECT count(*) FROM q", db) == [(0,)]
    failing = [c for c in _status(store)["channels"] if c["last_error"]]  # type: ignore[attr-defined]
    assert len(failing) == 1 and "Data too long for column 'msg'" in failing[0]["last_error"]
    assert sorted(await rows(store, "SELECT state FROM outbox_message")) == [
        ("pending",),
        ("sent",),
    ]


async def test_a_locked_queue_table_fails_within_the_timeout_and_leaves_one_row(
    store: Store, mariadb: MariaDB, tmp_path: Path
):
    # the agent holds the table (a long batch UPDATE): the insert waits for the lock past
    # the channel's timeout. The abandoned insert must not commit behind sentinel's back,
    # or the retry would queue the page twice
    table = "CREATE TABLE q (id INT AUTO_INCREMENT PRIMARY KEY, dest VARCHAR(20), msg TEXT)"
    base = _mysql_agent_db(mariadb, [table], ("q",))
    db = base.rsplit("/", 1)[1]
    url = f"{base}/{PHONES[0]}?table=q&col_to=dest&col_body=msg&timeout=1"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, [])])
    outbox, sender = await make_delivery(store, yml, send_timeout=20.0, retry_initial=0.5)
    holder = mariadb.admin(db)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLES q WRITE")
        async with running(sender):
            await enqueue(store, outbox, event("LCK1"))
            await until(lambda: sender.health()["failed_sends"] >= 1, 15, "a failed send")
            error = _status(store)["channels"][0]["last_error"]  # type: ignore[index]
            with holder.cursor() as cursor:
                cursor.execute("UNLOCK TABLES")
            await until(lambda: sender.health()["sent"] == 1, 20, "sent once unlocked")
    finally:
        holder.close()
    assert "timed out" in error or "Lost connection" in error, error
    assert [r[0] for r in mariadb.query("SELECT dest FROM q", db)] == [PHONES[0]]


async def test_hostile_text_is_stored_verbatim_with_configured_columns(
    store: Store, mariadb: MariaDB, postgres: Postgres, tmp_path: Path
):
    my = _mysql_agent_db(
        mariadb,
        [
            "CREATE TABLE sms_queue (id INT AUTO_INCREMENT PRIMARY KEY, dest VARCHAR(20), "
            "text VARCHAR(2000), prio INT NOT NULL, queued DATETIME) DEFAULT CHARSET=utf8mb4"
        ],
        ("sms_queue",),
    )
    pg = _pg_agent_db(
        postgres,
        [
            'CREATE TABLE "SmsQueue" (id SERIAL PRIMARY KEY, dest TEXT NOT NULL, '
            "text TEXT NOT NULL, prio INT NOT NULL, queued TIMESTAMP NOT NULL)"
        ],
        ('"SmsQueue"',),
    )
    query = "col_to=dest&col_body=text&col_time=queued&:prio=7"
    yml = write_apprise(
        tmp_path / "apprise.yml",
        [
            (f"{my}/{PHONES[0]}?table=sms_queue&{query}", []),
            (f"{pg}/{PHONES[0]}?table=SmsQueue&{query}", []),
        ],
    )
    outbox, sender = await make_delivery(store, yml)
    async with running(sender):
        await enqueue(store, outbox, event("F001", location=HOSTILE))
        await until(lambda: sender.health()["sent"] == 2, 20, "both channels sent")
    got_my = mariadb.query("SELECT dest, text, prio FROM sms_queue", my.rsplit("/", 1)[1])
    got_pg = postgres.query('SELECT dest, text, prio FROM "SmsQueue"', pg.rsplit("/", 1)[1])
    for got in (got_my, got_pg):
        assert len(got) == 1
        dest, text, prio = got[0]
        assert (dest, prio) == (PHONES[0], 7)
        assert "#F001" in text
    # the SMS form may shorten a long location; what it keeps is the text as written
    assert got_my[0][1] == got_pg[0][1]
    assert "전산실'); DROP TABLE" in got_my[0][1]


async def test_euckr_agent_db_gets_korean_and_a_stand_in_for_what_euckr_lacks(
    store: Store, mariadb: MariaDB, tmp_path: Path
):
    # older agents keep their queue in EUC-KR; an emoji there would fail every retry
    table = UPLUS_MYSQL[0].replace("utf8mb4", "euckr")
    base = _mysql_agent_db(mariadb, [table], ("SC_TRAN",))
    url = f"{base}/{PHONES[0]}?preset=uplus&from={CALLER}&charset=euckr"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, [])])
    outbox, sender = await make_delivery(store, yml)
    async with running(sender):
        await enqueue(store, outbox, event("K001", location="별관 🔥 전산실"))
        await until(lambda: sender.health()["sent"] == 1, 20, "sent")
    (text,) = mariadb.query("SELECT TR_MSG FROM SC_TRAN", base.rsplit("/", 1)[1])[0]
    assert "별관 ? 전산실" in text and "누수" in text and "#K001" in text


async def test_emma_preset_on_postgres_keeps_korean(
    store: Store, postgres: Postgres, tmp_path: Path
):
    base = _pg_agent_db(
        postgres,
        [
            "CREATE TABLE em_tran (tran_pr SERIAL PRIMARY KEY, tran_refkey VARCHAR(40), "
            "tran_id VARCHAR(20), tran_phone VARCHAR(100), tran_callback VARCHAR(100), "
            "tran_status CHAR(1), tran_date TIMESTAMP NOT NULL, tran_msg VARCHAR(255), "
            "tran_type INT NOT NULL)"
        ],
        ("em_tran",),
    )
    url = f"{base}/{PHONES[1]}?preset=emma&from={CALLER}"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, [])])
    outbox, sender = await make_delivery(store, yml)
    async with running(sender):
        await enqueue(store, outbox, event("G001", location="본관 3층 전산실"))
        await until(lambda: sender.health()["sent"] == 1, 20, "sent")
    got = postgres.query(
        "SELECT tran_phone, tran_callback, tran_status, tran_type, tran_msg FROM em_tran",
        base.rsplit("/", 1)[1],
    )
    assert len(got) == 1
    phone, caller, status, kind, text = got[0]
    assert (phone, caller, status, kind) == (PHONES[1], CALLER, "1", 4)
    assert "본관 3층 전산실" in text and "누수" in text and "#G001" in text


async def test_an_euc_kr_postgres_agent_db_gets_a_stand_in_for_an_emoji(
    store: Store, postgres: Postgres, tmp_path: Path
):
    # the URL does not say charset=euckr: PostgreSQL would refuse the emoji on every retry
    n = next(_numbers)
    db, user = f"agent{n}", f"sentinel{n}"
    postgres.execute(
        f"CREATE DATABASE {db} ENCODING 'EUC_KR' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    )
    postgres.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'")
    postgres.execute(["CREATE TABLE q (dest TEXT, msg TEXT)", f"GRANT INSERT ON q TO {user}"], db)
    url = (
        f"smsagentpg://{user}:{PASSWORD}@127.0.0.1:{postgres.port}/{db}/{PHONES[0]}"
        "?table=q&col_to=dest&col_body=msg"
    )
    yml = write_apprise(tmp_path / "apprise.yml", [(url, [])])
    outbox, sender = await make_delivery(store, yml, retry_max=0.3)
    async with running(sender):
        await enqueue(store, outbox, event("EK01", location="서버실🔥 랙"))
        await until(lambda: sender.health()["sent"] == 1, 20, "sent")
    [(text,)] = postgres.query("SELECT msg FROM q", db)
    assert "서버실? 랙" in text and "#EK01" in text


async def test_refused_password_fails_without_showing_it(
    store: Store, postgres: Postgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    base = _pg_agent_db(postgres, ["CREATE TABLE q (dest TEXT, text TEXT)"], ("q",))
    wrong = "Wr0ngPassw0rdZ"
    url = base.replace(PASSWORD, wrong) + f"/{PHONES[0]}?table=q&col_to=dest&col_body=text"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, [])])
    channel = load_channels(yml)[0]
    assert wrong not in channel.display and wrong in channel.secrets
    outbox, sender = await make_delivery(store, yml, retry_max=0.5)
    async with running(sender):
        await enqueue(store, outbox, event("H001"))
        await until(lambda: sender.health()["failed_sends"] >= 2, 20, "2 failed sends")
        health = sender.health()
    status = _status(store)
    error = status["channels"][0]["last_error"]  # type: ignore[index]
    assert "password authentication failed" in error
    for text in (caplog.text, json.dumps(status), json.dumps(health), error):
        assert wrong not in text
    assert "password authentication failed" in caplog.text  # logged, masked
    assert postgres.query("SELECT count(*) FROM q", base.rsplit("/", 1)[1]) == [(0,)]


async def test_a_refused_row_leaves_no_row_of_the_page_and_the_retry_no_duplicate(
    store: Store, postgres: Postgres, tmp_path: Path
):
    # the second recipient's row breaks a constraint: the first one's must not stay behind
    base = _pg_agent_db(
        postgres,
        [
            "CREATE TABLE q (text TEXT, "
            f"dest TEXT CONSTRAINT no_second CHECK (dest <> '{PHONES[1]}'))"
        ],
        ("q",),
    )
    db = base.rsplit("/", 1)[1]
    url = f"{base}/{'/'.join(PHONES)}?table=q&col_to=dest&col_body=text"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, [])])
    outbox, sender = await make_delivery(store, yml, retry_max=0.3)
    async with running(sender):
        await enqueue(store, outbox, event("P001"))
        await until(lambda: sender.health()["failed_sends"] >= 2, 20, "2 failed sends")
        assert postgres.query("SELECT count(*) FROM q", db) == [(0,)]
        assert "no_second" in _status(store)["channels"][0]["last_error"]  # type: ignore[index]
        postgres.execute("ALTER TABLE q DROP CONSTRAINT no_second", db)
        await until(lambda: sender.health()["sent"] == 1, 20, "sent")
    assert sorted(r[0] for r in postgres.query("SELECT dest FROM q", db)) == sorted(PHONES)


@pytest.fixture
def mute_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung database host)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("scheme", ["smsagentmysql", "smsagentpg"])
async def test_a_silent_server_fails_within_the_channels_timeout(
    store: Store, mute_server: int, tmp_path: Path, scheme: str
):
    url = (
        f"{scheme}://u:{PASSWORD}@127.0.0.1:{mute_server}/agent/{PHONES[0]}"
        "?table=q&col_to=dest&col_body=text&timeout=1"
    )
    yml = write_apprise(tmp_path / "apprise.yml", [(url, [])])
    # the sender would give up after 30 s; the channel's own timeout must end it first
    outbox, sender = await make_delivery(store, yml, send_timeout=30.0)
    async with running(sender):
        await enqueue(store, outbox, event("T001"))
        await until(lambda: sender.health()["failed_sends"] >= 1, 20, "a failed send")
    error = _status(store)["channels"][0]["last_error"]  # type: ignore[index]
    assert "insert failed" in error and "no answer within" not in error
    assert "timed out" in error or "timeout" in error


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("table=SC-TRAN&col_to=a&col_body=b", "'SC-TRAN' is not a plain SQL identifier"),
        ("table=q&col_to=a%22b&col_body=b", "is not a plain SQL identifier"),
        ("table=q&col_to=a%60%20b&col_body=b", "is not a plain SQL identifier"),
        ("table=a.b.c&col_to=a&col_body=b", "more than one '.'"),
        ("table=q&col_to=a&col_body=b&%3Ax%3B%20DROP=1", "not a plain SQL identifier"),
        ("table=q&col_to=a&col_body=a", "set twice"),
        ("table=q&col_to=a", "needs col_body="),
        ("preset=kt", "preset=kt is not known"),
        ("preset=uplus", "give from="),
        ("preset=uplus&from=02x", "is not a phone number"),
        ("preset=uplus&from=021234&colto=x", "unknown option colto="),
        ("preset=uplus&from=021234&timeout=600", "timeout=600"),
    ],
)
def test_bad_layout_is_refused_at_config_load(tmp_path: Path, query: str, reason: str):
    url = f"smsagentmysql://u:{PASSWORD}@127.0.0.1:3306/agent/01012345678?{query}"
    yml = write_apprise(tmp_path / "apprise.yml", [(url, [])])
    with pytest.raises(ChannelConfigError) as refused:
        load_channels(yml)
    assert reason in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_display_masks_password_and_keeps_the_layout(tmp_path: Path):
    url = f"smsagentpg://agent:{PASSWORD}@127.0.0.1:5432/agentdb/01012345678?preset=uplus&from={CALLER}"
    channel = load_channels(write_apprise(tmp_path / "apprise.yml", [(url, [])]))[0]
    assert PASSWORD not in channel.display and PASSWORD in channel.secrets
    assert channel.display.startswith("smsagentpg://agent:****@127.0.0.1:5432/")
    assert "preset=uplus" in channel.display
    assert channel.form == "sms"
