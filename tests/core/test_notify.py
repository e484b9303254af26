"""sd_notify datagrams reach a real AF_UNIX datagram socket, abstract or path."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sentinel.notify import Notifier


def receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


def test_path_socket_receives_ready_status_watchdog_stopping(tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with receiver(address) as sock:
        n = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "4000000"})
        assert n.watchdog_interval == 2.0
        n.ready("3 sensors ok")
        n.status("one\nline   only")
        n.watchdog()
        n.stopping()
        got = [sock.recv(4096).decode() for _ in range(4)]
        n.close()
    assert got == [
        "READY=1\nSTATUS=3 sensors ok",
        "STATUS=one line only",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_abstract_namespace_socket() -> None:
    name = f"sentinel-test-{os.getpid()}"
    with receiver("\0" + name) as sock:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert sock.recv(100) == b"READY=1"
        n.close()


def test_without_systemd_does_nothing() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False
    assert n.watchdog_interval is None


def test_watchdog_for_another_pid_is_ignored() -> None:
    n = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval is None


def test_a_reader_that_stops_reading_never_blocks_the_sender(tmp_path: Path) -> None:
    address = str(tmp_path / "full.sock")
    with receiver(address):
        n = Notifier({"NOTIFY_SOCKET": address})
        sent = [n.watchdog() for _ in range(5000)]  # far past any datagram queue length
        n.close()
    assert sent[0] is True
    assert sent[-1] is False  # dropped, not blocked
