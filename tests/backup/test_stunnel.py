"""docs/transport.md's stunnel setup end to end, from the example files (only ports and paths
rewritten): a real rsyncd on 127.0.0.1, the keeper-side stunnel in front of it, the
room-side stunnel client on 127.0.0.1, and sentinel's replicator shipping through
rsync://127.0.0.1:<client port>/module. The TLS port speaks TLS only, to the pinned room
only; a tunnel end that is down, or an impostor in the keeper's place, is a failing
replication that loses nothing."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backup.replicator import Replicator
from backup.transport import parse_target
from sensors.sim.broker import free_port
from sentinel.advice.transport import cleartext_host
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running
from tests.fixtures.poll import until
from tests.fixtures.remote import RsyncDaemon, started_rsyncd
from tests.fixtures.stunnel import Cert, Stunnel, example, make_cert, stunnel_binary

DOC = "2026/approvals/민원-001.hwp"
ROOM_MODULE_OPTIONS = "  hosts allow = 127.0.1.1\n  hosts deny = *\n"


@dataclass
class Tunnel:
    rsyncd: RsyncDaemon
    keeper: Stunnel  # the TLS port, in front of rsyncd
    room: Stunnel  # the room's end, on 127.0.0.1
    certs: dict[str, Cert]

    def keeper_conf(self, cert: Cert) -> str:
        return example(
            "stunnel-keeper.conf.example",
            [
                ("accept = 874", f"accept = 127.0.0.1:{self.keeper.port}"),
                ("connect = 127.0.0.1:873", f"connect = 127.0.0.1:{self.rsyncd.port}"),
                ("/etc/stunnel/sentinel-keeper.crt", str(cert.cert)),
                ("/etc/stunnel/sentinel-keeper.key", str(cert.key)),
                ("/etc/stunnel/sentinel-room-main.crt", str(self.certs["room"].cert)),
            ],
        )

    def room_conf(self) -> str:
        room = self.certs["room"]
        return example(
            "stunnel-room.conf.example",
            [
                ("accept = 127.0.0.1:8873", f"accept = 127.0.0.1:{self.room.port}"),
                (
                    "connect = backup.health-center.example:874",
                    f"connect = 127.0.0.1:{self.keeper.port}",
                ),
                ("/etc/stunnel/sentinel-room.crt", str(room.cert)),
                ("/etc/stunnel/sentinel-room.key", str(room.key)),
                ("/etc/stunnel/sentinel-keeper.crt", str(self.certs["keeper"].cert)),
            ],
        )

    @property
    def target(self) -> str:
        return f"rsync://sentinel@127.0.0.1:{self.room.port}/backup/replica"

    @property
    def replica(self) -> Path:
        return self.rsyncd.module_dir / "replica"


@pytest.fixture
def tunnel(tmp_path: Path) -> Iterator[Tunnel]:
    binary = stunnel_binary()
    certs = {name: make_cert(tmp_path / "tls", name) for name in ("keeper", "room", "stranger")}
    # as docs/transport.md says for a room's modules: only the keeper-side stunnel's
    # `local` source address for this room gets in
    with started_rsyncd(tmp_path / "rsyncd", ROOM_MODULE_OPTIONS) as rsyncd:
        t = Tunnel(
            rsyncd,
            Stunnel(binary, tmp_path / "keeper.conf", free_port()),
            Stunnel(binary, tmp_path / "room.conf", free_port()),
            certs,
        )
        try:
            t.keeper.start(t.keeper_conf(certs["keeper"]))
            t.room.start(t.room_conf())
            yield t
        finally:
            t.room.stop()
            t.keeper.stop()


def _greeting(port: int, cert: Cert | None, trust: Cert) -> bytes | str:
    """What a TLS client (trusting `trust`, presenting `cert`) first reads on `port`: the
    rsync daemon's greeting, or the TLS error that stopped it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the certificate itself is pinned, as in the examples
    ctx.load_verify_locations(trust.cert)
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    try:
        with socket.create_connection(("127.0.0.1", port), 5) as raw, ctx.wrap_socket(raw) as tls:
            tls.settimeout(5)
            return tls.recv(64)
    except (ssl.SSLError, OSError) as exc:
        return repr(exc)


def _sources(tmp_path: Path) -> Path:
    src = tmp_path / "onnara"
    (src / "2026" / "approvals").mkdir(parents=True)
    (src / DOC).write_bytes("결재 문서 v1 ".encode() * 300)
    return src


