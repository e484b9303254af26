"""Everything one config builds: the alarm engine, delivery, sensor sources, replication,
each started under the supervisor. Rebuilt whole on reload; state lives in SQLite."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from backup.replicator import Replicator
from sensors.reading import Reading
from sentinel import migrations
from sentinel.alarm.engine import Engine
from sentinel.alarm.repository import Enqueue
from sentinel.backup_commands import BackupCommandRunner
from sentinel.component_watch import ComponentWatch
from sentinel.config import Config
from sentinel.credentials import known_secrets
from sentinel.database_watch import build_database_watches
from sentinel.delivery import build_delivery
from sentinel.keeper import build_keeper
from sentinel.keeper_confirm import KeeperConfirm, ReplicaFreshness
from sentinel.mqtt_session import expect_sessions
from sentinel.outputs import build_outputs
from sentinel.replication import (
    DatabaseDrillFeed,
    build_replicators,
    database_drills,
    replication_readings,
)
from sentinel.room_heartbeat import RoomHeartbeat
from sentinel.secrets import SecretMaskingFilter
from sentinel.sources import build_sources
from sentinel.store import Store
from sentinel.supervisor import Component, Supervisor

log = logging.getLogger("sentinel.runtime")

REPLICATION_HEALTH_INTERVAL = 2.0
MQTT_PUBLISH_INTERVAL = 1.0


class SourceComponent:
    """Forwards one sensor source's readings to the alarm engine."""

    def __init__(self, source: Any, submit: Callable[[Reading], Any]) -> None:
        self.source = source
        self.name = f"source:{source.name}"
        self._submit = submit

    async def run(self) -> None:
        async for reading in self.source.readings():
            await self._submit(reading)

    def health(self) -> dict[str, Any]:
        return dict(self.source.health())


class ReplicationHealthFeed:
    """Feeds each replicator's lag, failures and guard state to the engine as readings, so
    replication trouble becomes an alarm on the same road as a leak."""

    name = "replication-health"

    def __init__(
        self, replicators: list[Replicator], engine: Engine, clock: Callable[[], float]
    ) -> None:
        self._replicators = replicators
        self._engine = engine
        self._clock = clock

    async def run(self) -> None:
        while True:
            for reading in replication_readings(self._replicators, now=self._clock()):
                await self._engine.submit(reading)
            await asyncio.sleep(REPLICATION_HEALTH_INTERVAL)

    def health(self) -> dict[str, Any]:
        return {"replicators": len(self._replicators)}


class AlarmPublisher:
    """Publishes the active alarms on MQTT when they change (for Home Assistant and co.)."""

    name = "mqtt-publish"

    def __init__(self, mqtt_source: Any, engine: Engine) -> None:
        self._mqtt = mqtt_source
        self._engine = engine
        self._last: list[dict[str, Any]] | None = None
        self.published = 0

    async def run(self) -> None:
        while True:
            alarms = self._engine.active_alarms()
            if alarms != self._last:
                await self._mqtt.publish_state(alarms)
                self._last = alarms
                self.published += 1
            await asyncio.sleep(MQTT_PUBLISH_INTERVAL)

    def health(self) -> dict[str, Any]:
        return {"published": self.published}


