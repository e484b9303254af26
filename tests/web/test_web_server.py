"""The web server's core: its config, the downsampled history, the shared snapshot and the
live stream, over real HTTP on loopback against a real state database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sentinel import migrations
from sentinel.config import ConfigError, load_config
from sentinel.store import Store
from sentinel.web import history
from sentinel.web.server import WebServer
from sentinel.web.snapshot import Snapshot
from tests.fixtures.poll import until

NOW = 1_800_000_000.0


def write_config(tmp_path: Path, web: str) -> Path:
    path = tmp_path / "sentinel.toml"
    path.write_text(
        f"""
[daemon]
state_dir = "{tmp_path / "state"}"

[[sensors]]
id = "temp-rack1"
location = "rack 1"
kind = "temperature"
format = "json"
topic = "t"

[mqtt]
host = "127.0.0.1"

[[rules]]
sensor = "temp-rack1"
warn_high = 28.0
crit_high = 33.0

{web}
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("web", "message"),
    [
        ('[web]\nlisten = "localhost"', "expected an IP address"),
        ('[web]\ntls_cert = "c.pem"', "tls_cert and tls_key go together"),
        ("[web]\nack_links = true", "ack_links needs base_url"),
        ('[web]\ntrusted_proxies = ["proxy"]', "expected addresses or networks"),
        ("[web]\nport = 70000", "web.port"),
        ('[web]\nbase_url = "sentinel.county.local:8443"', "base_url: expected the address"),
        ('[web]\nbase_url = "https://"', "base_url: expected the address"),
        ('[web]\nhosts = ["sentinel.county.local:8443"]', "without a scheme or a port"),
        ('[web]\nbase_url = "https://room.example:84x3"', "base_url: Port could not"),
    ],
)
def test_a_broken_web_section_is_refused_with_the_reason(
    tmp_path: Path, web: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, web))


def test_web_files_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load_config(
        write_config(tmp_path, '[web]\nusers_file = "users"\ntls_cert = "c"\ntls_key = "k"')
    )
    assert config.web is not None
    assert config.web.users_file == tmp_path / "users"
    assert config.web.tls_cert == tmp_path / "c"
    assert config.web.tls
    assert load_config(write_config(tmp_path, "")).web is None


async def fill_history(store: Store, rows: list[tuple[str, str, float, str | None]]) -> None:
    await migrations.migrate(store)
    async with store.write() as db:
        await db.executemany(
            "INSERT INTO alarm_history(sensor_id, kind, ts, value) VALUES (?, ?, ?, ?)", rows
        )


async def test_thirty_days_come_back_as_at_most_720_buckets_that_keep_the_peak(
    store: Store, tmp_path: Path
) -> None:
    minutes = 30 * 24 * 60
    rows = [("temp-rack1", "temperature", NOW - 60.0 * i, "22.5") for i in range(minutes)]
    rows[1000] = ("temp-rack1", "temperature", rows[1000][2], "41.25")  # one short spike
    rows.append(("temp-rack1", "temperature", NOW - 30.0, None))  # a fault: no value
    rows.append(("other", "temperature", NOW - 10.0, "99.0"))  # another sensor
    await fill_history(store, rows)
    out = history.query(tmp_path / "state", "temp-rack1", "temperature", 30 * 86400.0, NOW)
    assert 700 <= len(out["t"]) <= history.MAX_POINTS
    assert max(v for v in out["max"] if v is not None) == 41.25
    assert min(v for v in out["min"] if v is not None) == 22.5
    assert out["t"] == sorted(out["t"])
    assert out["t"][0] >= NOW - 30 * 86400.0


async def test_a_leak_sensor_charts_as_zero_and_one(store: Store, tmp_path: Path) -> None:
    await fill_history(
        store,
        [
            ("leak", "water_leak", NOW - 3000, "false"),
            ("leak", "water_leak", NOW - 2000, "true"),
            ("leak", "water_leak", NOW - 1000, "false"),
        ],
    )
    out = history.query(tmp_path / "state", "leak", "water_leak", 3600.0, NOW)
    assert out["max"] == [0.0, 1.0, 0.0]


