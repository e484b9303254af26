"""The dashboard's static files: vendored uPlot with its licence, nothing fetched from another
host, every string in both languages; and the page itself in Debian's chromium against a
stand-in server (tests/web/fake_api.py): live updates, escaping, a lost connection."""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.fixtures.poll import until_sync
from tests.web import fake_api

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "sentinel" / "web" / "static"
VENDORED = ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE-uPlot")
CHROMIUM = "/usr/bin/chromium"


# ---- the files -------------------------------------------------------------------------


def test_vendored_uplot_is_the_pinned_version_with_its_licence() -> None:
    for name in VENDORED:
        assert (STATIC / name).stat().st_size > 0, name
    pinned = re.search(
        r"^VERSION=\$\{UPLOT_VERSION:-([\d.]+)\}$",
        (ROOT / "scripts" / "vendor-uplot.sh").read_text(),
        re.MULTILINE,
    )
    assert pinned, "scripts/vendor-uplot.sh no longer pins a version"
    banner = (STATIC / "uPlot.iife.min.js").read_text()[:200]
    assert f"(v{pinned.group(1)})" in banner, "the vendored file is not the pinned version"
    licence = (STATIC / "LICENSE-uPlot").read_text()
    assert "MIT License" in licence
    assert "Leon Sorokin" in licence
    assert "Permission is hereby granted" in licence


def _without_licence_banner(text: str) -> str:
    # A minified library keeps its `/*! ... */` banner (the attribution its licence asks
    # for); a URL there is never fetched.
    return re.sub(r"\A/\*!.*?\*/", "", text, flags=re.DOTALL)


def test_no_file_of_the_page_points_at_another_host() -> None:
    files = sorted(
        p for p in STATIC.iterdir() if p.suffix in (".html", ".js", ".css") and p.is_file()
    )
    assert {"index.html", "app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css"} <= {
        p.name for p in files
    }
    for path in files:
        text = _without_licence_banner(path.read_text())
        found = re.findall(r"https?://[^\s\"'`)]*", text)
        assert not found, f"{path.name} names another host: {found}"
        # protocol-relative (//cdn.example/x.js) and CSS imports reach out just the same
        assert not re.search(r"""(?:src|href)\s*=\s*["']//""", text), path.name
        assert not re.search(r"url\(\s*[\"']?//", text), path.name
        assert "@import" not in text, path.name


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "formaction", "poster", "data") and value:
                self.refs.append(value)
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def test_index_html_loads_only_our_own_static_files() -> None:
    parser = _Refs()
    parser.feed((STATIC / "index.html").read_text())
    # the login form posts to us; "data:," is the empty icon that saves a /favicon.ico 404;
    # the report and the default range's charts are preloaded from our own API while the
    # scripts load
    preloads = ("/api/status", "/api/histories?all=24h")
    loaded = [r for r in parser.refs if r not in ("/login", "data:,", *preloads)]
    assert loaded, "index.html loads nothing?"
    for ref in loaded:
        assert ref.startswith("/static/"), ref
        assert (STATIC / ref.removeprefix("/static/")).is_file(), f"{ref} is not in static/"
    # all code in app.js: nothing inline, so the server can send a strict
    # Content-Security-Policy (script-src 'self')
    assert parser.inline_scripts == 0
    assert parser.handlers == []


