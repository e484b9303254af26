"""The browser tests' harness: a real `sentinel run` with the dashboard on, fed by a real
mosquitto and paging a real json:// channel, looked at through Debian's chromium.

Playwright for Python drives /usr/bin/chromium (`executable_path`); it never downloads a
browser (`playwright install` is neither needed nor possible here). Without that binary the
tests skip and say why; scripts/setup.sh installs it.

One daemon serves a whole test module and the browser is launched once per module: starting
either costs seconds on the 2-core test machine. Each test gets a fresh browser context (no
cookies shared between tests). The sync Playwright API runs its own event loop, so the tests
that use it are plain functions, and the browser is closed before the next module's asyncio
tests run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.fixtures.http_sink import HttpSink
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.poll import until_sync

if TYPE_CHECKING:  # imported for real inside the fixtures, after the skip checks
    from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize

CHROMIUM = Path(os.environ.get("SENTINEL_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).parent / "artifacts"
SENTINEL = [sys.executable, "-m", "sentinel"]
START_TIMEOUT = 30.0
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
# Playwright's expect() default is 5 s; a report is rebuilt every second, but the shared
# 2-core machine can be slow while the rest of the suite runs
UI_TIMEOUT_MS = 20_000

TEMP_SENSOR = "temp-rack1"
LEAK_SENSOR = "leak-ups"
TEMP_TOPIC = "sensors/temp-rack1"
LEAK_TOPIC = "zigbee2mqtt/leak-ups"


def chromium_or_skip() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright for Python is missing: pip install -e '.[test]'")


def _private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path


class Deployment:
    """A config with [web] on a free port, the Apprise file and the daemon process."""

    def __init__(self, work: Path, broker: Mosquitto, sink: HttpSink, *, extra: str = "") -> None:
        self.work = work
        self.broker = broker
        self.sink = sink
        self.state_dir = work / "state"
        self.users_file = work / "web-users"
        self.log_path = work / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.users: set[str] = set()
        work.mkdir(parents=True, exist_ok=True)
        _private(
            work / "apprise.yml",
            f'urls:\n  - "{sink.json_url("/page")}":\n      tag: critical, warning, info\n',
        )
        self.config = _private(
            work / "sentinel.toml",
            f"""
[site]
name = "browser test county"

[daemon]
state_dir = "{self.state_dir}"
heartbeat = "0.5s"

[mqtt]
host = "{broker.host}"
port = {broker.port}
# one broker serves every module: a session of its own per deployment
client_id = "sentinel-{work.name}"

[[sensors]]
id = "{LEAK_SENSOR}"
location = "UPS floor"
kind = "water_leak"
topic = "{LEAK_TOPIC}"

[[sensors]]
id = "{TEMP_SENSOR}"
location = "rack 1"
kind = "temperature"
format = "json"
topic = "{TEMP_TOPIC}"
field = "temperature"
max_age = "1h"

[[rules]]
sensor = "{TEMP_SENSOR}"
warn_high = 28.0
crit_high = 33.0

[alarms]
flush_interval = "0.5s"

[alerts]
apprise_config = "apprise.yml"
language = "en"
group_window = "0s"
send_timeout = "3s"
retry_max = "1s"

