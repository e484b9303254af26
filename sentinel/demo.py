"""`sentinel demo`: the whole daemon on embedded defaults, in a temporary directory.

A real mosquitto broker on a free loopback port, simulated sensors publishing in Zigbee2MQTT
and Tasmota shapes, an "On-Nara" document folder replicated to the landing area of a keeper
(the health-center role, `sentinel/demo_keeper.py`), and alerts printed to this console
(Apprise `console://`) and appended to a file (`sentinelfile://`). The demo ends with the
room daemon gone and the keeper's page about it.
"""

from __future__ import annotations

import asyncio
import filecmp
import logging
import os
import random
import secrets
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from backup.markers import SOURCE_MARKER
from sensors.sim.broker import Broker, BrokerMissing, start_broker
from sensors.sim.publisher import play
from sensors.sim.scenario import (
    BASE_HUMIDITY,
    BASE_TEMPERATURE,
    CLIMATE_DEVICE,
    DEVICES,
    LEAK_DEVICE,
    SMOKE_DEVICE,
    Event,
)
from sentinel.config import load_config
from sentinel.credentials import install_log_masking
from sentinel.daemon import Daemon
from sentinel.demo_keeper import (
    ROOM,
    SILENT_AFTER,
    DemoKeeper,
    prepare_keeper,
    start_keeper,
    stop_keeper,
    wait_for_silence_page,
)
from sentinel.logs import setup_logging

log = logging.getLogger("sentinel.demo")

SITE = "데모 군청 전산실"
WEB_PORT = 8080
DEMO_USER = "demo"
VERSIONS_DIR = ".sentinel-versions"

CONFIG = """\
# Written by `sentinel demo`. A real deployment's file is /etc/sentinel/sentinel.toml;
# see examples/sentinel.toml for every key.
[site]
name = "{site}"

[daemon]
state_dir = "{work}/state"
heartbeat = "2s"
log_level = "info"

[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "sentinel-demo"
publish_prefix = "sentinel"

[[sensors]]
id = "leak-ups"
location = "전산실 UPS 하단 누수"
kind = "water_leak"
format = "zigbee2mqtt"
topic = "zigbee2mqtt/{leak}"
max_age = "5m"

[[sensors]]
id = "temp-rack1"
location = "1번 랙 상단 온도"
kind = "temperature"
format = "tasmota"
topic = "{climate}"
max_age = "5m"

[[sensors]]
id = "hum-rack1"
location = "1번 랙 상단 습도"
kind = "humidity"
format = "tasmota"
topic = "{climate}"
max_age = "5m"

[[sensors]]
id = "smoke-ceiling"
location = "전산실 천장 연기"
kind = "smoke"
format = "zigbee2mqtt"
topic = "zigbee2mqtt/{smoke}"
max_age = "5m"

[web]
# the dashboard and /metrics; loopback only
listen = "127.0.0.1"
port = {web_port}
language = "ko"
users_file = "web-users"

[alerts]
apprise_config = "apprise.yml"
language = "ko"
group_window = "3s"

[[replication]]
name = "onnara"
source = "{work}/onnara"
# the landing area of the demo's health center: a keeper snapshots it (docs/keeper.md)
target = "{landing}"

[replication.keeper]
room = "{room}"
heartbeat = "2s"
receipt = "{receipt}"
"""

APPRISE = """\
# Apprise's own config format. A real site lists SMS gateways, KakaoTalk, Telegram, e-mail.
urls:
  - console://:
      tag: critical, warning, info
  - sentinelfile://{work}/alerts.log:
      tag: critical, warning, info
"""


def start_demo_broker(work: Path) -> Broker:
    try:
        return start_broker(work)
    except BrokerMissing as exc:
        raise SystemExit(f"sentinel demo: {exc}, or run `bash scripts/demo.sh`") from None


def private_file(path: Path, text: str) -> None:
    """Credential-style files must not be readable by others, or the daemon refuses them."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def web_port(preferred: int = WEB_PORT) -> int:
    """The dashboard's port: 8080 when free, else any free loopback port."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise SystemExit("sentinel demo: no free loopback port for the dashboard")


def demo_user(work: Path) -> str:
    """A dashboard login for this demo only (a fresh random password, printed in the
    banner), so a newcomer can acknowledge the leak from the page."""
    from sentinel.web import users

    password = secrets.token_urlsafe(9)
    users.write(work / "web-users", {DEMO_USER: users.HASHER.hash(password)})
    return password


