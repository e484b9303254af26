"""Persistent per-source state (backup_state): success/failure, guard, last full pass."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from typing import Any

import aiosqlite

from backup.journal import WriteTx


@dataclass(frozen=True, slots=True)
class ReplicatorState:
    """One source's backup_state row. The replicator keeps the copy it last wrote (or read:
    a resume or discard writes the guard fields through the command runner, beside the
    replicator's own loop)."""

    last_success: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_ts: float | None = None
    last_full: float | None = None
    last_full_ok: bool | None = None
    shipped_files: int = 0
    guard_tripped: bool = False
    guard_count: int | None = None
    guard_ts: float | None = None
    guard_reason: str | None = None
    last_prune: float | None = None
    # set by the schema migration on an install that synced before markers existed, and
    # cleared (NULL) once the markers are adopted (backup/adoption.py)
    markers_adopt: bool | None = None


FIELDS = tuple(f.name for f in fields(ReplicatorState))


async def load_state(db: aiosqlite.Connection, source: str) -> ReplicatorState:
    async with db.execute(
        f"SELECT {', '.join(FIELDS)} FROM backup_state WHERE source = ?", (source,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return ReplicatorState()
    r = dict(zip(FIELDS, tuple(row), strict=True))
    return ReplicatorState(
        last_success=r["last_success"],
        consecutive_failures=int(r["consecutive_failures"] or 0),
        last_error=r["last_error"],
        last_error_ts=r["last_error_ts"],
        last_full=r["last_full"],
        last_full_ok=None if r["last_full_ok"] is None else bool(r["last_full_ok"]),
        shipped_files=int(r["shipped_files"] or 0),
        guard_tripped=bool(r["guard_tripped"]),
        guard_count=r["guard_count"],
        guard_ts=r["guard_ts"],
        guard_reason=r["guard_reason"],
        last_prune=r["last_prune"],
        markers_adopt=None if r["markers_adopt"] is None else bool(r["markers_adopt"]),
    )


async def save_state(write: WriteTx, source: str, **values: Any) -> None:
    """Upserts only the given fields (`ReplicatorState`'s names)."""
    async with write() as db:
        await upsert_state(db, source, **values)


async def upsert_state(db: aiosqlite.Connection, source: str, **values: Any) -> None:
    """`save_state` inside a transaction the caller holds."""
    await db.execute(*_upsert(source, values))


def put_state(conn: sqlite3.Connection, source: str, **values: Any) -> None:
    """`upsert_state` inside a one-hop transaction (`WriteFn`), in the database's thread."""
    conn.execute(*_upsert(source, values))


def _upsert(source: str, values: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown backup_state fields: {sorted(unknown)}")
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    updates = ", ".join(f"{k} = excluded.{k}" for k in values)
    return (
        f"INSERT INTO backup_state(source, {cols}) VALUES (?, {marks}) "
        f"ON CONFLICT(source) DO UPDATE SET {updates}",
        (source, *values.values()),
    )
