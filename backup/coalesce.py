"""The coalescing window: when the shipper runs its next batch (issue 18).

A lone write after a quiet period ships at once. While writes keep coming (the previous run
started less than one window ago), the next run waits until the oldest change it will carry
has waited one window, so a stream of sparse writes shares runs instead of paying a run each.
Counting the window from that change, not from the previous run's start, keeps the longest
wait the same (one window) and makes the runs fewer: at 20 writes/s and an 80 ms window,
every run carries two writes (10 runs a second) instead of one or two (12.5).

The window is what the latency budget leaves after the runs themselves: budget minus
MARGIN times the recent wall time of a run (an EWMA), clamped. Cheap runs (the in-process
local copy) get the widest window the budget allows, which is what saves CPU at 20 writes/s
(writes 50 ms apart share a run only when the window is wider than 50 ms); slow runs (ssh)
shrink it, so a write that waits a whole window and then a slow run still arrives within the
budget. A margin of three runs covers a run slower than the average (ssh runs vary 2-3x on a
busy host) and one still running when the write came.

Pure: the caller passes the monotonic time; nothing here sleeps or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

# Weight of the newest run in the wall-time average: a handful of runs move it.
ALPHA = 0.25
# The window leaves this many average runs of the budget (see above).
MARGIN = 3.0


@dataclass(frozen=True)
class Limits:
    """Seconds: the window is kept in [low, high]; `budget` is the latency it aims under."""

    low: float
    high: float
    budget: float


# p99 <= 100 ms on a local target, <= 400 ms over ssh (issue 18's goals)
LOCAL = Limits(low=0.020, high=0.080, budget=0.100)
# a remote top of 200 ms: an ssh run of 100-200 ms after a whole window still fits in 400
REMOTE = Limits(low=0.020, high=0.200, budget=0.400)
# the stream road (backup/stream.py): a run is one round trip on an open ssh session,
# 10-20 ms, so 100 ms of the budget is left for it (the margin of measured runs still
# applies, and runs through rsync while the stream is down shrink the window again)
STREAM = Limits(low=0.020, high=0.300, budget=0.400)
STREAM_RUN = 0.100
# the top of the window: a local run costs a few ms, so 80 % of the budget may be the wait
# (as in LOCAL); an ssh run costs 100-200 ms, so it keeps that much of the budget (as in
# REMOTE: 400 - 200 ms)
LOCAL_SHARE = 0.8
REMOTE_RUN = 0.200


def limits_for(remote: bool, budget: float | None, *, stream: bool = False) -> Limits:
    """The limits for a target: today's LOCAL/REMOTE, or the operator's `latency_budget`.

    The window is the wait; what is left of the budget is for the run that follows it
    (and the window shrinks further when runs are measured slower, see `Coalescer.window`).
    Over ssh a budget of 1 s therefore means a run about every 0.8 s: about lsyncd's
    (delay=1) count of runs at 20 writes/s. The bottom stays 20 ms."""
    if budget is None:
        return STREAM if stream else REMOTE if remote else LOCAL
    run = STREAM_RUN if stream else REMOTE_RUN
    high = budget - run if remote else LOCAL_SHARE * budget
    # a small budget leaves a top below 20 ms: the bottom follows it down
    high = max(high, min(LOCAL.low, budget / 2))
    return Limits(low=min(LOCAL.low, high), high=high, budget=budget)


class Coalescer:
    """Decides how long the next ship run waits; learns the wall time of runs."""

    def __init__(self, limits: Limits, alpha: float = ALPHA) -> None:
        self.limits = limits
        self.alpha = alpha
        self.wall: float | None = None  # EWMA of a run's wall time, seconds
        self._last_start: float | None = None
        # the decisions taken, for status and tests: how many ran at once / waited
        self.at_once = 0
        self.waited = 0

    @property
    def window(self) -> float:
        wall = self.wall or 0.0
        lim = self.limits
        return min(lim.high, max(lim.low, lim.budget - MARGIN * wall))

    def delay(self, now: float, pending: int, max_files: int, oldest: float | None = None) -> float:
        """Seconds the next run should wait from `now` (0: run now). `oldest`: when the
        oldest change waiting for it was seen (None: not known). Pure: call `started`
        when the run really starts."""
        if pending >= max_files or self._last_start is None:
            return 0.0  # a full batch gains nothing from waiting; nothing ran yet: quiet
        window = self.window
        if oldest is None:  # not known: rows left from before that run, a window after it
            return max(0.0, self._last_start + window - now)
        if oldest - self._last_start >= window:
            return 0.0  # the first change came a window or more after the last run: quiet
        return max(0.0, oldest + window - now)

    def decide(
        self, now: float, pending: int, max_files: int, oldest: float | None = None
    ) -> float:
        """`delay`, with the decision counted (a run that will wait, or one that goes now)."""
        wait = self.delay(now, pending, max_files, oldest)
        self.count(wait > 0)
        return wait

    def count(self, waited: bool) -> None:
        """Counts a decision taken with `delay` for a run that happened."""
        if waited:
            self.waited += 1
        else:
            self.at_once += 1

    def started(self, now: float) -> None:
        self._last_start = now

    def finished(self, wall: float) -> None:
        """The wall time of a run that shipped."""
        wall = max(0.0, wall)
        self.wall = wall if self.wall is None else self.wall + self.alpha * (wall - self.wall)
