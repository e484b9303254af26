"""The running deployment most integration tests share (a daemon, mosquitto, a sink)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.http_sink import HttpSink
from tests.fixtures.mosquitto import Mosquitto
from tests.integration.test_page_survives_crash import Deployment


@pytest.fixture
def deployment(tmp_path: Path, mosquitto: Mosquitto, http_sink: HttpSink) -> Iterator[Deployment]:
    d = Deployment(tmp_path, mosquitto, http_sink)
    try:
        yield d
    finally:
        d.kill_leftover()
