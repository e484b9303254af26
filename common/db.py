"""The types of the daemon's serialised write transactions (sentinel/store.py's
`Store.write` and `Store.run_write`).

Every package that writes the state database takes one of these instead of the store, so a
leaf never needs sentinel/ and tests can hand it any connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar

if TYPE_CHECKING:
    import sqlite3

    import aiosqlite

_T = TypeVar("_T")

# `async with write() as db:` is one transaction: committed when the block ends, rolled
# back when it raises.
WriteTx: TypeAlias = Callable[[], AbstractAsyncContextManager["aiosqlite.Connection"]]


class WriteFn(Protocol):
    """`await run(fn)`: `fn(conn)` is the whole transaction, a plain function run in the
    database's thread between BEGIN IMMEDIATE and COMMIT (ROLLBACK when it raises); its
    result is returned. One hop to that thread instead of one per statement: for the
    per-batch bookkeeping that runs many times a second."""

    def __call__(self, fn: Callable[[sqlite3.Connection], _T], /) -> Awaitable[_T]: ...
