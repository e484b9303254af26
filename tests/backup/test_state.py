"""backup_state as a typed value: what the replicator keeps in memory is what a reload
reads back."""

from __future__ import annotations

import pytest

from backup.state import ReplicatorState, load_state, save_state
from sentinel.store import Store


async def test_a_source_without_a_row_starts_from_the_defaults(bstore: Store) -> None:
    state = await load_state(bstore.db, "docs")
    assert state == ReplicatorState()
    assert state.consecutive_failures == 0 and not state.guard_tripped


async def test_saved_fields_load_back_typed(bstore: Store) -> None:
    await save_state(bstore.write, "docs", guard_tripped=True, guard_count=250, last_full_ok=True)
    await save_state(bstore.write, "docs", consecutive_failures=3, last_error="rsync exit 10")
    state = await load_state(bstore.db, "docs")
    assert state.guard_tripped is True and state.last_full_ok is True
    assert (state.guard_count, state.consecutive_failures) == (250, 3)
    assert state.last_error == "rsync exit 10" and state.markers_adopt is None
    # sentinel backup resume (another process) writes the same column as an integer
    await save_state(bstore.write, "docs", guard_tripped=0)
    assert (await load_state(bstore.db, "docs")).guard_tripped is False


async def test_an_unknown_field_is_refused(bstore: Store) -> None:
    with pytest.raises(ValueError, match="unknown backup_state fields"):
        await save_state(bstore.write, "docs", guard_trip=True)
