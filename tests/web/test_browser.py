"""The dashboard in a real browser (Debian's chromium through Playwright) against a real
daemon: mosquitto -> `sentinel run` (alarm engine, state DB, web server) -> the page, and
the page's acknowledge -> the daemon -> the json:// channel.

What the person on call at 3 a.m. relies on: the page turns red and shows the alarm by
itself, the charts show the history, an acknowledge from the phone is recorded with who
and from where and is announced, and nobody can act without logging in.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until_sync
from tests.web.browser import (
    LEAK_SENSOR,
    PHONE,
    TEMP_SENSOR,
    Deployment,
    Navigations,
    chromium_or_skip,
    context,
    deployment,
    launch,
    mosquitto_pub_or_skip,
    new_page,
    screenshot,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

USER, PASSWORD = "kim", "correct horse battery 7"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser)


@pytest.fixture(scope="module")
def dashboard(
    tmp_path_factory: pytest.TempPathFactory, mosquitto_session: Mosquitto
) -> Iterator[Deployment]:
    """One daemon for the module: starting one costs seconds on the shared machine."""
    chromium_or_skip()
    mosquitto_pub_or_skip()
    with deployment(tmp_path_factory.mktemp("dashboard"), mosquitto_session) as d:
        yield d


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def dry_room(d: Deployment) -> None:
    """No leak alarm left from an earlier test: each test starts from a quiet room."""
    d.leak(False)
    until_sync(lambda: not d.active_alarms(LEAK_SENSOR), 30, "the leak alarm to clear")


def leak_alarm(d: Deployment) -> str:
    d.leak(True)
    [alarm] = until_sync(lambda: d.active_alarms(LEAK_SENSOR), 30, "the leak alarm")
    return str(alarm["id"])


def open_dashboard(page: Page, d: Deployment) -> Navigations:
    navigations = Navigations(page)
    page.goto(d.url)
    # the first report is drawn and the live stream is open
    expect(page.get_by_test_id("overall")).not_to_have_attribute("data-state", "UNKNOWN")
    expect(page.get_by_test_id("live")).to_have_attribute("data-state", "open")
    return navigations


def log_in(page: Page, user: str, password: str) -> Any:
    """Fills the page's login form; returns the /login response."""
    page.locator("input[name=user]").fill(user)
    page.locator("input[name=password]").fill(password)
    with page.expect_response(lambda r: r.url.endswith("/login")) as answer:
        page.get_by_test_id("login-submit").click()
    return answer.value


def test_a_leak_turns_the_page_red_and_shows_the_alarm_without_a_reload(
    dashboard: Deployment, page: Page
) -> None:
    d = dashboard
    dry_room(d)
    d.temperature(23.5)
    navigations = open_dashboard(page, d)
    expect(page.get_by_test_id("overall")).not_to_have_attribute("data-state", "CRITICAL")
    # a mark a reload would wipe out
    page.evaluate("window.__sentinelTestMark = 'still here'")

    alarm = leak_alarm(d)

    expect(page.get_by_test_id("overall")).to_have_attribute("data-state", "CRITICAL")
    row = page.get_by_test_id(f"alarm-{alarm}")
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-state", "CRITICAL")
    expect(row).to_contain_text("UPS floor")
    expect(page.get_by_test_id(f"tile-{LEAK_SENSOR}")).to_have_attribute("data-state", "CRITICAL")
    # the banner says what is wrong in words, not only in red
    expect(page.get_by_test_id("overall")).to_contain_text("UPS floor")
    assert page.evaluate("window.__sentinelTestMark") == "still here"
    assert navigations.urls == [d.url], navigations.urls
    screenshot(page, "leak-desktop.png")


def test_the_temperature_chart_draws_its_history_at_desktop_and_phone_size(
    dashboard: Deployment, page: Page, browser: Browser
) -> None:
    d = dashboard
    now = time.time()
    # a day of one-minute samples, as the engine writes them (history_interval 60 s)
    d.fill_history(
        [
            (TEMP_SENSOR, "temperature", now - 60.0 * i, f"{22.0 + (i % 90) / 30:.2f}")
            for i in range(1, 24 * 60)
        ]
    )
    d.temperature(23.5)
    open_dashboard(page, d)
    expect(page.get_by_test_id(f"tile-{TEMP_SENSOR}")).to_contain_text("23.5")
    chart = page.get_by_test_id(f"chart-{TEMP_SENSOR}")
    expect(chart).to_have_attribute("data-range", "24h")
    expect(chart).not_to_have_attribute("data-points", "0")
    # what was drawn is what the server's downsampled history holds for that range
    url = f"{d.url}api/history?sensor={TEMP_SENSOR}&kind=temperature&range=24h"
    with urllib.request.urlopen(url, timeout=10) as r:
        served = json.load(r)
    drawn = int(chart.get_attribute("data-points") or 0)
    assert drawn >= 600, drawn  # ~720 buckets over a full day
    assert abs(drawn - sum(v is not None for v in served["avg"])) <= 2, (drawn, served["avg"])
    assert chart.locator("canvas").count() >= 1
    shot = screenshot(page, "dashboard-desktop.png")
    assert shot.stat().st_size > 10_000

    with context(browser, phone=True) as phone_context:
        phone = phone_context.new_page()
        open_dashboard(phone, d)
        phone_chart = phone.get_by_test_id(f"chart-{TEMP_SENSOR}")
        expect(phone_chart).not_to_have_attribute("data-points", "0")
        phone_chart.scroll_into_view_if_needed()
        # usable on a phone: nothing wider than the screen, so no sideways scrolling
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        box = phone_chart.bounding_box()
        assert box is not None and box["width"] <= PHONE["width"], box
        shot = screenshot(phone, "dashboard-phone.png")
        assert shot.stat().st_size > 10_000


