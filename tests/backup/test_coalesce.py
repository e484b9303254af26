"""The coalescing window (backup/coalesce.py): a stream of sparse writes shares ship runs, a
lone write after a quiet period ships at once (issue 18)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from backup.coalesce import LOCAL, MARGIN, REMOTE, Coalescer, Limits
from backup.transport import parse_target
from sentinel.store import Store
from tests.backup.helpers import caught_up, make_spec, running

MAX = 5000


def test_a_lone_write_after_a_quiet_period_ships_at_once() -> None:
    policy = Coalescer(LOCAL)
    assert policy.decide(100.0, 1, MAX) == 0.0  # nothing ran yet
    policy.started(100.0)
    policy.finished(0.004)
    assert policy.decide(100.0 + LOCAL.high + 0.001, 1, MAX) == 0.0  # a window later: quiet
    assert (policy.at_once, policy.waited) == (2, 0)


def test_a_write_within_the_window_waits_for_the_window_after_the_previous_run() -> None:
    policy = Coalescer(LOCAL)
    policy.started(10.0)
    policy.finished(0.004)
    window = policy.window
    assert policy.decide(10.05, 1, MAX) == pytest.approx(10.0 + window - 10.05)
    assert policy.waited == 1
    # a full batch does not wait
    assert policy.decide(10.05, MAX, MAX) == 0.0


def test_the_window_is_the_latency_budget_left_after_the_runs_clamped() -> None:
    local = Coalescer(LOCAL)
    assert local.window == LOCAL.high  # no run measured yet: cheap until shown otherwise
    local.finished(0.002)
    assert local.window == LOCAL.high  # 100 - 6 ms is above the top: the top
    for _ in range(40):
        local.finished(0.045)  # slow local runs shrink it to the bottom
    assert local.window == pytest.approx(LOCAL.low)
    remote = Coalescer(REMOTE)
    for _ in range(40):
        remote.finished(0.080)
    assert remote.window == pytest.approx(REMOTE.budget - MARGIN * 0.080, abs=1e-3)


def test_the_run_time_is_an_ewma() -> None:
    policy = Coalescer(Limits(low=0.0, high=1.0, budget=1.0), alpha=0.25)
    policy.finished(0.100)
    policy.finished(0.0)
    assert policy.wall == pytest.approx(0.075)


def _simulate(policy: Coalescer, writes: list[float], wall: float) -> tuple[int, float]:
    """A shipper with a fake clock: each run takes `wall` seconds and ships every write
    that arrived before it started. Returns the runs and the longest write-to-shipped time."""
    pending: list[float] = []
    queue = sorted(writes)
    now, runs, worst = 0.0, 0, 0.0
    while queue or pending:
        if not pending:
            now = max(now, queue[0])
        pending += [t for t in queue if t <= now]
        queue = [t for t in queue if t > now]
        start = now + policy.decide(now, len(pending), MAX)
        pending += [t for t in queue if t <= start]
        queue = [t for t in queue if t > start]
        policy.started(start)
        now = start + wall
        policy.finished(wall)
        runs += 1
        worst = max(worst, *(now - t for t in pending))
        pending = []
    return runs, worst


def test_a_stream_at_20_per_second_shares_runs_within_the_budget() -> None:
    writes = [1.0 + i / 20 for i in range(200)]
    runs, worst = _simulate(Coalescer(LOCAL), writes, wall=0.004)
    assert runs < 0.7 * len(writes)
    assert worst <= LOCAL.budget
    runs, worst = _simulate(Coalescer(REMOTE), writes, wall=0.150)
    assert runs < 0.5 * len(writes)
    assert worst <= REMOTE.budget


def test_writes_far_apart_each_ship_at_once() -> None:
    policy = Coalescer(LOCAL)
    runs, worst = _simulate(policy, [1.0, 2.0, 3.0], wall=0.004)
    assert (runs, policy.waited) == (3, 0)
    assert worst == pytest.approx(0.004)


async def test_a_local_stream_shares_runs_and_arrives_byte_for_byte(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, reconcile_at_start=False)
    async with running(spec, bstore, journal_write=bstore.fast_write) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        runs, n = rep.transfers, 40
        for i in range(n):
            (src / f"f{i:03}").write_bytes(f"file {i} ".encode() * (200 + i))
            await asyncio.sleep(1 / 20)
        await caught_up(rep, src, dst)  # every file, byte for byte
        assert rep.transfers - runs < 0.8 * n, rep.transfers - runs
        assert rep.coalesce.waited > 0

        # a lone write after a quiet period: its run does not wait for the window
        await asyncio.sleep(2 * LOCAL.high + 0.1)
        at_once, waited = rep.coalesce.at_once, rep.coalesce.waited
        (src / "lone.txt").write_text("alone")
        await caught_up(rep, src, dst)
        assert (rep.coalesce.at_once - at_once, rep.coalesce.waited - waited) == (1, 0)


@pytest.mark.parametrize("reconcile_at_start", [True, False])
async def test_changes_held_for_a_coalesced_run_are_journaled_once_before_it(
    tmp_path: Path, bstore: Store, runtime: Path, reconcile_at_start: bool
) -> None:
    """While the shipper waits out a window, the changes are journaled once, right before the
    run, not once per write: the journal transactions were most of the replicator's CPU at
    200 writes/s. Only when the full pass at start would find a change lost to a kill -9
    in that moment; without it every change is journaled at once, as before."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(src, parse_target(str(dst)), runtime, reconcile_at_start=reconcile_at_start)
    async with running(spec, bstore, journal_write=bstore.fast_write) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        records = 0
        record = rep.journal.record

        async def counted(paths: Any, **kw: Any) -> int:
            nonlocal records
            records += 1
            return int(await record(paths, **kw))

        rep.journal.record = counted  # type: ignore[method-assign]
        n = 40
        for i in range(n):
            (src / f"f{i:03}").write_bytes(f"file {i} ".encode() * (200 + i))
            await asyncio.sleep(1 / 20)
        await caught_up(rep, src, dst)  # every file, byte for byte
        assert rep.coalesce.waited > 0
        if reconcile_at_start:
            assert records < 0.8 * n, records
        else:
            assert records >= 0.9 * n, records
