"""common/: one list of kinds and severities, and one retry timing with each caller's numbers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from alerts.event import Severity as AlertSeverity
from common.kinds import (
    BINARY_KINDS,
    BOOLEAN_KINDS,
    SAFETY_KINDS,
    SELF_KINDS,
    SENSOR_KINDS,
    UNITS,
    Kind,
)
from common.retry import HALF_JITTER, Backoff, Retries, spread
from common.states import SEVERITY_RANK, Severity
from sensors.reading import Kind as ReadingKind
from sensors.source import Backoff as SourceBackoff
from sentinel.alarm.rules import BUILTIN, CRITICAL, RANK, WARNING
from sentinel.config.sensors import SensorConfig
from sentinel.store import Store
from tests.alerts.helpers import make_delivery, write_apprise


class Draws(random.Random):
    """A `random.Random` whose every draw is the same number."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_every_named_kind_group_holds_kinds_only() -> None:
    for group in (BINARY_KINDS, BOOLEAN_KINDS, SAFETY_KINDS, SELF_KINDS, set(SENSOR_KINDS)):
        assert all(isinstance(kind, Kind) for kind in group)
    assert set(UNITS) <= set(Kind)
    assert set(SENSOR_KINDS) >= SAFETY_KINDS
    assert not SELF_KINDS & set(SENSOR_KINDS)  # a pseudo-sensor is never configured
    assert set(BUILTIN) <= set(Kind)  # a default rule for a kind nobody produces is a typo
    assert ReadingKind is Kind


def test_a_kind_is_still_its_plain_word() -> None:
    """Kinds are stored, sent and configured as text: the enum must compare and hash as it."""
    assert "water_leak" in SAFETY_KINDS and Kind.WATER_LEAK == "water_leak"
    assert {"smoke": 1}[Kind.SMOKE] == 1
    assert SensorConfig(id="t1", kind="temperature", topic="z/t1").kind == "temperature"
    with pytest.raises(ValueError, match="is not one of water_leak, smoke, temperature"):
        SensorConfig(id="c1", kind="component", topic="z/c1")


def test_one_severity_for_the_alarm_rules_and_the_alerts() -> None:
    assert AlertSeverity is Severity
    assert (WARNING, CRITICAL) == ("warning", "critical")
    assert RANK is SEVERITY_RANK
    assert RANK[None] < RANK["warning"] < RANK["critical"]


@pytest.mark.parametrize(
    ("initial", "maximum", "bases"),
    [
        (1.0, 60.0, [1, 2, 4, 8, 16, 32, 60, 60]),  # sensors, the supervisor, replication
        (2.0, 300.0, [2, 4, 8, 16, 32, 64, 128, 256, 300]),  # alert channels
        (1.0, 0.5, [0.5, 0.5]),  # replication's retry_max may be below its first step
    ],
)
def test_backoff_doubles_to_its_cap(initial: float, maximum: float, bases: list[float]) -> None:
    timing = Backoff(initial, maximum)
    assert [timing.base(n) for n in range(1, len(bases) + 1)] == bases


def test_jitter_stays_in_each_callers_band() -> None:
    half = Backoff(1.0, 60.0, HALF_JITTER)
    assert (half.delay(3, 0.0), half.delay(3, 0.999)) == (2.0, pytest.approx(3.998))
    both_ways = Backoff(1.0, 60.0, spread(0.2))
    assert (both_ways.delay(3, 0.0), both_ways.delay(3, 0.5)) == (pytest.approx(3.2), 4.0)


def test_retries_count_until_reset() -> None:
    retries = Retries(Backoff(1.0, 4.0, (1.0, 1.0)))
    assert [retries.next(0.0) for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    retries.reset()
    assert retries.next(0.0) == 1.0


def test_a_sources_reconnects_keep_their_numbers() -> None:
    backoff = SourceBackoff(1.0, 10.0, rng=Draws(0.5))
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    backoff.reset()
    assert backoff.next() == 1.0
    low = SourceBackoff(1.0, 10.0, rng=Draws(0.0))
    assert low.next() == pytest.approx(0.8)
    with pytest.raises(ValueError, match="bad backoff"):
        SourceBackoff(5.0, 1.0)


def test_an_outage_of_days_still_has_a_retry_delay() -> None:
    """After ~1000 failures 2**n no longer fits a float: the capped delay must still come."""
    timing = Backoff(2.0, 300.0)
    assert timing.base(5000) == 300.0
    assert timing.delay(10**9, 0.0) == 150.0


async def test_an_alert_channel_failing_for_days_is_still_retried(
    store: Store, tmp_path: Path
) -> None:
    yml = write_apprise(tmp_path / "apprise.yml", [("json://127.0.0.1:9/hook", [])])
    _, sender = await make_delivery(store, yml, retry_initial=2.0, retry_max=300.0, rng=lambda: 0.0)
    assert sender._backoff(1) == 1.0
    assert sender._backoff(5000) == 150.0  # failures at the cap for days: no OverflowError