def test_log_in_and_acknowledge_from_the_page_records_who_and_where(
    dashboard: Deployment, page: Page
) -> None:
    d = dashboard
    d.adduser(USER, PASSWORD)  # the daemon picks up the users file without a restart
    dry_room(d)
    navigations = open_dashboard(page, d)
    alarm = leak_alarm(d)
    row = page.get_by_test_id(f"alarm-{alarm}")
    expect(row).to_be_visible()
    # not logged in: nothing to press
    expect(page.get_by_test_id(f"ack-{alarm}")).to_have_count(0)

    answer = log_in(page, USER, PASSWORD)
    assert answer.status < 400, answer.status
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["sentinel_session"]["httpOnly"]
    assert cookies["sentinel_session"]["sameSite"] == "Strict"

    with page.expect_response(lambda r: r.url.endswith(f"/api/alarms/{alarm}/ack")) as acked:
        page.get_by_test_id(f"ack-{alarm}").click()
    assert acked.value.status == 200, acked.value.text()
    assert acked.value.json()["ok"] is True

    expect(row).to_have_attribute("data-alarm-state", "acknowledged")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text(USER)
    expect(timeline).to_contain_text("127.0.0.1")
    [status_row] = d.active_alarms(LEAK_SENSOR)
    assert status_row["state"] == "acknowledged"
    # the ack is announced on the info route, naming the person and that it came from the web
    pages = until_sync(
        lambda: [p for p in d.pages() if "acknowledged" in p.lower() and alarm in p],
        30,
        lambda: f"the ACKNOWLEDGED message for {alarm}; got {d.pages()}",
    )
    assert USER in pages[0] and "web" in pages[0], pages[0]
    assert PASSWORD not in d.logs()
    assert navigations.urls == [d.url], navigations.urls
    screenshot(page, "acknowledged-desktop.png")


FETCH = """async ([url, headers]) => {
    const r = await fetch(url, {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", ...headers}, body: "{}"});
    return r.status;
}"""


def test_a_post_without_a_session_or_without_the_csrf_token_is_refused(
    dashboard: Deployment, page: Page
) -> None:
    d = dashboard
    d.adduser(USER, PASSWORD)
    dry_room(d)
    open_dashboard(page, d)
    alarm = leak_alarm(d)
    ack = f"/api/alarms/{alarm}/ack"

    # from the page itself (same origin), but nobody logged in
    assert page.evaluate(FETCH, [ack, {}]) == 401
    assert page.evaluate(FETCH, ["/api/silences", {}]) == 401

    assert log_in(page, USER, PASSWORD).status < 400
    expect(page.get_by_test_id(f"ack-{alarm}")).to_be_visible()
    # logged in, but the request does not carry the page's CSRF token (what a forged
    # request from another site could send along with the cookie)
    assert page.evaluate(FETCH, [ack, {}]) == 403
    assert page.evaluate(FETCH, [ack, {"X-CSRF-Token": "not-the-token"}]) == 403
    assert page.evaluate(FETCH, ["/api/silences", {"X-CSRF-Token": "x"}]) == 403
    # and none of it acted
    [row] = d.active_alarms(LEAK_SENSOR)
    assert row["state"] != "acknowledged"
    assert not d.status()["silences"]


def test_repeated_wrong_passwords_are_rate_limited_on_the_page(
    tmp_path: Path, mosquitto_session: Mosquitto, page: Page
) -> None:
    # its own daemon: the lock it provokes holds 127.0.0.1 for minutes
    with deployment(tmp_path / "limited", mosquitto_session) as d:
        d.adduser(USER, PASSWORD)
        open_dashboard(page, d)
        statuses = [log_in(page, USER, f"wrong-{n}").status for n in range(5)]
        assert 429 not in statuses, statuses
        answer = log_in(page, USER, PASSWORD)  # right, but too late
        assert answer.status == 429
        assert int(answer.headers["retry-after"]) > 0
        expect(page.get_by_role("alert")).to_contain_text("Too many login attempts")
        expect(page.get_by_test_id("logout")).to_have_count(0)
        assert "wrong-0" not in d.logs()