def prepare(work: Path, port: int, keeper: DemoKeeper, web: int) -> Path:
    (work / "onnara" / "결재").mkdir(parents=True, exist_ok=True)
    for n in range(1, 6):
        (work / "onnara" / "결재" / f"기안-{n:04d}.hwp").write_bytes(os.urandom(2048))
    private_file(work / "apprise.yml", APPRISE.format(work=work))
    config = work / "sentinel.toml"
    private_file(
        config,
        CONFIG.format(
            site=SITE,
            work=work,
            port=port,
            web_port=web,
            leak=LEAK_DEVICE,
            climate=CLIMATE_DEVICE,
            smoke=SMOKE_DEVICE,
            landing=keeper.landing,
            room=ROOM,
            receipt=keeper.receipt,
        ),
    )
    return config


def room_story() -> tuple[list[Event], list[Event]]:
    """What happens in the demo room: (Zigbee2MQTT events, Tasmota events), in seconds."""
    z2m = [Event(0, d, online=True) for d in (LEAK_DEVICE, SMOKE_DEVICE)]
    z2m += [
        Event(0, LEAK_DEVICE, {"water_leak": False, "battery": 98.0, "battery_low": False}),
        Event(0, SMOKE_DEVICE, {"smoke": False, "battery": 95.0, "battery_low": False}),
        Event(10, LEAK_DEVICE, {"water_leak": True, "battery": 98.0}),  # water under the UPS
        Event(30, LEAK_DEVICE, {"water_leak": False, "battery": 98.0}),  # mopped up
        Event(120, SMOKE_DEVICE, {"smoke": True, "battery": 95.0}),
        Event(135, SMOKE_DEVICE, {"smoke": False, "battery": 95.0}),
    ]
    tasmota = [Event(0, CLIMATE_DEVICE, online=True)]
    # The cooling fails at 35 s: +12 °C/min, then it is fixed at 95 s and the room cools.
    for t in range(0, 150, 5):
        if t < 35:
            temp = BASE_TEMPERATURE
        elif t <= 95:
            temp = BASE_TEMPERATURE + 12.0 * (t - 35) / 60.0
        else:
            temp = max(BASE_TEMPERATURE, BASE_TEMPERATURE + 12.0 - 15.0 * (t - 95) / 60.0)
        tasmota.append(
            Event(t, CLIMATE_DEVICE, {"temperature": round(temp, 1), "humidity": BASE_HUMIDITY})
        )
    return z2m, tasmota


async def keep_alive(port: int, start_after: float) -> None:
    """After the story, the devices keep reporting a normal room so none is 'lost'."""
    await asyncio.sleep(start_after)
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", port, identifier="sentinel-demo-idle") as client:
        while True:
            for device in DEVICES:
                fields = {
                    LEAK_DEVICE: {"water_leak": False, "battery": 98.0},
                    SMOKE_DEVICE: {"smoke": False, "battery": 95.0},
                }.get(device)
                if fields is not None:
                    events = [Event(0, device, fields)]
                    await play(events, client, fmt="zigbee2mqtt")
            climate = {"temperature": BASE_TEMPERATURE, "humidity": BASE_HUMIDITY}
            await play([Event(0, CLIMATE_DEVICE, climate)], client, fmt="tasmota")
            await asyncio.sleep(30)


def mqtt_connected(daemon: Daemon) -> bool:
    runtime = daemon.runtime
    mqtt = [s for s in runtime.sources if s.name.startswith("mqtt")] if runtime else []
    return bool(mqtt) and all(s.health().get("state") == "connected" for s in mqtt)


async def play_story(port: int, after: Callable[[], bool]) -> None:
    """Plays the room's story once the daemon listens (plain messages are not retained)."""
    import aiomqtt

    while not after():  # noqa: ASYNC110 - the daemon's health has no event to wait on
        await asyncio.sleep(0.1)
    z2m, tasmota = room_story()
    async with (
        aiomqtt.Client("127.0.0.1", port, identifier="sentinel-demo-z2m") as zc,
        aiomqtt.Client("127.0.0.1", port, identifier="sentinel-demo-tasmota") as tc,
    ):
        await asyncio.gather(play(z2m, zc, fmt="zigbee2mqtt"), play(tasmota, tc, fmt="tasmota"))


async def write_documents(source: Path) -> None:
    """Clerks at work: new approval documents, edits, and now and then a deletion."""
    rng = random.Random(7)
    n = 100
    while True:
        await asyncio.sleep(3)
        n += 1
        folder = source / "결재" / time.strftime("%Y-%m")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"기안-{n:04d}.hwp").write_bytes(os.urandom(rng.randint(1024, 64 * 1024)))
        existing = sorted(source.rglob("*.hwp"))
        if existing and n % 4 == 0:
            with rng.choice(existing).open("ab") as f:
                f.write(b"\n[revised]")
        if len(existing) > 3 and n % 10 == 0:
            rng.choice(existing).unlink()


