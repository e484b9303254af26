"""The type of the daemon's serialised write transaction (sentinel/store.py's `Store.write`).

Every package that writes the state database takes one of these instead of the store, so a
leaf never needs sentinel/ and tests can hand it any connection."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import aiosqlite

# `async with write() as db:` is one transaction: committed when the block ends, rolled
# back when it raises.
WriteTx: TypeAlias = Callable[[], AbstractAsyncContextManager["aiosqlite.Connection"]]
