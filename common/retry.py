"""The one retry timing: exponential delays, capped, spread by jitter.

Each caller keeps its own numbers (a sensor reconnects after 1 s, a page after 2 s, a
restart loop backs off to a minute) but they all grow the same way. Randomness comes in as
a `draw` in [0, 1), so this module stays pure and its numbers are testable.
"""

from __future__ import annotations

from dataclasses import dataclass

# The delay drawn anywhere in its upper half: failing parts do not retry in lockstep, and
# none waits longer than the base delay.
HALF_JITTER: tuple[float, float] = (0.5, 1.0)
# A doubling this many times already exceeds any cap a config allows; more would overflow
# the float the base delay is.
_MAX_DOUBLINGS = 64


def spread(jitter: float) -> tuple[float, float]:
    """The range of factors for a delay of base x (1 ± jitter)."""
    return (1.0 - jitter, 1.0 + jitter)


@dataclass(frozen=True, slots=True)
class Backoff:
    """`initial`, x2, x4, ... capped at `maximum`; each delay is the base delay times a
    factor in `factors` (low, high)."""

    initial: float
    maximum: float
    factors: tuple[float, float] = HALF_JITTER

    def base(self, failures: int) -> float:
        """The delay before retry number `failures` (1 = after the first failure)."""
        doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
        return min(self.maximum, self.initial * 2**doublings)

    def delay(self, failures: int, draw: float) -> float:
        """`base(failures)` spread by `draw`, a random number in [0, 1)."""
        low, high = self.factors
        return self.base(failures) * (low + (high - low) * draw)


@dataclass(slots=True)
class Retries:
    """A backoff with the count of failures since the last success."""

    backoff: Backoff
    failures: int = 0

    def next(self, draw: float) -> float:
        self.failures += 1
        return self.backoff.delay(self.failures, draw)

    def reset(self) -> None:
        self.failures = 0
