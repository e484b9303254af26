"""MQTT source: subscribes to the topics of configured sensors, decodes, emits readings.

Connects to one broker with aiomqtt 2.x in a persistent session (fixed client id, clean
session off, QoS 1 subscriptions: the broker queues what arrives while sentinel is away;
a message is acknowledged only once its readings were taken, so a crash gets it again),
reconnects with backoff and jitter, subscribes again after each reconnect (which also reads
every retained state again), and publishes sentinel's own availability (retained `online`,
last will `offline`) and its active alarms under `publish_prefix`.

A persistent session is only worth something while the broker keeps it: a client that
connects with sentinel's client id, or a broker restarted without persistence, drops it
with what was queued. Each connect reads CONNACK's session-present flag; when sentinel had a
session and the broker has none, the source logs it and yields a `mqtt_session_lost`
reading for the pseudo-sensor `source:<name>` (a warning alarm), resolved once
`SESSION_LOST_QUIET` seconds passed connected without another loss.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from common.kinds import Kind
from sensors.binding import Binding, ConversionError
from sensors.decode import AVAILABILITY, DECODERS, Point, parse_availability
from sensors.mqtt_failure import BrokerRefused, connection_failure, is_refusal
from sensors.reading import Reading, SourceHealth
from sensors.source import Backoff, RateLimitedLog

log = logging.getLogger("sensors.mqtt")

MQTT_FORMATS = ("zigbee2mqtt", "tasmota", "esphome", "json")
# Default field names per format and kind, used when a sensor names none.
_TASMOTA_FIELDS = {
    "temperature": ("*.Temperature",),
    "humidity": ("*.Humidity",),
    "water_leak": ("Switch1",),
    "smoke": ("Switch1",),
    "door": ("Switch1",),
}
_Z2M_FIELDS = {"smoke": ("smoke", "smoke_state"), "door": ("contact",)}
# A door's reading is True when open, but a contact sensor speaks of its contact: Zigbee2MQTT's
# `contact` is true when the magnet touches (door closed), and a Tasmota switch input wired to
# a reed contact reads ON when the contact closes (door closed). A sensor's own `value_map`
# replaces this (a normally-closed reed, or a device that already says "open").
_CONTACT_MAP: dict[str, Any] = {
    "true": False, "false": True, "on": False, "off": True, "1": False, "0": True
}  # fmt: skip
_CONTACT_FORMATS = ("zigbee2mqtt", "tasmota")
# Messages handled per turn of the event loop before the other components get a turn. Each
# await of the engine and sender on a leak's path waits behind one batch: with 256 a
# 15,000 msg/s flood delayed another sensor's page by 70-660 ms; 32 gave 31-47 ms in one run
# but cost capacity (bench/results/ingest.md: ~17,000 vs ~22,000 msg/s). Tune with that bench.
BATCH_MAX = 32
# the kind, and the cause code alerts/reasons.py words per language (a leaf cannot import it)
SESSION_LOST_KIND = str(Kind.MQTT_SESSION_LOST)
# The lost-session alarm reports something that already happened (the broker starts a new
# session at that very connect), so no later connect is needed to end it, and one may not
# come for weeks. It resolves after this long connected without another loss: two clients
# fighting over the client id lose it every few seconds, which keeps the one alarm on.
SESSION_LOST_QUIET = 900.0


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How to reach the broker. `password` never appears in repr, logs or health."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "sentinel"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive: int = 60
    publish_prefix: str = "sentinel"
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0


@dataclass(frozen=True, slots=True)
class MqttBinding:
    """A sensor bound to MQTT: its decoder, state topic and (optional) availability topic."""

    binding: Binding
    format: str
    state_topic: str
    availability_topic: str | None


def mqtt_binding(
    sensor_id: str,
    kind: str,
    format: str,
    topic: str,
    *,
    field: str | None = None,
    availability_topic: str | None = None,
    offset: float = 0.0,
    value_map: dict[str, Any] | None = None,
) -> MqttBinding:
    """Builds a binding with each format's topic conventions.

    - zigbee2mqtt: `topic` is the device topic `zigbee2mqtt/<name>`; availability on
      `<topic>/availability`; field defaults to the kind (`water_leak`, `temperature`...).
    - tasmota: `topic` is the device's `%topic%`; state on `tele/<topic>/SENSOR`, LWT on
      `tele/<topic>/LWT`; field defaults to `*.Temperature`, `*.Humidity`, `Switch1`.
    - a `door` on zigbee2mqtt (`contact`) or tasmota (`Switch1`) reads the contact inverted:
      contact closed (true/ON) is the door closed (False), unless `value_map` says otherwise.
    - esphome: `topic` is `<prefix>/<component>/<name>`; state on `<topic>/state`,
      availability on `<prefix>/status`.
    - json: `topic` is the state topic; `field` a dotted path (default: the whole payload);
      availability only where `availability_topic` is given.
    """
    if format not in MQTT_FORMATS:
        raise ValueError(f"unknown MQTT format {format!r}; expected one of {MQTT_FORMATS}")
    topic = topic.strip("/")
    if format == "zigbee2mqtt":
        state, avail = topic, f"{topic}/availability"
        fields = _Z2M_FIELDS.get(kind, (kind,))
    elif format == "tasmota":
        state, avail = f"tele/{topic}/SENSOR", f"tele/{topic}/LWT"
        fields = _TASMOTA_FIELDS.get(kind, (kind,))
    elif format == "esphome":
        state, avail = f"{topic}/state", f"{topic.split('/', 1)[0]}/status"
        fields = ("state",)
    else:
        state, avail = topic, None
        fields = ("",)
    if field is not None:
        fields = (field,)
    if not value_map and kind == Kind.DOOR and format in _CONTACT_FORMATS:
        value_map = _CONTACT_MAP
    return MqttBinding(
        Binding(sensor_id, kind, fields, offset, dict(value_map or {})),
        format,
        state,
        availability_topic if availability_topic is not None else avail,
    )


class MqttSource:
    """All MQTT-bound sensors of one broker. Implements `sensors.source.Source`."""

    def __init__(
        self,
        settings: MqttSettings,
        bindings: Iterable[MqttBinding],
        *,
        name: str = "mqtt",
        announce: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`announce`: this connection carries sentinel's own availability (retained
        `online`, last will `offline`) and its active alarms. Exactly one connection to a
        broker should; a second one (e.g. for safety sensors) must not, or its last will
        would say sentinel is offline while the other connection is still up."""
        self.name = name
        self.announce = announce
        self.settings = settings
        self.bindings = list(bindings)
        self._clock = clock
        self._health = SourceHealth()
        self._log = RateLimitedLog(log)
        self._client: aiomqtt.Client | None = None
        self._published = 0
        self._publish_dropped = 0
        self._connects = 0
        self._last_reject: str | None = None
        self._last_state: str | None = None
        # Whether the broker should hold a session for our client id: we connected with it
        # before (in this process, or in the previous run, from its last heartbeat; set by
        # the runtime). The first connect of a fresh state directory cannot know.
        self.expect_session = False
        self._session_present: bool | None = None  # CONNACK's flag, None: not read
        self._session: str | None = None  # kept | new | lost
        self._session_losses = 0
        # monotonic: when the quiet period that resolves the lost-session alarm started
        # (None: no alarm to resolve)
        self._lost_at: float | None = None
        # the lost-session alarm may be on (raised here, or by the previous run: set by the
        # runtime from its last heartbeat) and is to be resolved
        self.session_alarm = False
        self._monotonic = time.monotonic
        # topic -> [(binding, is_availability)]; exact topics, so no wildcard matching.
        self._routes: dict[str, list[tuple[MqttBinding, bool]]] = {}
        for mb in self.bindings:
            self._routes.setdefault(mb.state_topic, []).append((mb, False))
            if mb.availability_topic:
                self._routes.setdefault(mb.availability_topic, []).append((mb, True))

    @property
    def topics(self) -> list[str]:
        return sorted(self._routes)

    @property
    def availability_topic(self) -> str:
        return f"{self.settings.publish_prefix}/availability"

    @property
    def alarms_topic(self) -> str:
        return f"{self.settings.publish_prefix}/alarms"

    def health(self) -> dict[str, Any]:
        self._health.details = {
            "broker": f"{self.settings.host}:{self.settings.port}",
            "client_id": self.settings.client_id,  # the broker keeps our session under it
            "topics": len(self._routes),
            "connects": self._connects,
            "published": self._published,
            "publish_dropped": self._publish_dropped,
            "last_reject": self._last_reject,
            "session": self._session,
            "session_losses": self._session_losses,
            # read back at the next start: a session the broker should then still hold
            "session_expected": self.expect_session,
            "session_alarm": self.session_alarm,
        }
        return self._health.as_dict()

    async def readings(self) -> AsyncIterator[Reading]:
        backoff = Backoff(self.settings.reconnect_min, self.settings.reconnect_max)
        while True:
            connected = False
            try:
                client, inbox = self._make_client()
                async with client:
                    await self._on_connect(client)
                    connected = True
                    backoff.reset()
                    lost = self._judge_session()
                    if lost is not None:
                        yield lost
                    async for batch in _batches(client, inbox, self._quiet_left):
                        if self._lost_at is not None and self._quiet_left() == 0:
                            yield self._session_reading(False)
                        for message in batch:
                            for reading in self.handle(str(message.topic), _bytes(message.payload)):
                                yield reading
                            # only now, with its readings taken: a message received but
                            # never acknowledged is sent again by the broker after a crash
                            _ack(client, message)
            except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
                self._client = None
                self._health.state = "disconnected"
                self._health.last_error = connection_failure(
                    exc, self.settings, connected=connected
                )
                if is_refusal(exc):
                    raise BrokerRefused(
                        f"broker {self.settings.host}:{self.settings.port}: "
                        f"{self._health.last_error}"
                    ) from None
                self._log.warning(
                    "disconnected",
                    f"{self.name}: broker {self.settings.host}:{self.settings.port}: "
                    f"{self._health.last_error}; retrying",
                )
            finally:
                self._client = None
            await asyncio.sleep(backoff.next())

    async def publish_state(self, active_alarms: list[dict[str, Any]]) -> None:
        """Publishes the active alarms (retained JSON); dropped and counted when offline.

        The latest state is published again after every reconnect.
        """
        payload = json.dumps(active_alarms, ensure_ascii=False, default=str)
        # Kept so a reconnect (or a restarted broker that lost retained messages) gets it again.
        self._last_state = payload
        client = self._client
        if client is None:
            self._publish_dropped += 1
            return
        try:
            await client.publish(self.alarms_topic, payload, qos=1, retain=True)
        except aiomqtt.MqttError:
            self._publish_dropped += 1
        else:
            self._published += 1

    def handle(self, topic: str, payload: bytes) -> list[Reading]:
        """Decodes one message into readings of the sensors bound to its topic."""
        now = self._clock()
        health = self._health
        health.received += 1
        health.last_message_ts = now
        routes = self._routes.get(topic)
        if not routes:
            return []
        out: list[Reading] = []
        cache: dict[str, dict[str, Any] | str] = {}
        for mb, is_availability in routes:
            if is_availability:
                online = parse_availability(payload)
                if online is None:
                    self._reject(topic, "availability payload is neither online nor offline")
                    break
                out.append(mb.binding.availability(online, ts=now, source=self.name))
                continue
            points = cache.get(mb.format)
            if points is None:
                decoded = DECODERS[mb.format](topic, payload)
                points = decoded.error or _as_map(decoded.points)
                cache[mb.format] = points
                if decoded.error:
                    self._reject(topic, decoded.error)
            if isinstance(points, str):
                continue
            if AVAILABILITY in points and isinstance(points[AVAILABILITY], bool):
                out.append(mb.binding.availability(points[AVAILABILITY], ts=now, source=self.name))
                continue
            picked = mb.binding.pick(points)
            if picked is None:
                continue
            try:
                out.append(mb.binding.reading(picked[1], ts=now, source=self.name))
            except ConversionError as exc:
                self._reject(topic, f"sensor {mb.binding.sensor_id} field {picked[0]!r}: {exc}")
        health.decoded += len(out)
        return out

    def _reject(self, topic: str, reason: str) -> None:
        self._health.rejected += 1
        self._last_reject = f"{topic}: {reason}"
        self._log.warning(f"reject:{topic}", f"{self.name}: rejected message on {topic}: {reason}")

    @property
    def session_sensor(self) -> str:
        """The pseudo-sensor of the lost-session alarm, named like the source's component."""
        return f"source:{self.name}"

    def _judge_session(self) -> Reading | None:
        """After a connect: the lost-session reading when the broker has dropped a session
        it should hold; at a source's first connect otherwise the resolving one; else
        None."""
        present, expected = self._session_present, self.expect_session
        self.expect_session = True  # from here on the broker holds one for our client id
        # An alarm raised before a restart or a config reload (the last heartbeat says one
        # may be on) has no timer in this new source: its first connect that loses nothing
        # resolves it. Not a quiet period here: that would put `_batches` on its slower,
        # timed path for the first minutes of such a run.
        settle = (
            self._session_reading(False) if self._connects == 1 and self.session_alarm else None
        )
        if present is None:
            self._session = None  # paho gave no flag (a newer aiomqtt): nothing to judge
            return settle
        if present:
            self._session = "kept"
            return settle
        if not expected:
            self._session = "new"
            log.info(
                "%s: no earlier session under client id %r known; the broker starts one",
                self.name,
                self.settings.client_id,
            )
            return settle
        self._session = "lost"
        self._session_losses += 1
        self._lost_at = self._monotonic()
        log.warning("%s: %s", self.name, self._session_text())
        return self._session_reading(True)

    def _session_params(self) -> dict[str, Any]:
        s = self.settings
        return {
            "broker": f"{s.host}:{s.port}",
            "client_id": s.client_id,
            "losses": self._session_losses,
        }

    def _session_text(self) -> str:
        # the log's and status's words; pages word the cause in their own language
        p = self._session_params()
        return (
            f"MQTT session lost: broker {p['broker']} no longer held sentinel's session "
            f"(client id {p['client_id']}, lost {p['losses']} time(s) since start); "
            "messages sent while sentinel was disconnected may be lost, retained states "
            "were read again"
        )

    def _session_reading(self, lost: bool) -> Reading:
        self.session_alarm = lost
        if not lost:
            self._lost_at = None
        return Reading(
            self.session_sensor,
            SESSION_LOST_KIND,
            lost,
            "",
            self._clock(),
            source=self.name,
            detail=self._session_text() if lost else None,
            cause=SESSION_LOST_KIND if lost else None,
            params=self._session_params() if lost else None,
        )

    def _quiet_left(self) -> float | None:
        """Seconds until the lost-session alarm resolves; None while it is off."""
        if self._lost_at is None:
            return None
        return max(0.0, self._lost_at + SESSION_LOST_QUIET - self._monotonic())

    def _read_session_flag(self, client: aiomqtt.Client) -> None:
        """aiomqtt 2.x drops CONNACK's flags; we read session-present on its paho client
        (`Client._client`, pinned <3) before aiomqtt's own handler sees the CONNACK."""
        self._session_present = None
        paho = getattr(client, "_client", None)
        handler = getattr(paho, "on_connect", None)
        if paho is None or handler is None:
            return

        def on_connect(c: Any, userdata: Any, flags: Any, *rest: Any) -> None:
            present = getattr(flags, "session_present", None)
            self._session_present = None if present is None else bool(present)
            handler(c, userdata, flags, *rest)

        paho.on_connect = on_connect

    def _make_client(self) -> tuple[aiomqtt.Client, asyncio.Queue[aiomqtt.Message]]:
        """The client, and the queue it puts received messages in (ours, through aiomqtt's
        public `queue_type=`), which `_batches` drains."""
        s = self.settings
        inbox: list[asyncio.Queue[aiomqtt.Message]] = []

        class Inbox(asyncio.Queue[aiomqtt.Message]):
            # a class, as aiomqtt builds its queue itself (`queue_type(maxsize=...)`): this
            # one hands the instance to us
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                inbox.append(self)

        tls = None
        if s.tls or s.ca_file or s.cert_file:
            tls = aiomqtt.TLSParameters(
                ca_certs=s.ca_file, certfile=s.cert_file, keyfile=s.key_file
            )
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            # A persistent session under a fixed client id: the broker keeps our QoS 1
            # subscriptions and queues what arrives while we are down or reconnecting. Leak
            # sensors report only on change, so a message missed then is a missed flood.
            clean_session=False,
            username=s.username,
            password=s.password,
            keepalive=s.keepalive,
            will=(
                aiomqtt.Will(self.availability_topic, b"offline", qos=1, retain=True)
                if self.announce
                else None
            ),
            tls_params=tls,
            queue_type=Inbox,
        )
        _manual_ack(client)
        self._read_session_flag(client)
        return client, inbox[0]

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        for topic in self._routes:
            await client.subscribe(topic, qos=1)
        if self.announce:
            await client.publish(self.availability_topic, b"online", qos=1, retain=True)
            if self._last_state is not None:
                await client.publish(self.alarms_topic, self._last_state, qos=1, retain=True)
        self._client = client
        self._connects += 1
        self._health.state = "connected"
        self._health.last_error = None
        log.info("%s: connected to %s:%s", self.name, self.settings.host, self.settings.port)


