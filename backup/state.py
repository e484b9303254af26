"""Persistent per-source state (backup_state): success/failure, guard, last full pass."""

from __future__ import annotations

from typing import Any

import aiosqlite

from backup.journal import WriteTx

FIELDS = (
    "last_success",
    "consecutive_failures",
    "last_error",
    "last_error_ts",
    "last_full",
    "last_full_ok",
    "shipped_files",
    "guard_tripped",
    "guard_count",
    "guard_ts",
    "guard_reason",
    "last_prune",
    "markers_adopt",
)


async def load_state(db: aiosqlite.Connection, source: str) -> dict[str, Any]:
    async with db.execute(
        f"SELECT {', '.join(FIELDS)} FROM backup_state WHERE source = ?", (source,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return {f: None for f in FIELDS} | {
            "consecutive_failures": 0,
            "shipped_files": 0,
            "guard_tripped": 0,
        }
    return dict(zip(FIELDS, tuple(row), strict=True))


async def save_state(write: WriteTx, source: str, **values: Any) -> None:
    """Upserts only the given fields."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown backup_state fields: {sorted(unknown)}")
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    updates = ", ".join(f"{k} = excluded.{k}" for k in values)
    async with write() as db:
        await db.execute(
            f"INSERT INTO backup_state(source, {cols}) VALUES (?, {marks}) "
            f"ON CONFLICT(source) DO UPDATE SET {updates}",
            (source, *values.values()),
        )