def test_app_js_never_writes_markup() -> None:
    # Sensor names and reasons come from config files and devices: text only.
    code = (STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in code, sink


def _dictionary(code: str, language: str) -> dict[str, str]:
    block = re.search(rf"^  {language}: \{{\n(.*?)^  \}},?$", code, re.MULTILINE | re.DOTALL)
    assert block, f"no {language} dictionary in app.js"
    entries = re.findall(r'^    "?([\w-]+)"?: "(.*)",$', block.group(1), re.MULTILINE)
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(entries) == len(lines), "a dictionary line this test cannot read"
    return dict(entries)


def test_every_string_is_in_korean_and_english() -> None:
    code = (STATIC / "app.js").read_text()
    ko, en = _dictionary(code, "ko"), _dictionary(code, "en")
    assert len(ko) > 50
    assert set(ko) - set(en) == set(), "missing in English"
    assert set(en) - set(ko) == set(), "missing in Korean"
    for key in ko:
        placeholders = set(re.findall(r"\{\d\}", ko[key]))
        assert placeholders == set(re.findall(r"\{\d\}", en[key])), key
    # every key the code and the page ask for by name is there
    used = set(re.findall(r"""\bt\(\s*"([\w-]+)"\s*[,)]""", code))
    html = (STATIC / "index.html").read_text()
    used |= set(re.findall(r'data-i18n="([\w-]+)"', html))
    assert used, "the test no longer finds the keys in use"
    assert used - set(ko) == set()


# ---- the page in chromium, against the stand-in server ---------------------------------


class FakeServer:
    """fake_api's app on a free loopback port, in its own thread and event loop."""

    def __init__(self, language: str) -> None:
        self.app = fake_api.build(language)
        self.room = self.app[fake_api.ROOM]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> FakeServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    async def _stop(self) -> None:
        assert self._runner is not None
        for queue in self.room.streams:
            queue.put_nowait(None)  # open event streams end instead of being cut off
        await self._runner.cleanup()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, path: str) -> None:
        request = urllib.request.Request(self.url + path, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer("ko").start()
    yield fake
    fake.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _page(browser: Browser, width: int = 390, height: int = 844) -> tuple[Page, list[str]]:
    """A page at phone size (default) and the script errors and CSP refusals it meets."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # what the server's Content-Security-Policy refused (an inline style or script)
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return page, errors


def test_a_leak_turns_the_page_red_without_a_reload(server: FakeServer, browser: Browser) -> None:
    page, errors = _page(browser)
    page.goto(server.url)
    expect(page.get_by_test_id("overall")).to_have_attribute("data-state", "OK")
    expect(page.get_by_test_id("live")).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("chart-temp-rack1")).not_to_have_attribute("data-points", "0")
    page.evaluate("window.__sameDocument = 1")

    server.post("/fake/leak?on=1")

    expect(page.get_by_test_id("overall")).to_have_attribute("data-state", "CRITICAL")
    expect(page.get_by_test_id("overall")).to_contain_text("위험")  # the state in words
    expect(page.get_by_test_id("tile-leak-ups")).to_have_attribute("data-state", "CRITICAL")
    expect(page.get_by_test_id("tile-temp-rack1")).to_have_attribute("data-state", "OK")
    expect(page.get_by_test_id("alarm-EYDH")).to_contain_text("전산실 UPS 하단 누수")
    expect(page.get_by_test_id("timeline")).to_contain_text("EYDH")
    assert page.evaluate("window.__sameDocument") == 1, "the page reloaded"
    # nobody is logged in: nothing offers to act
    expect(page.get_by_test_id("ack-EYDH")).to_have_count(0)
    assert errors == []


def test_a_tile_shows_the_alarm_value_when_it_is_newer_than_the_sensor_row(
    server: FakeServer, browser: Browser
) -> None:
    server.post("/fake/leak?on=1&lag=1")
    page, errors = _page(browser)
    page.goto(server.url)
    tile = page.get_by_test_id("tile-leak-ups")
    expect(tile).to_have_attribute("data-state", "CRITICAL")
    expect(tile.locator(".tile-value")).to_have_text("누수 감지")
    assert errors == []


def test_a_sensor_name_with_markup_is_shown_as_text(server: FakeServer, browser: Browser) -> None:
    page, errors = _page(browser)
    page.goto(server.url)
    tile = page.get_by_test_id("tile-hum-room")
    expect(tile).to_contain_text(fake_api.HOSTILE)
    assert tile.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert errors == []


def test_log_in_acknowledge_and_see_it_in_the_timeline(
    server: FakeServer, browser: Browser
) -> None:
    server.post("/fake/leak?on=1")
    page, errors = _page(browser)
    page.goto(server.url)
    page.fill("input[name=user]", "kim")
    # a report arriving while someone types must not wipe what they typed
    server.post("/fake/leak?on=1")
    expect(page.get_by_test_id("alarm-EYDH")).to_be_visible()
    page.fill("input[name=password]", "wrong")
    page.get_by_test_id("login-submit").click()
    expect(page.locator("#message")).to_contain_text("로그인 실패")
    assert page.input_value("input[name=user]") == "kim"
    page.fill("input[name=password]", "pw")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("logout")).to_be_visible()
    expect(page.get_by_test_id("logout")).to_contain_text("로그아웃")
    # reports keep coming (about one a second): the button under a finger stays the same
    page.get_by_test_id("ack-EYDH").evaluate("button => { button.dataset.mark = 'same' }")
    shown = page.get_by_test_id("overall").get_attribute("data-generated")
    server.post("/fake/tick")
    expect(page.get_by_test_id("overall")).not_to_have_attribute("data-generated", shown or "")
    expect(page.get_by_test_id("ack-EYDH")).to_have_attribute("data-mark", "same")

    page.get_by_test_id("ack-EYDH").click()

    expect(page.get_by_test_id("alarm-EYDH")).to_have_attribute("data-alarm-state", "acknowledged")
    expect(page.get_by_test_id("ack-EYDH")).to_have_count(0)
    expect(page.get_by_test_id("timeline")).to_contain_text("kim (127.0.0.1)")
    assert server.room.acked == "kim"
    assert errors == []


def test_logging_out_of_a_login_only_dashboard_leaves_the_page(
    server: FakeServer, browser: Browser
) -> None:
    server.room.view = "login"
    server.room.user = "kim"  # logged in (the fake keeps one session for everyone)
    page, errors = _page(browser)
    page.goto(server.url)
    expect(page.get_by_test_id("tile-temp-rack1")).to_be_visible()

    page.get_by_test_id("logout").click()

    page.wait_for_url("**/login")
    expect(page.get_by_test_id("tile-temp-rack1")).to_have_count(0)
    assert errors == []


def test_a_rate_limited_login_says_how_long_to_wait(server: FakeServer, browser: Browser) -> None:
    server.room.failed_logins = 3  # the fake locks after three
    page, errors = _page(browser)
    page.goto(server.url)
    page.fill("input[name=user]", "kim")
    page.fill("input[name=password]", "pw")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_role("alert")).to_contain_text("로그인 시도가 너무 많습니다. 5분 뒤에")
    expect(page.get_by_test_id("logout")).to_have_count(0)
    assert errors == []


def test_a_report_the_server_could_not_build_says_why_and_keeps_the_tiles(
    server: FakeServer, browser: Browser
) -> None:
    page, errors = _page(browser)
    page.goto(server.url)
    expect(page.get_by_test_id("overall")).to_have_attribute("data-state", "OK")

    server.post("/fake/broken?on=1")

    overall = page.get_by_test_id("overall")
    expect(overall).to_have_attribute("data-state", "UNKNOWN")
    expect(overall).to_contain_text("알 수 없음")
    expect(overall).to_contain_text("database is locked")
    expect(page.get_by_test_id("tile-temp-rack1")).to_be_visible()
    server.post("/fake/broken?on=0")
    expect(overall).to_have_attribute("data-state", "OK")
    assert errors == []


def test_a_lost_stream_is_shown_and_the_page_reconnects(
    server: FakeServer, browser: Browser
) -> None:
    page, errors = _page(browser)
    page.goto(server.url)
    live = page.get_by_test_id("live")
    expect(live).to_have_attribute("data-state", "open")

    server.post("/fake/stop-events")

    expect(live).to_have_attribute("data-state", "lost")
    expect(live).to_contain_text("연결 끊김")
    expect(live).to_have_attribute("data-state", "open", timeout=20000)
    server.post("/fake/leak?on=1")  # and it is live again
    expect(page.get_by_test_id("overall")).to_have_attribute("data-state", "CRITICAL")
    assert errors == []


HIDE = """hidden => {
    Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_page_nobody_looks_at_lets_go_of_its_stream_and_comes_back(
    server: FakeServer, browser: Browser
) -> None:
    page, errors = _page(browser)
    page.clock.install()
    page.goto(server.url)
    live = page.get_by_test_id("live")
    expect(live).to_have_attribute("data-state", "open")
    assert len(server.room.streams) == 1

    page.evaluate(HIDE, True)
    page.clock.fast_forward("02:05")

    def closed() -> bool:
        # a stream's handler learns that its client left when it next writes
        server.post("/fake/tick")
        return not server.room.streams

    until_sync(closed, 10, "the hidden page closing its stream")
    page.evaluate(HIDE, False)
    expect(live).to_have_attribute("data-state", "open")
    until_sync(lambda: len(server.room.streams) == 1, 10, "the page opening its stream again")
    server.post("/fake/leak?on=1")
    expect(page.get_by_test_id("overall")).to_have_attribute("data-state", "CRITICAL")
    assert errors == []


def test_english_by_config_and_no_horizontal_scrolling_on_a_phone(browser: Browser) -> None:
    fake = FakeServer("en").start()
    try:
        fake.post("/fake/leak?on=1")
        page, errors = _page(browser, 360, 740)
        page.goto(fake.url)
        expect(page.get_by_test_id("overall")).to_contain_text("CRITICAL")
        expect(page.get_by_test_id("tile-leak-ups")).to_contain_text("LEAK")
        expect(page.get_by_test_id("chart-temp-rack1")).not_to_have_attribute("data-points", "0")
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # no legend on a phone: the reading under the finger is written out instead
        chart = page.get_by_test_id("chart-temp-rack1")
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + 60)
        note = page.locator('.tile[data-sensor="temp-rack1"] .chart-note')
        expect(note).to_contain_text("average")
        expect(note).to_contain_text("°C")
        assert errors == []
    finally:
        fake.stop()
