"""The pure parts of web login: the users file, sessions, the login limiter, the web actor."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from sentinel.alarm.actor import Actor
from sentinel.web import limiter as limiter_module
from sentinel.web import users as users_file
from sentinel.web.limiter import LoginLimiter
from sentinel.web.sessions import Sessions
from sentinel.web.users import BadUserName, UserFile, check_name
from tests.fixtures.core import FakeClock

# the cheapest argon2 the library accepts: these tests check behaviour, not cost
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def make_file(path: Path, **passwords: str) -> None:
    users_file.write(path, {name: FAST.hash(pw) for name, pw in passwords.items()})


async def test_the_users_file_is_0600_and_holds_no_password(tmp_path: Path) -> None:
    path = tmp_path / "web-users"
    make_file(path, kim="correct horse", lee="battery staple")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert "correct horse" not in text and "battery staple" not in text
    assert [line.split(":")[0] for line in text.splitlines()] == ["kim", "lee"]
    assert all(line.split(":", 1)[1].startswith("$argon2id$") for line in text.splitlines())
    assert [p.name for p in tmp_path.iterdir()] == ["web-users"]  # no temp file left


async def test_verify_right_wrong_and_unknown(tmp_path: Path) -> None:
    path = tmp_path / "web-users"
    make_file(path, kim="correct horse")
    users = UserFile(path, FAST)
    assert users.problem is None
    assert await users.verify("kim", "correct horse")
    assert not await users.verify("kim", "wrong horse")
    assert not await users.verify("nobody", "correct horse")
    assert not await users.verify("kim", "")


async def test_a_user_added_while_running_can_log_in_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "web-users"
    make_file(path, kim="correct horse")
    users = UserFile(path, FAST)
    assert not await users.verify("lee", "battery staple")
    make_file(path, kim="correct horse", lee="battery staple")
    assert await users.verify("lee", "battery staple")
    make_file(path, lee="battery staple")  # kim deleted
    assert not users.has("kim") and users.has("lee")


async def test_a_missing_file_means_nobody_logs_in_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "sentinel.web")
    users = UserFile(tmp_path / "web-users", FAST)
    assert users.problem is not None and "does not exist" in users.problem
    assert "sentinel web adduser" in users.problem
    assert not await users.verify("kim", "correct horse")
    assert not await users.verify("kim", "correct horse")
    assert len([r for r in caplog.records if "nobody can log in" in r.message]) == 1
    make_file(tmp_path / "web-users", kim="correct horse")
    assert await users.verify("kim", "correct horse") and users.problem is None


async def test_an_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "web-users"
    path.mkdir()  # reading a directory fails for root too
    users = UserFile(path, FAST)
    assert users.problem is not None and "cannot be read" in users.problem
    assert not await users.verify("kim", "x" * 10)


async def test_bad_lines_are_skipped_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "sentinel.web")
    path = tmp_path / "web-users"
    good = FAST.hash("correct horse")
    path.write_text(f"# users\nkim:{good}\nlee:plaintext-secret\n\nbroken line\n")
    users = UserFile(path, FAST)
    assert users.names() == ["kim"]
    assert "line(s) 3, 5" in caplog.text
    assert "plaintext-secret" not in caplog.text and good not in caplog.text


@pytest.mark.parametrize("name", ["", "a:b", "kim lee", "tab\there", "nl\n", "link"])
def test_names_the_file_cannot_hold_are_refused(name: str) -> None:
    with pytest.raises(BadUserName):
        check_name(name)


def test_sessions_expire_and_end(tmp_path: Path) -> None:
    clock = FakeClock()
    sessions = Sessions(ttl=3600, clock=clock)
    a = sessions.start("kim", "10.0.0.5", "stamp")
    b = sessions.start("kim", "10.0.0.6", "stamp")
    assert a.token != b.token and a.csrf != b.csrf and len(a.token) >= 43
    assert sessions.get(a.token) == a and sessions.get("forged") is None
    assert sessions.end(a.token) and sessions.get(a.token) is None
    clock.advance(3600)
    assert sessions.get(b.token) is None and len(sessions) == 0


def test_csrf_compare() -> None:
    session = Sessions(ttl=60, clock=FakeClock()).start("kim", "10.0.0.5", "stamp")
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None) and not session.csrf_ok("") and not session.csrf_ok("x")
    assert not session.csrf_ok(session.csrf[:-1])


def test_five_failures_lock_the_address_and_the_name() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(clock)
    for _ in range(4):
        assert limiter.failed("10.0.0.9", "kim") is None
    assert limiter.retry_after("10.0.0.9", "kim") is None
    assert limiter.failed("10.0.0.9", "kim") == 300
    assert limiter.retry_after("10.0.0.9", "kim") == 300
    assert limiter.retry_after("10.0.0.9", "lee") == 300  # the address, whatever name
    assert limiter.retry_after("10.0.0.7", "kim") == 300  # the name, from anywhere
    assert limiter.retry_after("10.0.0.7", "lee") is None
    limiter.succeeded("10.0.0.7", "lee")  # a success elsewhere does not lift the lock
    assert limiter.retry_after("10.0.0.9", "lee") == 300
    clock.advance(300)
    assert limiter.retry_after("10.0.0.9", "kim") is None
    for _ in range(4):
        limiter.failed("10.0.0.9", "kim")
    assert limiter.failed("10.0.0.9", "kim") == 600  # the next lock is twice as long


def test_attempts_being_checked_count_against_the_limit() -> None:
    limiter = LoginLimiter(FakeClock())
    for _ in range(5):
        assert limiter.begin("10.0.0.9", "kim") is None
    assert limiter.begin("10.0.0.9", "kim") == limiter_module.BUSY  # five already in flight
    assert limiter.begin("10.0.0.8", "kim") == limiter_module.BUSY  # the name, too
    limiter.abandoned("10.0.0.9", "kim")
    assert limiter.begin("10.0.0.9", "kim") is None
    for _ in range(5):
        limiter.failed("10.0.0.9", "kim")
    assert limiter.begin("10.0.0.9", "kim") == 300


def test_failures_spread_over_more_than_the_window_do_not_lock() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(clock)
    for _ in range(10):
        assert limiter.failed("10.0.0.9", "kim") is None
        clock.advance(76)  # never 5 within 300 s
    assert limiter.retry_after("10.0.0.9", "kim") is None


def test_the_limiter_stays_bounded_under_a_flood_of_names() -> None:
    module = limiter_module
    clock = FakeClock()
    limiter = LoginLimiter(clock)
    for i in range(module.MAX_KEYS + 50):
        limiter.failed("10.0.0.9", f"user{i}")
    assert len(limiter._records) <= module.MAX_KEYS


def test_a_web_actor_says_who_and_from_where() -> None:
    actor = Actor.web("kim", "10.0.0.5")
    assert actor.describe() == "kim (web from 10.0.0.5)"
    assert actor.short() == "kim(web)"
    assert actor.user == "web:kim" and actor.uid is None
    again = Actor.from_args(actor.as_args())
    assert again == actor
    link = Actor.web("link", "192.0.2.1")
    assert link.describe() == "link (ack link from 192.0.2.1)"
    cli = Actor("kim", 0, "root", 1000, "alice")
    assert cli.describe() == "kim (uid 0 root, sudo from uid 1000 alice)" and cli.via is None