def test_history_of_a_daemon_that_never_ran_is_empty(tmp_path: Path) -> None:
    out = history.query(tmp_path / "nothing", "s", "temperature", 3600.0, NOW)
    assert out["t"] == []


async def test_ten_streams_share_one_report_build_per_interval() -> None:
    builds = 0

    def build(_config: Any) -> dict[str, Any]:
        nonlocal builds
        builds += 1
        return {"n": builds}

    snapshot = Snapshot(None, interval=0.2, build=build)  # type: ignore[arg-type]
    runner = asyncio.create_task(snapshot.run())
    seen: list[list[int]] = [[] for _ in range(10)]

    async def client(i: int) -> None:
        version = -1
        while len(seen[i]) < 3:
            if await snapshot.wait_newer(version, 5.0):
                version = snapshot.version
                seen[i].append(json.loads(await snapshot.report_json())["n"])

    snapshot.watchers = 10
    await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(10))), 10)
    runner.cancel()
    # every client saw the same reports; building them did not multiply by the clients
    assert all(s == seen[0] for s in seen)
    assert builds <= seen[0][-1] + 1


async def test_the_server_serves_status_history_and_a_live_stream(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[web]\nport = 0\nlanguage = "en"'))
    store = await Store.open(tmp_path / "state")
    try:
        await fill_history(store, [("temp-rack1", "temperature", 100.0, "21.0")])
        server = WebServer(config)
        task = asyncio.create_task(server.run())
        await until(lambda: server.urls, 10, "the web server to listen")
        base = server.urls[0]
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "api/status") as r:
                report = await r.json()
                assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
            assert report["web"]["language"] == "en"
            assert report["overall"]["state"] in ("UNKNOWN", "CRITICAL", "WARNING", "OK")
            async with http.get(
                base + "api/history", params={"sensor": "temp-rack1", "kind": "temperature"}
            ) as r:
                chart = await r.json()
            assert chart["thresholds"]["warn_high"] == 28.0
            assert chart["thresholds"]["crit_high"] == 33.0
            async with http.get(base + "api/history", params={"range": "1y"}) as r:
                assert r.status == 400
            # the page's batch: every tile's chart in one request, in the order asked
            batch = [("sensor", "temp-rack1"), ("kind", "temperature"), ("range", "1h")]
            batch += [("sensor", "nothing"), ("kind", "smoke"), ("range", "30d")]
            async with http.get(base + "api/histories", params=batch) as r:
                # compressed for a phone (aiohttp's client asks for gzip and unpacks it)
                assert r.headers["Content-Encoding"] == "gzip"
                charts = (await r.json())["charts"]
            assert [(c["sensor"], c["range"]) for c in charts] == [
                ("temp-rack1", "1h"),
                ("nothing", "30d"),
            ]
            assert charts[0]["thresholds"]["crit_high"] == 33.0 and charts[1]["t"] == []
            async with http.get(base + "api/histories", params=batch[:5]) as r:
                assert r.status == 400
            # what index.html preloads: every configured chart at one range
            async with http.get(base + "api/histories", params={"all": "24h"}) as r:
                preload = (await r.json())["charts"]
            assert [(c["sensor"], c["kind"], c["range"]) for c in preload] == [
                ("temp-rack1", "temperature", "24h")
            ]
            async with http.get(base + "events") as r:
                assert r.headers["Content-Type"].startswith("text/event-stream")
                line = await r.content.readline()
                assert line == b"event: status\n"
                data = json.loads((await r.content.readline()).removeprefix(b"data: "))
                assert data["state_dir"] == str(tmp_path / "state")
            async with http.get(base + "static/../../config/web.py") as r:
                assert r.status in (403, 404)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert server.urls == []
    finally:
        await store.close()


