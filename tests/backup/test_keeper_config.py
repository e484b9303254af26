"""`[replication.keeper]` (issue 11): defaults, refusals with the reason, and no table at
all leaving a replication exactly as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import ConfigError, load_config
from sentinel.keeper_confirm import ReplicaFreshness
from tests.fixtures.poll import until

BASE = """
[[replication]]
name = "docs"
source = "{src}"
target = "{dst}"
"""


def _load(tmp_path: Path, extra: str = "", target: str | None = None):
    (tmp_path / "src").mkdir(exist_ok=True)
    text = BASE.format(src=tmp_path / "src", dst=target or tmp_path / "dst") + extra
    path = tmp_path / "sentinel.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_keeper_table_absent_means_no_keeper(tmp_path: Path):
    rc = _load(tmp_path).replication[0]
    assert rc.keeper is None and rc.keeper_room == "docs"


def test_keeper_defaults(tmp_path: Path):
    rc = _load(
        tmp_path, f'[replication.keeper]\nreceipt = "{tmp_path}/r/receipt.json"\n'
    ).replication[0]
    assert rc.keeper is not None
    assert rc.keeper_room == "docs"  # the replication's name
    assert (rc.keeper.heartbeat, rc.keeper.confirm_wait, rc.keeper.stale_after) == (5.0, 1.5, 90.0)


@pytest.mark.parametrize(
    "receipt",
    [
        "rsync://sentinel@keeper/main-office-receipt/receipt.json",
        "sentinel@keeper::main-office-receipt/receipt.json",
    ],
)
def test_keeper_remote_receipts_and_durations(tmp_path: Path, receipt: str):
    rc = _load(
        tmp_path,
        f'[replication.keeper]\nroom = "main-office"\nheartbeat = "2s"\n'
        f'confirm_wait = "500ms"\nreceipt_stale = "1m"\nreceipt = "{receipt}"\n',
        target="rsync://sentinel@keeper/main-office",
    ).replication[0]
    assert rc.keeper is not None and rc.keeper_room == "main-office"
    assert (rc.keeper.heartbeat, rc.keeper.confirm_wait, rc.keeper.stale_after) == (2.0, 0.5, 60.0)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('confirm_wait = "10s"\nreceipt = "/r/receipt.json"', "confirm_wait"),
        ('receipt = "relative/receipt.json"', "receipt"),
        ('receipt = "/r/"', "name the file"),
        ('room = "main office!"\nreceipt = "/r/receipt.json"', "room"),
        ('heartbeat = "0s"\nreceipt = "/r/receipt.json"', "heartbeat"),
        ('receipt = "/r/receipt.json"\nbeat = "5s"', "beat"),
        ('heartbeat = "5s"', "receipt"),
    ],
)
def test_keeper_table_refusals_say_why(tmp_path: Path, table: str, message: str):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, f"[replication.keeper]\n{table}\n")


async def test_keeper_absent_the_runtime_builds_nothing_and_the_sender_waits_for_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """No `[replication.keeper]`: no keeper component, no confirm hook on the sender (so the
    alert path is what it was), no heartbeat file at the replica; with one: both exist."""
    from sentinel.runtime import Runtime
    from sentinel.store import Store

    runtime_dir = tmp_path / "run"
    runtime_dir.mkdir(mode=0o700)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime_dir))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    for keeper in (False, True):
        dst = tmp_path / f"dst-{keeper}"
        extra = (
            (f'[replication.keeper]\nheartbeat = "1s"\nreceipt = "{tmp_path}/receipt.json"\n')
            if keeper
            else ""
        )
        config = _load(tmp_path, extra, target=str(dst))
        store = await Store.open(tmp_path / f"state-{keeper}")
        try:
            await Runtime.migrate(store)
            runtime = Runtime(config, store)
            await runtime.start()
            try:
                rep = runtime.replicators[0]
                await until(
                    lambda rep=rep: rep.health()["last_full"] is not None, 20, "the first sync"
                )
                if keeper:
                    assert runtime.sender.confirm is not None
                    assert "keeper:docs" in runtime.health()
                    await until(
                        lambda dst=dst: (dst / ".sentinel-heartbeat.json").exists(),
                        10,
                        "the heartbeat",
                    )
                else:
                    await until(lambda rep=rep: rep.caught_up, 10, "caught up")
                    # no keeper: a power or disaster page says how far the room's copy got
                    assert isinstance(runtime.sender.confirm, ReplicaFreshness)
                    assert runtime.keeper_rooms == []
                    assert not any(n.startswith("keeper:") for n in runtime.health())
                    assert not (dst / ".sentinel-heartbeat.json").exists()
            finally:
                await runtime.stop()
        finally:
            await store.close()
