"""Shared fixtures. Real servers (mosquitto, rsyncd, sshd, HTTP sinks) live in tests/fixtures/."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.core",
    "tests.fixtures.mosquitto",
    "tests.fixtures.http_sink",
    "tests.fixtures.nut",
    "tests.fixtures.remote",
    "tests.fixtures.databases",
]
