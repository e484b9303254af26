"""Fixtures for alarm-engine tests: an engine on the real store, driven by the fake clock."""

from __future__ import annotations

import pytest

from sentinel.alarm.engine import Engine
from sentinel.config import Config
from sentinel.store import Store
from tests.alarm.helpers import SENSORS, MakeEngine, Outbox, config, started_engine
from tests.fixtures.core import FakeClock


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def make_engine(store: Store, clock: FakeClock, outbox: Outbox) -> MakeEngine:
    async def make(cfg: Config | None = None) -> Engine:
        return await started_engine(store, cfg or config(SENSORS), outbox, clock)

    return make
