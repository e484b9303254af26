"""The stream's sender against a receiver that misbehaves: it never marks a path shipped
that the receiver did not take from it, never waits longer than `timeout`, and hands the
whole batch to rsync instead."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from backup.stream import StreamSession
from backup.transport import parse_target
from tests.backup.helpers import make_spec

FAKE = Path(__file__).with_name("broken_receiver.py")


def _ship(tmp_path: Path, mode: str, batches: int = 1) -> tuple[list[object], StreamSession]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    (src / "b.txt").write_text("b")
    spec = make_spec(src, parse_target(str(tmp_path / "replica")), tmp_path, timeout=2.0)
    session = StreamSession([sys.executable, str(FAKE), mode], "docs")
    try:
        outs = [
            session.ship(spec, ["a.txt", "b.txt"], time.time(), frozenset(), threading.Event())
            for _ in range(batches)
        ]
    finally:
        session.close()
    return outs, session


@pytest.mark.parametrize("mode", ["unhashable", "not-sent"])
def test_a_reply_naming_what_was_not_sent_hands_the_batch_to_rsync(
    tmp_path: Path, mode: str
) -> None:
    (out,), session = _ship(tmp_path, mode)
    assert out.done == [] and sorted(out.rest) == ["a.txt", "b.txt"]  # type: ignore[attr-defined]
    assert session.error and "answered" in session.error


def test_a_surplus_reply_is_not_taken_for_the_next_batch(tmp_path: Path) -> None:
    outs, session = _ship(tmp_path, "double-reply", batches=2)
    assert outs[0].done == ["a.txt", "b.txt"]  # type: ignore[attr-defined]
    assert outs[1].done == [] and sorted(outs[1].rest) == ["a.txt", "b.txt"]  # type: ignore[attr-defined]
    assert session.error


@pytest.mark.parametrize("mode", ["stderr-trickle", "stderr-closed"])
def test_a_receiver_that_never_answers_costs_at_most_the_timeout(tmp_path: Path, mode: str) -> None:
    began = time.monotonic()
    (out,), session = _ship(tmp_path, mode)
    took = time.monotonic() - began
    assert sorted(out.rest) == ["a.txt", "b.txt"]  # type: ignore[attr-defined]
    assert session.error and "no progress for 2 s" in session.error
    # 2 s of timeout plus the fake's start and the close; hung, it would never return
    assert took < 15, took


def test_a_refusing_receiver_is_not_sent_every_batch(tmp_path: Path) -> None:
    outs, session = _ship(tmp_path, "refuses", batches=2)
    assert all(sorted(o.rest) == ["a.txt", "b.txt"] for o in outs)  # type: ignore[attr-defined]
    assert session.error and "refuses batches: no .sentinel-target" in session.error
    assert session.link is None  # the second batch waited for the retry: nothing sent


def test_a_batch_cancelled_while_connecting_stops_at_once_and_is_no_outage(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    spec = make_spec(src, parse_target(str(tmp_path / "replica")), tmp_path, timeout=30.0)
    session = StreamSession([sys.executable, str(FAKE), "mute"], "docs")
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    began = time.monotonic()
    try:
        out = session.ship(spec, ["a.txt"], time.time(), frozenset(), stop)
    finally:
        session.close()
    assert out.rest == ["a.txt"]
    assert time.monotonic() - began < 5  # not the 30 s timeout
    assert session.error is None
