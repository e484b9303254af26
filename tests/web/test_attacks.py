"""The web server under attack by a hostile network neighbour, over real sockets against the
daemon's own pieces (tests/web/test_actions.py `running`): what it must survive, and what it
must never let through."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import subprocess
import sys
import termios
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from sentinel.config import load_config
from sentinel.web import server as web_server
from sentinel.web.ack_links import ack_link
from sentinel.web.server import WebServer
from tests.fixtures.http_sink import HttpSink
from tests.fixtures.poll import until
from tests.web.test_ack_links import LINKS
from tests.web.test_actions import PASSWORD, add_users, browser, login, running, write_site

# Opens COUNT connections to TARGET:PORT from each source address given, holds them and says how
# many it opened; a separate process, so its sockets are not the daemon's.
_HOLDER = """
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8000, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
target, port, count, sources = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
held = []
for source in sources:
    for _ in range(count):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(5)
        s.connect((target, port))
        held.append(s)
print(len(held), flush=True)
time.sleep(120)
"""


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _hold(
    port: int, count: int, sources: list[str], target: str = "127.0.0.1"
) -> asyncio.subprocess.Process:
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        target,
        str(port),
        str(count),
        *sources,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    line = await asyncio.wait_for(holder.stdout.readline(), 60)
    assert int(line) == count * len(sources)
    return holder


def _port(base: str) -> int:
    return int(base.rstrip("/").rsplit(":", 1)[1])


async def test_idle_connections_cannot_use_up_the_daemons_files(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    """A neighbour opening connections and sending nothing: without a limit each one held a
    file descriptor of the daemon until it ran out (systemd's default is 1024), and the
    leak's page was set aside as undeliverable. Now they are closed beyond the limit, and
    the page goes out."""
    async with running(tmp_path, http_sink) as site:
        before = _open_files()
        sources = [f"127.0.1.{n}" for n in range(1, 21)]  # 20 neighbours x 40 = 800
        holder = await _hold(_port(site.base), 40, sources)
        try:
            await asyncio.sleep(0.5)  # let the loop accept (and refuse) them all
            held = _open_files() - before
            assert held <= web_server.MAX_CONNECTIONS + 5, held
            assert site.server.health()["refused_connections"] >= 800 - held
            alarm = await site.leak()
            [page] = await http_sink.wait_delivered(1, "/page")
            assert alarm in page.message
        finally:
            holder.kill()
            await holder.wait()


def _outward_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


async def test_one_address_cannot_take_every_connection(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    """One neighbour gets PER_ADDRESS connections; this host itself (a proxy on loopback,
    several pages on one machine) only the total."""
    outward = _outward_address()
    if outward is None:
        pytest.skip("no network address besides loopback to come from")
    async with running(tmp_path, http_sink, 'listen = "0.0.0.0"') as site:
        port = _port(site.base)
        neighbour = await _hold(port, 100, [outward], target=outward)
        local = await _hold(port, 60, ["127.0.0.1"])
        try:
            await asyncio.sleep(0.5)
            held = site.server.health()["connections"]
            assert 60 <= held <= 60 + web_server.PER_ADDRESS + 1, held
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/healthz") as r,
            ):
                assert r.status == 200
        finally:
            for holder in (neighbour, local):
                holder.kill()
                await holder.wait()


async def test_a_flood_of_chart_queries_leaves_the_daemons_threads_alone(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    """Charts, the timeline and the scrape run in the web's own threads: the loop's default
    threads, which the daemon's own work needs (heartbeat files, replication checks), are
    not where anyone who reaches the port can queue work. Shown the other way round: with
    every default thread busy, the charts still answer."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    async with running(tmp_path, http_sink) as site, aiohttp.ClientSession() as http:
        await site.leak()
        pool = ThreadPoolExecutor(2)
        loop.set_default_executor(pool)
        busy = [loop.run_in_executor(None, release.wait) for _ in range(2)]
        try:
            urls = [
                "api/history?sensor=leak-1&kind=water_leak&range=24h",
                "api/history?sensor=leak-1&kind=water_leak&range=30d",
                "api/timeline?limit=10",
                "api/histories?sensor=leak-1&kind=water_leak&range=7d"
                "&sensor=leak-1&kind=water_leak&range=1h",
            ]
            for url in urls * 10:
                async with asyncio.timeout(20), http.get(site.base + url) as r:
                    assert r.status == 200, url
        finally:
            release.set()
            await asyncio.gather(*busy)
            pool.shutdown()


# builds the server's TLS context from the config named in argv[1], as the daemon does at start
_LOAD_TLS = """
import sys
from pathlib import Path
from sentinel.config import load_config
from sentinel.web.server import WebServer
try:
    WebServer(load_config(Path(sys.argv[1]))).ssl_context()
except OSError as exc:
    print("refused:", exc, flush=True)
"""


def _with_terminal(slave: int) -> None:
    """In the child: a session of its own whose controlling terminal is the pty `slave`, as
    `sentinel run` started by hand in a terminal has."""
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)


