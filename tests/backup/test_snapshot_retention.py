"""Retention of the keeper's snapshots (issue 11): the pure selection and the real prune."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from backup.retention import DAY, HOUR, Retention, select_keep
from backup.snapshot import SnapshotStore

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z, on an hour and day boundary
POLICY = Retention()


def test_defaults_are_the_issues() -> None:
    assert (POLICY.keep_all, POLICY.hourly, POLICY.daily) == (2 * DAY, 30 * DAY, 365 * DAY)
    with pytest.raises(ValueError):
        Retention(keep_all=-1)
    with pytest.raises(ValueError):
        Retention(daily=float("nan"))


def test_every_minute_for_400_days() -> None:
    stamps = [NOW - i * 60 - 7 for i in range(400 * 24 * 60)]
    keep = select_keep(stamps, POLICY, NOW)
    young = [t for t in stamps if NOW - t < 2 * DAY]
    assert set(young) <= keep
    hourly_zone = [t for t in keep if 2 * DAY <= NOW - t < 30 * DAY]
    daily_zone = [t for t in keep if 30 * DAY <= NOW - t < 365 * DAY]
    # one per UTC hour (the newest of it), one per UTC day
    assert len({int(t // HOUR) for t in hourly_zone}) == len(hourly_zone) == 28 * 24
    assert all(t % HOUR == HOUR - 7 for t in hourly_zone)  # xx:59:53, the hour's newest
    assert len({int(t // DAY) for t in daily_zone}) == len(daily_zone) == 335
    assert all(t % DAY == DAY - 7 for t in daily_zone)
    assert not [t for t in keep if NOW - t >= 365 * DAY]
    assert len(keep) == len(young) + 28 * 24 + 335


def test_choice_is_stable_as_time_passes() -> None:
    """What is kept at one moment and still in a window later is still kept later, and
    thinning never leaves an hour (or day) of the window without its representative."""
    rng = random.Random(11)
    stamps = sorted(NOW - rng.uniform(0, 400 * DAY) for _ in range(20_000))
    earlier = select_keep(stamps, POLICY, NOW)
    for later_now in (NOW + HOUR, NOW + 3 * DAY, NOW + 40 * DAY):
        later = select_keep(earlier, POLICY, later_now)  # prune what the earlier prune left
        direct = select_keep(stamps, POLICY, later_now)
        assert later == direct
        for t in direct:
            assert t in earlier


def test_newest_always_kept_and_future_kept() -> None:
    old = [NOW - 1000 * DAY, NOW - 900 * DAY]
    assert select_keep(old, POLICY, NOW) == {NOW - 900 * DAY}
    assert select_keep([NOW + 50, NOW - 1000 * DAY], POLICY, NOW) == {NOW + 50}
    assert select_keep([], POLICY, NOW) == set()
    assert select_keep(old, Retention(0, 0, 0), NOW) == {NOW - 900 * DAY}


def test_hour_buckets_are_utc_hours() -> None:
    # 07:59:59 and 08:00:01 are in different UTC hours; 08:00:01 and 08:59:59 are not
    a, b, c = NOW - 1, NOW + 1, NOW + HOUR - 1
    keep = select_keep([a, b, c], Retention(keep_all=0), NOW + 10 * DAY)
    assert keep == {a, c}


def test_prune_removes_whole_snapshots_never_the_newest(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "f").write_bytes(b"data")
    store = SnapshotStore(tmp_path / "snaps" / "r")
    stamps = [NOW - 3 * DAY + 60, NOW - 3 * DAY + 120, NOW - 3 * DAY + 180, NOW - 300 * DAY]
    snaps = [store.take(landing, now=t).snapshot for t in sorted(stamps)]
    removed = store.prune(POLICY, now=NOW)
    assert {s.name for s in removed} == {snaps[1].name, snaps[2].name}  # same hour as [3]
    assert store.list() == [snaps[0], snaps[3]]
    assert not snaps[1].path.exists()
    assert (snaps[3].path / "f").read_bytes() == b"data"
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []
    # far in the future nothing is in any window: the newest stays anyway
    removed = store.prune(POLICY, now=NOW + 5000 * DAY)
    assert removed == [snaps[0]]
    assert store.list() == [snaps[3]]


def test_half_deleted_snapshot_is_never_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    for i in range(20):
        (landing / f"f{i}").write_bytes(b"x")
    store = SnapshotStore(tmp_path / "snaps" / "r")
    old = store.take(landing, now=NOW - 900 * DAY).snapshot
    new = store.take(landing, now=time.time()).snapshot
    import shutil

    def crash(path: object, ignore_errors: bool = False) -> None:
        Path(path, "f0").unlink()  # got partway
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", crash)
    with pytest.raises(KeyboardInterrupt):
        store.prune(POLICY, now=time.time())
    monkeypatch.undo()
    assert store.list() == [new]
    assert not old.path.exists()
    store.take(landing, now=time.time())  # the next take clears the leftover
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []
