"""The coalescing window (backup/coalesce.py): a stream of sparse writes shares ship runs, a
lone write after a quiet period ships at once (issue 18)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from backup.coalesce import LOCAL, MARGIN, REMOTE, STREAM, Coalescer, Limits, limits_for
from backup.replicator import Replicator
from backup.transport import parse_target
from sentinel.config import ConfigError, load_config
from sentinel.replication import spec_from_config
from sentinel.store import Store
from tests.backup.helpers import caught_up, count_records, make_spec, running

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
        start = now + policy.decide(now, len(pending), MAX, min(pending))
        pending += [t for t in queue if t <= start]
        queue = [t for t in queue if t > start]
        now = start + wall
        policy.started(start)
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
    # the stream's runs cost 10-20 ms: a wider window, fewer runs, still within 400 ms
    stream_runs, worst = _simulate(Coalescer(STREAM), writes, wall=0.015)
    assert stream_runs < 0.25 * len(writes)
    assert worst <= STREAM.budget
    # and when the stream is down, rsync's slow runs shrink the window as over REMOTE
    down = Coalescer(STREAM)
    for _ in range(20):
        down.finished(0.150)
    assert down.window == pytest.approx(STREAM.low)


def test_the_window_counts_from_the_oldest_waiting_change_not_the_previous_run() -> None:
    # writes 50 ms apart and an 80 ms window: a window from the previous run's start gave
    # one or two writes a run (12.5 runs a second); from the oldest waiting write, two
    runs, worst = _simulate(Coalescer(LOCAL), [1.0 + i / 20 for i in range(200)], wall=0.004)
    assert runs <= 102, runs
    assert worst <= LOCAL.high + 0.004 + 1e-9  # the longest wait is still one window
    policy = Coalescer(LOCAL)
    policy.started(10.0)
    policy.finished(0.004)
    # a write during a stream waits for its own window, not the previous run's
    assert policy.decide(10.06, 1, MAX, 10.05) == pytest.approx(10.05 + LOCAL.high - 10.06)
    # one that came a window after the last run started is a lone write: at once
    assert policy.decide(10.2, 1, MAX, 10.0 + LOCAL.high) == 0.0
    # rows whose time is not known: a window after the previous run's start, as before
    assert policy.decide(10.03, 1, MAX) == pytest.approx(10.0 + LOCAL.high - 10.03)


async def test_no_change_in_a_stream_waits_longer_than_the_latency_budget(
    tmp_path: Path, bstore: Store, runtime: Path
) -> None:
    """The window counts from the oldest change the next run carries, in memory or in the
    journal: a first version counted from the first change seen after a run began, which
    lost the changes seen just before it that the journal had not taken yet (1.6 s at a
    1 s budget, 156 ms at the default 100 ms under 200 writes/s, in the bench)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    spec = make_spec(
        src, parse_target(str(dst)), runtime, reconcile_at_start=True, latency_budget=1.0
    )
    arrived: dict[str, float] = {}
    written: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:  # the arrival of each final name on the replica, by polling
        while not stop.is_set():
            for name in [n for n in written if n not in arrived]:
                if (dst / name).exists():
                    arrived[name] = time.monotonic()
            time.sleep(0.005)

    async with running(spec, bstore, journal_write=bstore.fast_write) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        poller = threading.Thread(target=watch, daemon=True)
        poller.start()
        try:
            began = time.monotonic()
            for i in range(600):  # 3 s at 200 writes/s: some land in every run's last ms
                name = f"f{i:03}"
                (src / name).write_bytes(b"x" * 1024)
                written[name] = time.monotonic()
                await asyncio.sleep(max(0.0, began + (i + 1) / 200 - time.monotonic()))
            await caught_up(rep, src, dst)
            await asyncio.sleep(0.05)
        finally:
            stop.set()
            poller.join()
    waits = sorted(arrived[n] - written[n] for n in written)
    assert len(waits) == len(written)
    # the window is 0.8 s of the 1 s budget; the run and this poll add a few ms each
    assert waits[-1] < 1.0, waits[-5:]


def test_without_a_latency_budget_the_limits_are_the_defaults() -> None:
    assert limits_for(remote=False, budget=None) == LOCAL
    assert limits_for(remote=True, budget=None) == REMOTE
    assert limits_for(remote=True, budget=None, stream=True) == STREAM
    scaled = limits_for(True, STREAM.budget, stream=True)
    assert _parts(scaled) == pytest.approx(_parts(STREAM))
    # the defaults' own budgets give the defaults (the same bottom and top)
    for remote, default in ((False, LOCAL), (True, REMOTE)):
        scaled = limits_for(remote, default.budget)
        assert _parts(scaled) == pytest.approx(_parts(default))
    tiny = limits_for(False, 0.010)  # a budget below the bottom: the window fits inside it
    assert tiny.low <= tiny.high < tiny.budget


