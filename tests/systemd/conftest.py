"""The keeper host (tests/fixtures/keeper_host.py) for the access and drill tests."""

from tests.fixtures.keeper_host import host, landed  # noqa: F401