async def _batches(
    client: aiomqtt.Client,
    queue: asyncio.Queue[aiomqtt.Message],
    wake: Callable[[], float | None] = lambda: None,
) -> AsyncIterator[list[aiomqtt.Message]]:
    """The client's messages in arrival order, as many at a time as are waiting (at most
    BATCH_MAX, then the loop gets a turn). An empty batch when `wake()` seconds pass with
    no message (a timer of the caller's; None: no timer, and no extra task per message).

    aiomqtt's `client.messages` spends a Task and an `asyncio.wait` (about three loop turns)
    on every message, while its socket reader adds one message per loop turn: under a
    sustained load its unbounded queue grew without end (90 MB RSS at 3,000 msg/s in
    bench/ingest.py). Taking what is already queued without waiting costs nothing per
    message. `queue` is the one the client fills (given to it as `queue_type=`).
    """
    messages = client.messages.__aiter__()
    waiting: asyncio.Future[aiomqtt.Message] | None = None
    try:
        while True:
            timeout = wake()
            if not queue.empty():
                # a full batch was just handled: let the other components have the loop first
                await asyncio.sleep(0)
                batch = []
            elif timeout is None and waiting is None:
                # waits, and raises MqttError when the connection is lost
                batch = [await messages.__anext__()]
            else:
                # kept across a timeout, so no message is taken and then dropped
                if waiting is None:
                    waiting = asyncio.ensure_future(messages.__anext__())
                done, _ = await asyncio.wait({waiting}, timeout=timeout)
                if not done:
                    yield []
                    continue
                batch, waiting = [waiting.result()], None
            while len(batch) < BATCH_MAX and not queue.empty():
                batch.append(queue.get_nowait())
            yield batch
    finally:
        if waiting is not None:
            waiting.cancel()


def _manual_ack(client: aiomqtt.Client) -> None:
    """paho acknowledges a QoS 1 message as it arrives, before sentinel has handled it: a
    kill -9 then loses it. aiomqtt 2.x does not expose paho's manual acknowledgement, so we
    set it on its paho client (`Client._client`, pinned <3); if that is ever gone, paho's
    own early acknowledgement remains."""
    paho = getattr(client, "_client", None)
    if paho is not None and hasattr(paho, "manual_ack_set") and hasattr(paho, "ack"):
        paho.manual_ack_set(True)


def _ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    paho = getattr(client, "_client", None)
    if message.qos > 0 and paho is not None and getattr(paho, "_manual_ack", False):
        paho.ack(message.mid, message.qos)


def _as_map(points: tuple[Point, ...]) -> dict[str, Any]:
    return {p.field: p.value for p in points}


def _bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()
