"""The keeper daemon fixture the keeper tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.http_sink import HttpSink
from tests.keeper.helpers import Keeper


@pytest.fixture
def keeper(tmp_path: Path, http_sink: HttpSink) -> Iterator[Keeper]:
    k = Keeper(tmp_path, http_sink)
    try:
        yield k
    finally:
        k.stop()
