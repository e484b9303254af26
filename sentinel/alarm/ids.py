"""Short, human alarm ids ("A7F3"): a permuted counter in Crockford base32.

The counter never repeats, and multiplying by an odd constant modulo a power of two is a
bijection, so ids are unique while neighbouring alarms still look unrelated (a person reading
two SMS does not confuse "A7F3" with "A7F4").
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_MULTIPLIER = 0x9E3779B1  # odd
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})


def alarm_id(n: int) -> str:
    """The id of the n-th alarm (n >= 1): 4 characters for the first 2**20, then 5, 6, ..."""
    if n < 1:
        raise ValueError(f"alarm counter starts at 1, found {n}")
    chars = 4
    while n >= 1 << (5 * chars):
        chars += 1
    bits = 5 * chars
    scrambled = (n * _MULTIPLIER) & ((1 << bits) - 1)
    out = []
    for _ in range(chars):
        out.append(ALPHABET[scrambled & 31])
        scrambled >>= 5
    return "".join(reversed(out))


def normalize(text: str) -> str:
    """What a person typed -> the id as stored (case, O/0 and I/L/1 confusions forgiven)."""
    return text.strip().upper().translate(_READ_AS)


class IdAllocator:
    """Hands out alarm numbers and ids, and remembers whether the last one is saved yet.

    The counter lives in alarm_seq; the caller saves `unsaved()` with the transitions that
    used it, so an id is never handed out twice even if the daemon dies right after.
    """

    __slots__ = ("_last", "_unsaved")

    def __init__(self, last: int = 0) -> None:
        self._last = last
        self._unsaved = False

    def allocate(self) -> tuple[int, str]:
        self._last += 1
        self._unsaved = True
        return self._last, alarm_id(self._last)

    def unsaved(self) -> int | None:
        """The highest number handed out since the last call, or None."""
        if not self._unsaved:
            return None
        self._unsaved = False
        return self._last