async def test_records_ship_through_stunnel_and_the_tls_port_speaks_only_tls_to_the_room(
    tmp_path: Path, bstore: Store, runtime: Path, tunnel: Tunnel
) -> None:
    # the documented target is on loopback: check-config has nothing to warn about
    assert cleartext_host(tunnel.target) is None
    src = _sources(tmp_path)
    target = parse_target(tunnel.target, password_file=tunnel.rsyncd.password_file)
    async with running(make_spec(src, target, runtime), bstore) as rep:
        await caught_up(rep, src, tunnel.replica)
        assert (tunnel.replica / DOC).read_bytes() == (src / DOC).read_bytes()
        (src / DOC).write_bytes("결재 문서 v2, 고쳐 씀 ".encode() * 300)
        await caught_up(rep, src, tunnel.replica)
        assert (tunnel.replica / DOC).read_bytes() == "결재 문서 v2, 고쳐 씀 ".encode() * 300
    assert "Certificate accepted at depth=0: CN=room" in tunnel.keeper.log.read_text()

    # a plain rsync client is refused on the TLS port (nothing there speaks clear text),
    # and by rsyncd itself when it goes around the tunnel (`hosts allow`)
    (tmp_path / "plain.txt").write_text("in the clear")
    for port in (tunnel.keeper.port, tunnel.rsyncd.port):
        plain = await asyncio.to_thread(
            subprocess.run,
            [
                "rsync",
                "--contimeout=5",
                "--timeout=5",
                f"--password-file={tunnel.rsyncd.password_file}",
                str(tmp_path / "plain.txt"),
                f"rsync://sentinel@127.0.0.1:{port}/backup/replica/",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert plain.returncode != 0, plain.stdout
    assert "access denied" in plain.stderr, plain.stderr
    assert not (tunnel.replica / "plain.txt").exists()

    # inside TLS, with the room's pinned certificate, is the rsync daemon; another
    # certificate, or none, is refused in the handshake before rsyncd hears a byte
    keeper, room, stranger = (tunnel.certs[n] for n in ("keeper", "room", "stranger"))
    greeting = _greeting(tunnel.keeper.port, room, keeper)
    assert isinstance(greeting, bytes) and greeting.startswith(b"@RSYNCD: "), greeting
    for cert in (stranger, None):
        refused = _greeting(tunnel.keeper.port, cert, keeper)
        assert isinstance(refused, str) and "SSL" in refused, refused


async def _failing(rep: Replicator, more_than: int) -> str:
    await until(
        lambda: rep.health()["consecutive_failures"] > more_than,
        20,
        f"more than {more_than} failed attempts",
    )
    return str(rep.health()["last_error"])


async def test_a_tunnel_end_down_or_an_impostor_keeper_fails_replication_and_loses_nothing(
    tmp_path: Path, bstore: Store, runtime: Path, tunnel: Tunnel
) -> None:
    src = _sources(tmp_path)
    target = parse_target(tunnel.target, password_file=tunnel.rsyncd.password_file)
    async with running(make_spec(src, target, runtime), bstore) as rep:
        await caught_up(rep, src, tunnel.replica)

        # the keeper's stunnel is down: the room's end accepts, then drops the connection
        tunnel.keeper.stop()
        (src / "while-keeper-down.txt").write_text("a")
        error = await _failing(rep, 0)
        assert "rsync exit" in error, error

        # an impostor answers on the keeper's port, with a real rsyncd behind it, but
        # without the keeper's key: the pinned room end refuses it, nothing is sent
        tunnel.keeper.start(tunnel.keeper_conf(tunnel.certs["stranger"]))
        seen = rep.health()["consecutive_failures"]

        def landed() -> bool:
            return any(tunnel.rsyncd.module_dir.rglob("while-keeper-down.txt"))

        # at least one whole attempt against the impostor (or the record reaching it)
        await until(
            lambda: landed() or rep.health()["consecutive_failures"] > seen + 1,
            20,
            "an attempt against the impostor",
        )
        assert not landed(), "the room's end sent a record to a keeper it did not pin"
        assert "certificate verify failed" in tunnel.room.log.read_text()

        tunnel.keeper.stop()
        tunnel.keeper.start(tunnel.keeper_conf(tunnel.certs["keeper"]))
        await caught_up(rep, src, tunnel.replica)  # the change waited in the journal

        # the room's own stunnel is down: connection refused on 127.0.0.1
        tunnel.room.stop()
        (src / "while-room-end-down.txt").write_text("b")
        error = await _failing(rep, 0)
        assert "Connection refused" in error, error
        tunnel.room.start(tunnel.room_conf())
        await caught_up(rep, src, tunnel.replica)