class Runtime:
    def __init__(
        self, config: Config, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        daemon = config.daemon
        self.supervisor = Supervisor(
            alarm_count=daemon.restart_alarm_count,
            alarm_window=daemon.restart_alarm_window,
            # an exception can quote a password or an Apprise URL; status and pages must not
            redact=SecretMaskingFilter(known_secrets(config)).redact,
        )
        self._watch: asyncio.Task[None] | None = None
        self.engine: Engine | None = None
        self.sender: Any = None
        self.outbox: Any = None
        self.sources: list[Any] = []
        self.replicators: list[Any] = []
        self.keeper_rooms: list[RoomHeartbeat] = []
        self.keeper_confirm: KeeperConfirm | None = None
        self.web: Any = None

    @staticmethod
    async def migrate(store: Store) -> None:
        await migrations.migrate(store)

    async def start(self) -> None:
        outbox, self.sender = build_delivery(self.config, self.store, clock=self.clock)
        self.outbox = outbox
        enqueue: Enqueue = outbox.enqueue
        if self.config.web is not None:
            from sentinel.web.ack_links import paging_enqueue  # aiohttp only with [web]

            enqueue = paging_enqueue(self.config, enqueue, self.clock)
        self.engine = Engine(self.store, self.config, enqueue=enqueue, clock=self.clock)
        await self.engine.start()
        components: list[Component] = [self.engine, self.sender]
        self.sources = build_sources(self.config)
        await expect_sessions(self.store.db, self.sources)
        components += [SourceComponent(s, self.engine.submit) for s in self.sources]
        mqtt = next((s for s in self.sources if getattr(s, "announce", False)), None)
        if mqtt is not None:
            components.append(AlarmPublisher(mqtt, self.engine))
        self.replicators = build_replicators(self.config, self.store, clock=self.clock)
        components += self.replicators
        if self.replicators:
            components.append(ReplicationHealthFeed(self.replicators, self.engine, self.clock))
        drills = database_drills(self.config)
        if drills:
            components.append(
                DatabaseDrillFeed(
                    drills, self.config.daemon.state_dir, self.engine.submit, self.clock
                )
            )
            # `sentinel backup resume|discard|sync` rows: applied here, to these replicators
            components.append(BackupCommandRunner(self.store, self.replicators, clock=self.clock))
        # issue 16: a quiet database's log switch and its base backup's age
        components += build_database_watches(
            self.config, self.engine.submit, clock=self.clock, secrets=known_secrets(self.config)
        )
        self.keeper_rooms = [
            RoomHeartbeat(
                rep.spec,
                rc.keeper,
                rc.keeper_room,
                rep,
                self.store.db,
                site=self.config.site.name,
                active_alarms=self.engine.active_alarms,
                submit=self.engine.submit,
                clock=self.clock,
            )
            for rc, rep in zip(self.config.replication, self.replicators, strict=True)
            if rc.keeper is not None
        ]
        components += self.keeper_rooms
        if self.keeper_rooms:
            # only with a keeper does a critical page wait for its "data safe to"
            self.keeper_confirm = KeeperConfirm(self.keeper_rooms, clock=self.clock)
            self.sender.confirm = self.keeper_confirm
        elif self.replicators:
            # no keeper: the power or disaster page says how far the room's own copy got
            self.sender.confirm = ReplicaFreshness(self.replicators, clock=self.clock)
        components += build_keeper(self.config, self.engine.submit, clock=self.clock)
        # sirens and beacons follow the engine's alarms (issue 15)
        components += build_outputs(
            self.config, self.sources, self.engine.active_alarms, self.engine.submit,
            clock=self.clock,
        )  # fmt: skip
        if self.config.web is not None:
            from sentinel.web.server import WebServer  # aiohttp only when the web is on

            self.web = WebServer(self.config, clock=self.clock)
            components.append(self.web)
        for component in components:
            self.supervisor.start(component)
        watch = ComponentWatch(
            self.supervisor,
            self.engine.submit,
            active_alarms=self.engine.active_alarms,
            outbox=outbox,
            templates=self.sender.templates,
            send_timeout=self.sender.send_timeout,
            clock=self.clock,
        )
        self._watch = asyncio.create_task(watch.run(), name="component-watch")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await self.supervisor.stop_all()
        if self.keeper_confirm is not None:
            await self.keeper_confirm.close()
        if self.engine is not None:
            await self.engine.flush()

    def health(self) -> dict[str, Any]:
        return self.supervisor.health()

    def status_line(self) -> str:
        """One line for systemd's STATUS= and the heartbeat: what a person needs first."""
        parts: list[str] = []
        alarms = self.engine.active_alarms() if self.engine else []
        if alarms:
            worst = min(alarms, key=lambda a: (a.get("severity") != "critical", a.get("since", 0)))
            parts.append(
                f"{len(alarms)} alarm(s): {worst.get('severity', '')} "
                f"{worst.get('location') or worst.get('sensor', '')} #{worst.get('id', '')}"
            )
        else:
            parts.append("no alarms")
        failing = (self.sender.health() if self.sender else {}).get("all_channels_failing_since")
        if failing:
            parts.append("ALL ALERT CHANNELS FAILING")
        looping = [s for s in self.supervisor.states.values() if s.failing]
        if looping:
            parts.append(
                "FAILING: "
                + ", ".join(
                    f"{s.name} ({self.supervisor.restarts_in_window(s)} restarts)" for s in looping
                )
            )
        restarting = [
            n
            for n, s in self.supervisor.states.items()
            if s.state == "restarting" and not s.failing
        ]
        if restarting:
            parts.append("restarting: " + ", ".join(restarting))
        return "; ".join(parts)