async def finish_after(seconds: float, daemon: Daemon, writer: asyncio.Task[None]) -> None:
    """A timed demo ends like a quiet evening: the clerks stop, the replica catches up
    (bounded), then the daemon stops, so the summary compares a settled replica."""
    await asyncio.sleep(seconds)
    writer.cancel()
    await asyncio.sleep(0.5)  # let inotify deliver the last writes before judging "caught up"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runtime = daemon.runtime
        if runtime is None or all(r.caught_up for r in runtime.replicators):
            break
        await asyncio.sleep(0.1)
    daemon.request_stop()


def banner(work: Path, config: Path, port: int, keeper: DemoKeeper, web: int, password: str) -> str:
    return f"""
sentinel demo — the whole daemon on embedded defaults, in {work}

  broker     mosquitto on 127.0.0.1:{port} (simulated Zigbee2MQTT and Tasmota devices)
  sensors    leak under the UPS, rack temperature/humidity, ceiling smoke
  documents  {work}/onnara  ->  landing area {keeper.landing}  (versions in {VERSIONS_DIR}/)
  keeper     {keeper.describe()}
             snapshots in {keeper.root}/snapshots, its pages in {keeper.pages}
  alerts     printed here ([failure] ...) and appended to {work}/alerts.log
  dashboard  http://127.0.0.1:{web}/   (open it: the leak at 10 s turns it red)
             log in as {DEMO_USER} / {password} to acknowledge or silence from the page
  metrics    http://127.0.0.1:{web}/metrics   (Prometheus)

What happens: water under the UPS at 10 s (critical page), mopped up at 30 s (resolved);
the cooling fails at 35 s (heat warning near 68 s, critical near 93 s, then it cools);
smoke at 120 s. Clerks save a document every 3 s; watch them arrive at the health center.
When the room daemon stops (Ctrl-C), the keeper notices the silence within
{SILENT_AFTER:g} s and pages, saying up to when the data is safe.

In another terminal:
  .venv/bin/sentinel --config {config} status
  .venv/bin/sentinel --config {keeper.config} keeper status
  .venv/bin/sentinel --config {config} ack <alarm id> --by me
Stop with Ctrl-C.
"""


async def _demo(work: Path, duration: float | None) -> int:
    broker = start_demo_broker(work)
    keeper = prepare_keeper(work)
    try:
        web = web_port()
        config_path = prepare(work, broker.port, keeper, web)
        password = demo_user(work)
        config = load_config(config_path)
        setup_logging(config.daemon.log_level)
        install_log_masking(config)
        print(banner(work, config_path, broker.port, keeper, web, password), flush=True)
        start_keeper(keeper)
        daemon = Daemon(config, config_path)
        writer = asyncio.create_task(write_documents(work / "onnara"))
        helpers = [
            asyncio.create_task(play_story(broker.port, after=lambda: mqtt_connected(daemon))),
            asyncio.create_task(keep_alive(broker.port, start_after=150)),
            writer,
        ]
        if duration is not None:
            helpers.append(asyncio.create_task(finish_after(duration, daemon, writer)))
        code = await daemon.run()
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        print(summary(work, keeper), flush=True)
        print(
            f"\nThe room daemon is gone, as if the power had failed. The keeper at the health "
            f"center pages once it has heard nothing for {SILENT_AFTER:g} s ...",
            flush=True,
        )
        page = await asyncio.to_thread(wait_for_silence_page, keeper, timeout=SILENT_AFTER + 20)
        stop_keeper(keeper)
        if page is None:
            print(f"demo: the keeper did not page (see {keeper.root / 'keeper.log'})", flush=True)
            return code or 1
        print(f"[keeper page] {page}", flush=True)
        return code
    finally:
        stop_keeper(keeper)
        broker.stop()


def summary(work: Path, keeper: DemoKeeper) -> str:
    source, replica = work / "onnara", keeper.landing
    # the source marker stays at the source (backup/markers.py); documents are what count
    files = [p for p in source.rglob("*") if p.is_file() and p.name != SOURCE_MARKER]
    same = sum(
        1
        for p in files
        if (replica / p.relative_to(source)).is_file()
        and filecmp.cmp(p, replica / p.relative_to(source), shallow=False)
    )
    alerts = work / "alerts.log"
    sent = len(alerts.read_text(encoding="utf-8").splitlines()) if alerts.exists() else 0
    return (
        f"\ndemo finished: {same}/{len(files)} documents identical at the health center, "
        f"{sent} alert messages in {alerts}.\nState kept in {work} "
        f"(`sentinel --config {work}/sentinel.toml status` still works)."
    )


def run_demo(*, duration: float | None = None, workdir: Path | None = None) -> int:
    work = workdir or Path(tempfile.mkdtemp(prefix="sentinel-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    # Ctrl-C is handled by the daemon (graceful stop); keep the default handler out of it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return asyncio.run(_demo(work, duration))