[web]
listen = "127.0.0.1"
port = 0
language = "en"
users_file = "{self.users_file}"
{extra}
""",
        )

    # -- the daemon --------------------------------------------------------------------------

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*SENTINEL, "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = until_sync(self._ready, START_TIMEOUT, self._what)

    def _what(self) -> str:
        return f"the daemon's MQTT connection and dashboard address; log:\n{self.log_tail()}"

    def _ready(self) -> str:
        """The dashboard's address once the daemon serves it and listens to MQTT."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({self.proc.returncode}):\n{self.logs()}")
        components = self.heartbeat_components()
        mqtt = components.get("source:mqtt", {})
        urls = components.get("web", {}).get("urls") or []
        if mqtt.get("state") == "connected" and urls:
            return str(urls[0])
        return ""

    def heartbeat_components(self) -> dict[str, Any]:
        db = self.state_dir / "sentinel.db"
        if not db.exists():
            return {}
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            ) as conn:
                row = conn.execute("SELECT components FROM heartbeat WHERE id = 1").fetchone()
        except sqlite3.OperationalError:
            return {}
        return json.loads(row[0]) if row else {}

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    # -- what the room does ------------------------------------------------------------------

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                self.broker.host,
                "-p",
                str(self.broker.port),
                "-q",
                "1",
                "-t",
                topic,
                "-m",
                json.dumps(payload),
            ],
            check=True,
            timeout=10,
        )

    def leak(self, wet: bool) -> None:
        self.publish(LEAK_TOPIC, {"water_leak": wet, "battery": 90})

    def temperature(self, celsius: float) -> None:
        self.publish(TEMP_TOPIC, {"temperature": celsius})

    def fill_history(self, rows: Sequence[tuple[str, str, float, str]]) -> None:
        """Past samples, as the engine would have written them (the daemon has migrated the
        database by the time it is ready; WAL lets this writer in beside it)."""
        db = self.state_dir / "sentinel.db"
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn, conn:
            conn.executemany(
                "INSERT INTO alarm_history(sensor_id, kind, ts, value) VALUES (?, ?, ?, ?)",
                rows,
            )

    # -- the CLI -----------------------------------------------------------------------------

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SENTINEL, "--config", str(self.config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def status(self) -> dict[str, Any]:
        proc = self.cli("status", "--json")
        assert proc.stdout, proc.stderr
        return dict(json.loads(proc.stdout))

    def active_alarms(self, sensor: str) -> list[dict[str, Any]]:
        return [a for a in self.status()["alarms"] if a.get("sensor") == sensor]

    def adduser(self, name: str, password: str) -> None:
        """`sentinel web adduser`, once per name and deployment (tests share a daemon)."""
        if name in self.users:
            return
        proc = self.cli("web", "adduser", name, "--password-stdin", stdin=password + "\n")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.users.add(name)

    def pages(self) -> list[str]:
        return [f"{r.title}\n{r.message}" for r in self.sink.delivered("/page")]


@contextlib.contextmanager
def deployment(work: Path, broker: Mosquitto, *, extra: str = "") -> Iterator[Deployment]:
    """A started deployment with its own sink; everything stopped at the end."""
    sink = HttpSink()
    d = Deployment(work, broker, sink, extra=extra)
    try:
        d.start()
        yield d
    finally:
        d.stop()
        sink.close()


# -- the browser -----------------------------------------------------------------------------


def launch() -> Iterator[Browser]:
    """Debian's chromium, headless; for a module-scoped `browser` fixture to `yield from`
    (a fixture defined here and imported would trip ruff's redefinition check)."""
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # root in a container: chromium's own sandbox cannot start; the only page it
            # opens is ours, served from loopback
            args=["--no-sandbox"],
        )
        try:
            yield launched
        finally:
            launched.close()


@contextlib.contextmanager
def context(browser: Browser, *, phone: bool = False) -> Iterator[BrowserContext]:
    """A fresh context (no cookies from another test), desktop or 390x844 phone size."""
    ctx = browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        device_scale_factor=2 if phone else 1,
        is_mobile=phone,
        has_touch=phone,
        locale="en-US",
        timezone_id="Asia/Seoul",
    )
    ctx.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


def new_page(browser: Browser, *, phone: bool = False) -> Iterator[Page]:
    """For a `page` fixture to `yield from`."""
    with context(browser, phone=phone) as ctx:
        yield ctx.new_page()


class Navigations:
    """Counts the main frame's navigations: "without a reload" means this stays at one."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        page.on(
            "framenavigated",
            lambda frame: self.urls.append(frame.url) if frame == page.main_frame else None,
        )


def screenshot(page: Page, name: str) -> Path:
    """Kept in tests/web/artifacts/ (gitignored) for a person to look at after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def mosquitto_pub_or_skip() -> None:
    if shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub is missing: install mosquitto-clients (scripts/setup.sh)")