async def test_a_port_already_taken_is_an_error_the_supervisor_sees(tmp_path: Path) -> None:
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    config = load_config(write_config(tmp_path, f"[web]\nport = {port}"))
    server = WebServer(config)
    try:
        with pytest.raises(OSError):
            await server.run()
        assert f"127.0.0.1:{port}" in (server.health()["last_error"] or "")
    finally:
        blocker.close()


async def test_history_kept_before_the_rollup_existed_is_rolled_up_by_the_migration(
    store: Store, tmp_path: Path
) -> None:
    from sentinel.alarm import schema

    await store.migrate(schema.OWNER, schema.MIGRATIONS)  # a database from before the roll-up
    start = (NOW - 7 * 86400.0) // 600 * 600 + 3 * 86400.0
    async with store.write() as db:
        await db.executemany(
            "INSERT INTO alarm_history(sensor_id, kind, ts, value) VALUES (?, ?, ?, ?)",
            # five minutes of one 20-minute chart step (7 d charts step by 20 min)
            [("t", "temperature", start + i * 60.0, f"{20 + i}") for i in range(5)],
        )
    await migrations.migrate(store)
    out = history.query(tmp_path / "state", "t", "temperature", 7 * 86400.0, NOW)
    assert out["source"] == "rollup"
    assert out["min"] == [20.0] and out["max"] == [24.0] and out["avg"] == [22.0]


async def test_pruned_history_takes_its_rollups_with_it(store: Store, tmp_path: Path) -> None:
    from sentinel.alarm.repository import Repository

    await fill_history(
        store,
        [("t", "temperature", NOW - 20 * 86400.0, "30.0"), ("t", "temperature", NOW - 60, "21.0")],
    )
    await Repository(store, enqueue=None).save_samples(  # type: ignore[arg-type]
        [], [], prune_before=NOW - 10 * 86400.0
    )
    out = history.query(tmp_path / "state", "t", "temperature", 30 * 86400.0, NOW)
    assert out["max"] == [21.0]


async def test_the_hour_reads_raw_samples_and_the_day_minute_rollups(
    store: Store, tmp_path: Path
) -> None:
    base = NOW // 60 * 60 - 3600
    # ten-second samples: one minute peaks at 30.5 for ten seconds
    rows = [("t", "temperature", base + 10.0 * i, "21.0") for i in range(360)]
    rows[100] = ("t", "temperature", base + 1000.0, "30.5")
    await fill_history(store, rows)
    hour = history.query(tmp_path / "state", "t", "temperature", 3600.0, NOW)
    assert hour["source"] == "samples" and max(v for v in hour["max"] if v) == 30.5
    day = history.query(tmp_path / "state", "t", "temperature", 86400.0, NOW)
    assert day["source"] == "rollup" and day["step"] == 120.0
    assert 30 <= len(day["t"]) <= 31  # an hour of two-minute steps
    assert max(v for v in day["max"] if v) == 30.5 and min(v for v in day["min"] if v) == 21.0


async def test_streams_hear_of_changes_not_of_clocks() -> None:
    """A report that only aged is not pushed each second (a phone on a mobile network),
    but a new alarm is pushed at the next build."""
    state = {"alarms": [], "generated": 0.0, "sensors": [{"id": "t", "age": 0.0}]}

    def build(_config: Any) -> dict[str, Any]:
        state["generated"] = float(state["generated"]) + 1  # type: ignore[arg-type]
        state["sensors"][0]["age"] += 1  # type: ignore[index]
        return json.loads(json.dumps(state))

    snapshot = Snapshot(None, interval=0.05, build=build)  # type: ignore[arg-type]
    snapshot.watchers = 1
    runner = asyncio.create_task(snapshot.run())
    try:
        assert await snapshot.wait_newer(0, 5.0)
        first = snapshot.version
        assert not await snapshot.wait_newer(first, 0.5)  # ten builds, only ages changed
        assert snapshot.builds >= 5
        state["alarms"] = [{"id": "EYDH", "state": "firing"}]
        assert await snapshot.wait_newer(first, 2.0)
        assert json.loads(await snapshot.report_json())["alarms"][0]["id"] == "EYDH"
    finally:
        runner.cancel()
