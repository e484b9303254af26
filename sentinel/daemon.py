"""The daemon's lifecycle in one place: open the store, start every component under the
supervisor, beat, ping the watchdog, reload on SIGHUP, stop cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from alerts import reasons
from alerts.event import AlarmEvent, EventType, Severity
from sentinel import __version__, livestatus
from sentinel.config import Config, ConfigError, load_config
from sentinel.heartbeat import beat, pid_alive
from sentinel.notify import Notifier
from sentinel.preflight import preflight
from sentinel.runtime import Runtime
from sentinel.state_lock import StateDirLocked, StateLock
from sentinel.store import Store

log = logging.getLogger("sentinel.daemon")

# The id the state database's own pages carry (not an engine alarm: `ack` does not apply).
STATE_DB_ALARM_ID = "DB"
STATE_DB_SENSOR = "sentinel:state-db"

# `sentinel run` refusing to start (systemd's Restart=on-failure retries it: docs/install.md)
EXIT_REFUSED = 2

# systemd's default TimeoutStopSec is 90 s; we promise 10 s, so each stop step is bounded.
STOP_STEP_TIMEOUT = 4.0


class Daemon:
    """One run of `sentinel run`: owns the store and the runtime built from the config."""

    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.started = clock()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        # set with either of the two above: the heartbeat loop waits on this one event
        # instead of a task per event per heartbeat
        self._wake = asyncio.Event()
        self._last_status = ""
        self._rooms_seen: dict[str, Any] = {}
        self.runtime: Runtime | None = None
        self.reload_error: str | None = None
        self._durable = True
        self._degradations = 0
        self._live_error: str | None = None
        self._live_path = livestatus.path_for(config.daemon.state_dir)
        # what the previous run's live status file said (read before ours replaces it)
        self._previous: dict[str, Any] | None = None
        self._locked = False

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload.set()
        self._wake.set()

    async def run(self) -> int:
        state_dir = self.config.daemon.state_dir
        try:
            lock: StateLock | None = StateLock.acquire(state_dir)
        except StateDirLocked as exc:
            log.critical("refusing to start: %s", exc)
            # systemd retries (Restart=on-failure); `systemctl status` shows why meanwhile
            self.notifier.status(f"refusing to start: {exc}")
            self.notifier.close()
            return EXIT_REFUSED
        except OSError as exc:
            # no lock file and none can be made: the store runs from memory anyway
            log.warning(
                "cannot lock the state directory %s (%s): a second daemon on it "
                "would not be refused",
                state_dir,
                exc.strerror or exc,
            )
            lock = None
        self._locked = lock is not None
        try:
            self._previous = livestatus.read(self._live_path)
            return await self._run_locked(state_dir)
        finally:
            if lock is not None:
                lock.release()

    async def _run_locked(self, state_dir: Path) -> int:
        async with self._signals():
            store = await Store.open(state_dir, resilient=True, clock=self.clock)
            try:
                return await self._serve(store)
            finally:
                if not store.durable:
                    if await store.try_durable():
                        self._mark_live_durable()
                    else:
                        log.error(
                            "stopping while the state database cannot be written (%s): "
                            "what happened since %s is lost",
                            store.problem,
                            time.strftime("%H:%M:%S", time.localtime(store.problem_since)),
                        )
                await store.close()
                self.notifier.close()
                log.info("stopped")

    async def _serve(self, store: Store) -> int:
        await Runtime.migrate(store)
        self.runtime = Runtime(self.config, store, clock=self.clock)
        pinger: asyncio.Task[None] | None = None
        try:
            # inside the try: a start that fails half way still stops what it started
            await self.runtime.start()
            await self._announce_store(store)
            await self._announce_lost_state(store)
            await self._beat(store)
            self.notifier.ready(self.runtime.status_line())
            log.info("sentinel %s started: %s", __version__, self.config.summary())
            pinger = asyncio.create_task(self._watchdog(), name="watchdog")
            while not self._stop.is_set():
                await self._wait_for_event(self.config.daemon.heartbeat)
                if self._reload.is_set():
                    self._reload.clear()
                    await self._do_reload(store)
                await self._watch_store(store)
                try:
                    await self._beat(store)
                except Exception as exc:
                    # A missed heartbeat shows as a stale one in status; the daemon goes on.
                    # When the store has just left an unwritable file, it said so already.
                    level = logging.DEBUG if not store.durable else logging.ERROR
                    log.log(level, "cannot write the heartbeat: %s", exc)
        finally:
            if pinger is not None:
                pinger.cancel()
                await asyncio.gather(pinger, return_exceptions=True)
            log.info("stopping")
            self.notifier.stopping()
            try:
                async with asyncio.timeout(STOP_STEP_TIMEOUT * 2):
                    await self.runtime.stop()
            except TimeoutError:
                log.error("components did not stop within %.0f s", STOP_STEP_TIMEOUT * 2)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_STEP_TIMEOUT):
                    await self._beat(store, stopped=True)
        return 0

    async def _wait_for_event(self, seconds: float) -> None:
        """Returns after `seconds`, or at once when a stop or reload is (or was) requested."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        # the caller acts on _stop and _reload before it waits again
        self._wake.clear()

    async def _do_reload(self, store: Store) -> None:
        if self.config_path is None:
            log.warning("SIGHUP ignored: this daemon runs on embedded defaults, no file to reload")
            return
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
            if new.daemon.state_dir != self.config.daemon.state_dir:
                raise ConfigError(
                    f"{self.config_path}: daemon.state_dir cannot change on reload "
                    "(restart the service instead)"
                )
            problems = preflight(new, self.config_path)
            if problems:
                raise ConfigError("\n".join(problems))
        except ConfigError as exc:
            self.reload_error = f"config reload rejected: {str(exc).splitlines()[0]} (see log)"
            log.error("config reload rejected, keeping the running config:\n%s", exc)
            self.notifier.ready(self.reload_error)
            return
        assert self.runtime is not None
        log.info("reloading config from %s", self.config_path)
        await self.runtime.stop()
        self.config = new
        self.reload_error = None
        self.runtime = Runtime(new, store, clock=self.clock)
        await self.runtime.start()
        self.notifier.ready(self.runtime.status_line())
        log.info("config reloaded: %s", new.summary())

    # -- the state database's own health -----------------------------------------------------

    async def _announce_store(self, store: Store) -> None:
        """Pages what opening the state database found: a damaged file set aside, or a file
        that cannot be written (the daemon then runs from memory)."""
        if store.recovered:
            await self._notice(
                store,
                EventType.FIRING,
                "state database was corrupt, started fresh",
                f"state database was corrupt, started fresh ({store.recovered['reason']}); "
                f"the damaged file was kept as {store.recovered['moved_to']}: alarm history, "
                "silences and pending pages from before are not in the new one",
                (
                    reasons.STATE_DB_CORRUPT,
                    {"problem": store.recovered["reason"], "moved_to": store.recovered["moved_to"]},
                ),
            )
        await self._watch_store(store)

    async def _announce_lost_state(self, store: Store) -> None:
        """The previous run ended (kill -9, a crash, or a stop) while it ran from memory:
        what it held since then is gone, and the alarms active then will not page again
        while their sensors (which report only on change) stay where they are."""
        prev = self._previous
        if not prev or prev.get("durable") is not False:
            return
        try:
            pid = int(prev.get("pid") or 0)
            since = float((prev.get("components") or {}).get("state-db", {}).get("since") or 0)
            last = float(prev.get("ts") or 0)
            active = [a for a in prev.get("alarms") or [] if isinstance(a, dict)]
        except (TypeError, ValueError, AttributeError):
            log.warning(
                "the previous run's live status file %s is not what this version "
                "writes; not checked for state lost by a not-durable run",
                self._live_path,
            )
            return
        # Holding the lock proves that run is over; without it, trust only a dead pid.
        if pid == os.getpid() or (not self._locked and pid_alive(pid)):
            return
        when = _clock_time(since) if since else "?"
        alarms = ", ".join(_alarm_label(a) for a in active) or "none"
        text = (
            f"sentinel restarted after running without a durable state database since "
            f"{when}: alarms active then: {alarms}; they may not page again"
        )
        log.critical(
            "%s (last heard from at %s, pid %s)",
            text,
            _clock_time(last) if last else "?",
            pid or "?",
        )
        # the SMS carries about 60 characters of location: the alarm ids are what to check
        ids = (
            " ".join(
                f"{a.get('location') or a.get('sensor', '?')} #{a.get('id', '?')}" for a in active
            )
            or "no alarms"
        )
        hhmm = time.strftime("%H:%M", time.localtime(since)) if since else "?"
        short = f"restarted, not durable since {hhmm}: {ids}"
        lost = [
            {
                "id": str(a.get("id", "?")),
                "location": str(a.get("location") or a.get("sensor", "?")),
            }
            for a in active
        ]
        await self._notice(
            store,
            EventType.FIRING,
            short,
            text,
            (reasons.STATE_DB_LOST, {"since": hhmm, "alarms": lost}),
        )

    async def _watch_store(self, store: Store) -> None:
        """Every heartbeat: a file deleted or replaced under us is noticed, a store running
        from memory tries the file again, and each change of durability pages."""
        try:
            await store.check()
            if not store.durable:
                await store.try_durable()
        except Exception as exc:  # never let the watch itself stop the daemon
            log.error("state database check failed: %s", exc)
        if store.degradations != self._degradations:
            self._degradations = store.degradations
            self._durable = False
            await self._notice(
                store,
                EventType.FIRING,
                f"state database not writable: {store.last_problem}",
                f"state database not writable: {store.last_problem}; alarms still page from "
                "memory, but nothing is durable (lost if sentinel restarts)",
                (reasons.STATE_DB_DOWN, {"path": str(store.path), "problem": store.last_problem}),
            )
        if store.durable and not self._durable:
            self._durable = True
            await self._notice(
                store,
                EventType.RESOLVED,
                "state database writable again",
                f"state database {store.path} writable again: pages are durable again",
                (reasons.STATE_DB_BACK, {"path": str(store.path)}),
            )

    async def _notice(
        self,
        store: Store,
        event: EventType,
        location: str,
        reason: str,
        cause: tuple[str, dict[str, Any]],
    ) -> None:
        """Queues a page about sentinel's own state database on the normal outbox (in memory
        while the file cannot be written)."""
        assert self.runtime is not None and self.runtime.outbox is not None
        notice = AlarmEvent(
            alarm_id=STATE_DB_ALARM_ID,
            event=str(event),
            severity=str(Severity.CRITICAL),
            sensor_id=STATE_DB_SENSOR,
            location=location,
            kind="state_db",
            value=None,
            unit="",
            reason=reason,
            ts=self.clock(),
            cause=cause[0],
            params=cause[1],
        )
        error: Exception | None = None
        # a first attempt may be the write that finds the file unwritable; the store then
        # runs from memory and the second one succeeds
        for _ in range(2):
            try:
                async with store.write() as db:
                    await self.runtime.outbox.enqueue(db, notice)
                return
            except Exception as exc:
                error = exc
        log.error("cannot queue the page %r: %s", location, error)

    def _store_health(self, store: Store) -> dict[str, Any]:
        return {
            "task": "running",
            "state": "durable" if store.durable else "NOT DURABLE (running from memory)",
            "durable": store.durable,
            "last_error": store.problem,
            "since": store.problem_since,
            "path": str(store.path),
            "recovered": store.recovered,
        }

    # -- heartbeat -----------------------------------------------------------------------------

    async def _beat(self, store: Store, *, stopped: bool = False) -> None:
        assert self.runtime is not None
        status = "stopped" if stopped else self.runtime.status_line()
        if not store.durable:
            status = f"STATE DATABASE NOT DURABLE ({store.problem}); {status}"
        if self.reload_error:
            status += f"; {self.reload_error}"
        now = self.clock()
        components = {**self.runtime.health(), "state-db": self._store_health(store)}
        if stopped:
            # a stopped keeper's status still says what it last knew of each room, and each
            # MQTT source's client id and session stay for the next start, which expects the
            # broker to hold that session still (sentinel/mqtt_session.py)
            components = {**self._rooms_seen, **components}
        else:
            self._rooms_seen = {k: v for k, v in components.items() if k.startswith("room:")}
            self._rooms_seen |= {
                k: {**v, "state": "stopped", "task": "stopped"}
                for k, v in components.items()
                if k.startswith("source:")
            }
        self._write_live(store, now, status, components, stopped)
        await beat(
            store.write,
            now=now,
            started=self.started,
            status=status,
            components=components,
            config=self._config_view(),
            stopped=stopped,
        )
        if not stopped and status != self._last_status:
            self.notifier.status(status)
            self._last_status = status

    def _write_live(
        self, store: Store, now: float, status: str, components: dict[str, Any], stopped: bool
    ) -> None:
        """The live status file: what status shows while the database cannot be written."""
        assert self.runtime is not None
        engine = self.runtime.engine
        path = self._live_path
        try:
            livestatus.write(
                path,
                {
                    "ts": now,
                    "started": self.started,
                    "pid": os.getpid(),
                    "version": __version__,
                    "status": status,
                    "stopped": now if stopped else None,
                    "components": components,
                    "config": self._config_view(),
                    "config_path": str(self.config_path.resolve()) if self.config_path else None,
                    "state_dir": str(self.config.daemon.state_dir.resolve()),
                    "durable": store.durable,
                    "alarms": engine.active_alarms() if engine is not None else [],
                },
            )
        except OSError as exc:
            # once per cause, not every heartbeat (the message would name a temp file)
            reason = exc.strerror or str(exc)
            if reason != self._live_error:
                log.warning("cannot write the live status file %s: %s", path, reason)
                self._live_error = reason
        else:
            if self._live_error is not None:
                log.info("live status file %s written again", path)
            self._live_error = None

    def _mark_live_durable(self) -> None:
        """Memory reached the file at the very end: the next start must not page it lost."""
        live = livestatus.read(self._live_path)
        if live is not None and live.get("pid") == os.getpid():
            live["durable"] = True
            with contextlib.suppress(OSError):
                livestatus.write(self._live_path, live)

    def _config_view(self) -> dict[str, Any]:
        """What status needs from the config (no secrets): where it came from, intervals."""
        return {
            "path": str(self.config_path) if self.config_path else "(embedded defaults)",
            "site": self.config.site.name,
            "heartbeat": self.config.daemon.heartbeat,
        }

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        # Pinged from the event loop itself: a stalled loop stops the pings and systemd
        # restarts us, which is the point.
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    @contextlib.asynccontextmanager
    async def _signals(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            yield
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)


def _clock_time(ts: float) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


def _alarm_label(alarm: dict[str, Any]) -> str:
    """`critical UPS floor #EYDH`, as the heartbeat's status line names an alarm."""
    where = alarm.get("location") or alarm.get("sensor_id") or alarm.get("sensor") or "?"
    return f"{alarm.get('severity', 'alarm')} {where} #{alarm.get('id', '?')}"
