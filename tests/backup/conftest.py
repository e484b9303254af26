"""Fixtures for the replication tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sentinel import migrations
from sentinel.store import Store


@pytest.fixture
async def bstore(store: Store) -> AsyncIterator[Store]:
    await migrations.migrate(store)
    yield store


@pytest.fixture
def runtime() -> Iterator[Path]:
    # short: ssh ControlPath sockets must fit in 108 bytes
    d = Path(tempfile.mkdtemp(prefix="snt"))
    yield d
    shutil.rmtree(d, ignore_errors=True)
