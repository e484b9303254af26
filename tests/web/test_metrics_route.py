"""GET /metrics on the web server, over real HTTP on loopback: served by default, a 404 with
`[web] metrics = false`, never cached."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from sentinel.config import load_config
from sentinel.web.metrics import CONTENT_TYPE
from sentinel.web.server import WebServer
from tests.fixtures.poll import until


def write_config(tmp_path: Path, web: str) -> Path:
    path = tmp_path / "sentinel.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        '[[sensors]]\nid = "temp-rack1"\nlocation = "rack 1"\nkind = "temperature"\n'
        'topic = "zigbee2mqtt/temp-rack1"\n[mqtt]\nhost = "127.0.0.1"\n'
        f"[web]\nport = 0\n{web}\n",
        encoding="utf-8",
    )
    return path


async def get_metrics(tmp_path: Path, web: str) -> tuple[int, str, str, str]:
    server = WebServer(load_config(write_config(tmp_path, web)))
    task = asyncio.create_task(server.run())
    try:
        await until(lambda: server.urls, 10, "the web server to listen")
        async with (
            aiohttp.ClientSession() as http,
            http.get(server.urls[0] + "metrics") as response,
        ):
            return (
                response.status,
                response.headers.get("Content-Type", ""),
                response.headers.get("Cache-Control", ""),
                await response.text(),
            )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_metrics_are_served_in_the_prometheus_text_format(tmp_path: Path) -> None:
    status, content_type, cache, body = await get_metrics(tmp_path, "")
    assert status == 200
    assert content_type == CONTENT_TYPE
    assert cache == "no-store"
    families = {f.name: f for f in text_string_to_metric_families(body)}
    # no daemon ever ran on this state directory: status says UNKNOWN, the scrape agrees
    assert families["sentinel_overall_state"].samples[0].value == 3.0
    assert families["sentinel_up"].samples[0].value == 1.0


async def test_metrics_off_is_not_found(tmp_path: Path) -> None:
    status, _, _, body = await get_metrics(tmp_path, "metrics = false")
    assert status == 404
    assert "sentinel_" not in body