def test_an_encrypted_tls_key_is_refused_not_asked_for_on_the_terminal(
    tmp_path: Path,
) -> None:
    """OpenSSL asks for an encrypted key's passphrase on the terminal, inside the daemon's
    event loop: every alarm waited for someone to type. Now it is refused, saying why."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "1", "-subj", "/CN=x",
            "-passout", "pass:hunter22", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    config = tmp_path / "sentinel.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[mqtt]\nhost = "127.0.0.1"\n'
        f'[web]\ntls_cert = "{cert}"\ntls_key = "{key}"\n',
        encoding="utf-8",
    )
    master, slave = os.openpty()
    try:
        child = subprocess.run(
            [sys.executable, "-c", _LOAD_TLS, str(config)],
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=30,
            preexec_fn=lambda: _with_terminal(slave),
            cwd=Path(__file__).parents[2],
        )
    except subprocess.TimeoutExpired:
        pytest.fail("loading the TLS key waited for a passphrase on the terminal")
    finally:
        os.close(master)
        os.close(slave)
    assert "refused:" in child.stdout and "encrypted" in child.stdout, child
    assert "hunter22" not in child.stdout + child.stderr


async def test_a_tls_key_that_cannot_be_read_is_named_in_the_web_components_health(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "gone.key"
    cert.write_text("not a certificate\n", encoding="utf-8")
    web = f'tls_cert = "{cert}"\ntls_key = "{key}"'
    config = load_config(write_site(tmp_path, http_sink, web))
    server = WebServer(config)
    with pytest.raises(OSError):
        await server.run()
    error = server.health()["last_error"] or ""
    assert str(cert) in error and str(key) in error, error


async def test_a_link_name_cannot_turn_the_announcement_around(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    """The name typed beside an ack link's button, and a reason, reach SMS and the log as
    they are: a right-to-left override (U+202E) or a control character would let "who, from
    where" read as something else there."""
    async with running(tmp_path, http_sink, LINKS) as site, browser() as http:
        alarm = await site.leak()
        link = ack_link(site.config, alarm, time.time())
        assert link is not None
        query = parse_qs(urlsplit(link).query)
        name = "park\u202e\x00\x1b[2J)01.0.0.01 morf bew( mik"
        form = {"exp": query["exp"][0], "sig": query["sig"][0], "name": name}
        async with http.post(f"{site.base}ack/{alarm}", data=form) as r:
            assert r.status == 200, await r.text()
        [row] = site.query("SELECT declared_by FROM alarm_actions")
        assert row["declared_by"] == "park [2J)01.0.0.01 morf bew( mik"
        assert all(c.isprintable() for c in site.engine.active_alarms()[0]["acked_by"])


async def test_an_unreadable_state_database_is_said_in_the_charts_and_the_timeline(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    config = load_config(write_site(tmp_path, http_sink))
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "sentinel.db").write_bytes(b"not a database " * 100)
    server = WebServer(config)
    task = asyncio.create_task(server.run())
    try:
        await until(lambda: server.urls, 10, "the web server to listen")
        async with aiohttp.ClientSession() as http:
            async with http.get(server.urls[0] + "api/status") as r:
                assert "not a database" in (await r.json())["daemon"]["error"]
            for url in (
                "api/history?sensor=leak-1&kind=water_leak&range=1h",
                "api/history?sensor=leak-1&kind=water_leak&range=30d",
                "api/timeline",
                "api/histories?sensor=leak-1&kind=water_leak&range=7d",
            ):
                async with http.get(server.urls[0] + url) as r:
                    assert r.status == 503, url
                    body = await r.json()
                assert body["ok"] is False and "not a database" in body["error"], body
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_name_the_dashboard_was_not_given_is_refused(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    """DNS rebinding: another site points its own name at this address and its script reads
    the dashboard through a visitor's browser, which sends that name as Host."""
    web = 'hosts = ["sentinel.county.local"]\nbase_url = "https://room.example:8443"'
    async with running(tmp_path, http_sink, web) as site, aiohttp.ClientSession() as http:
        await site.leak()
        port = _port(site.base)
        for path in ("api/status", "api/timeline", "", "events", "login"):
            async with http.get(site.base + path, headers={"Host": f"evil.example:{port}"}) as r:
                assert r.status == 421, path
                assert "evil.example" in (await r.json())["error"]
        async with http.post(
            site.base + "login",
            json={"user": "kim", "password": "x"},
            headers={"Host": "evil.example"},
        ) as r:
            assert r.status == 421
        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            "sentinel.county.local",
            "room.example:8443",
            f"[::1]:{port}",
            f"{socket.gethostname()}:{port}",
        ):
            async with http.get(site.base + "api/status", headers={"Host": host}) as r:
                assert r.status == 200, host
        # a name that only begins with this host's name is anyone's to register
        evil = f"{socket.gethostname()}.evil.example:{port}"
        async with http.get(site.base + "api/status", headers={"Host": evil}) as r:
            assert r.status == 421
        async with http.get(site.base + "api/status", headers={"Host": socket.getfqdn()}) as r:
            assert r.status == 200
        for path in ("healthz", "metrics"):  # monitoring uses whatever name it has
            async with http.get(site.base + path, headers={"Host": "evil.example"}) as r:
                assert r.status == 200, path


async def test_with_view_login_an_open_stream_ends_with_its_session(
    tmp_path: Path, http_sink: HttpSink
) -> None:
    """The live stream was checked only when it opened: a user deleted (or logged out
    elsewhere) kept watching the room for as long as the phone kept the page open."""
    async with running(tmp_path, http_sink, 'view = "login"') as site, browser() as http:
        await login(http, site)
        async with http.get(site.base + "events") as stream:
            assert stream.status == 200
            assert await stream.content.readline() == b"event: status\n"
            add_users(site.users, lee=PASSWORD)  # kim is no longer in the file
            alarm = await site.leak()  # something new for the stream to send
            async with asyncio.timeout(30):
                rest = await stream.content.read()  # until the server ends the stream
        assert alarm.encode() not in rest