def _parts(limits: Limits) -> tuple[float, float, float]:
    return limits.low, limits.high, limits.budget


def _runs_per_second(limits: Limits, wall: float) -> tuple[float, float]:
    """A steady 20 writes/s for 10 s through the fake-clock shipper: runs a second, and
    the longest a write waited until its run was over."""
    writes = [1.0 + i / 20 for i in range(200)]
    runs, worst = _simulate(Coalescer(limits), writes, wall)
    return runs / 10, worst


def test_a_latency_budget_of_one_second_ships_a_stream_once_or_twice_a_second() -> None:
    # over ssh (a run of 60 ms): about 5 runs a second by default, ~1.2 with a 1 s budget
    default, worst = _runs_per_second(limits_for(True, None), wall=0.060)
    assert 4 <= default <= 6, default
    assert worst <= REMOTE.budget
    wide, worst = _runs_per_second(limits_for(True, 1.0), wall=0.060)
    assert 1 <= wide <= 1.5, wide
    assert worst <= 1.0
    # local (a run of 4 ms): 12 a second by default, about 1.25 with a 1 s budget
    default, _ = _runs_per_second(limits_for(False, None), wall=0.004)
    assert default >= 10, default
    wide, worst = _runs_per_second(limits_for(False, 1.0), wall=0.004)
    assert 1 <= wide <= 2, wide
    assert worst <= 1.0


def _config(tmp_path: Path, target: str, extra: str) -> Path:
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n[[replication]]\nname = "docs"\n'
        f'source = "{tmp_path / "src"}"\ntarget = "{target}"\n{extra}\n'
    )
    return cfg


@pytest.mark.parametrize(
    ("target", "extra", "limits"),
    [
        ("dst", 'latency_budget = "1s"', Limits(low=0.020, high=0.8, budget=1.0)),
        ("u@backup.example:/r", 'latency_budget = "1s"', Limits(low=0.020, high=0.8, budget=1.0)),
        ("u@backup.example:/r", 'latency_budget = "400ms"', REMOTE),
        ("dst", "", LOCAL),
        ("u@backup.example:/r", "", REMOTE),
    ],
)
async def test_the_latency_budget_key_reaches_the_replicator(
    tmp_path: Path, bstore: Store, runtime: Path, target: str, extra: str, limits: Limits
) -> None:
    if target == "dst":
        target = str(tmp_path / "dst")
    rc = load_config(_config(tmp_path, target, extra)).replication[0]
    spec = spec_from_config(rc, runtime)
    assert spec.latency_budget == (limits.budget if extra else None)
    rep = Replicator(spec, bstore.db, bstore.write)
    got = rep.coalesce.limits
    assert (got.low, got.high, got.budget) == pytest.approx(
        (limits.low, limits.high, limits.budget)
    )


@pytest.mark.parametrize("value", ["0", '"0ms"', '"2m"', "61", '"soon"', "-1"])
def test_a_bad_latency_budget_is_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    cfg = _config(tmp_path, str(tmp_path / "dst"), f"latency_budget = {value}")
    with pytest.raises(ConfigError, match=r"replication\[0\]\.latency_budget: "):
        load_config(cfg)


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
    # rsync ships (local_copy off): a local replica's plain files skip the journal (the
    # direct run, tests/backup/test_direct_run.py); this is the road of every other target.
    # A budget that leaves rsync's runs (~35 ms) a window wider than 50 ms.
    spec = make_spec(
        src,
        parse_target(str(dst)),
        runtime,
        reconcile_at_start=reconcile_at_start,
        local_copy=False,
        latency_budget=1.0,
    )
    async with running(spec, bstore, journal_write=bstore.fast_write) as rep:
        (src / "warm.txt").write_text("first")
        await caught_up(rep, src, dst)
        records = count_records(rep)
        n = 40
        for i in range(n):
            (src / f"f{i:03}").write_bytes(f"file {i} ".encode() * (200 + i))
            await asyncio.sleep(1 / 20)
        await caught_up(rep, src, dst)  # every file, byte for byte
        assert rep.coalesce.waited > 0
        if reconcile_at_start:
            assert records[0] < 0.8 * n, records[0]
        else:
            assert records[0] >= 0.9 * n, records[0]
