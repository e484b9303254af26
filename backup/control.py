"""Operator decisions on a tripped ransomware guard (`sentinel backup resume|discard`: the
running daemon applies the command row, or the CLI itself when no daemon runs; the
replicator picks the cleared state up within a second).

- resume: clears the trip; the daemon ships every pending change, the mass change included.
  After a trip by a full pass's dry run, that pass runs (once, if it would not change more
  than was measured).
- discard: clears the trip and deletes the pending journal rows, so none of those changes
  is shipped and the replica stays as it was. Until the next full pass runs, every batch is
  measured with a dry run (a later edit of a file that replaced a directory would delete
  the directory's replica files): more than the guard allows trips it again. A full pass
  that still finds the mass change (nightly, at start, `sentinel backup sync --full`)
  trips the guard again: restore the source first (`sentinel backup restore --to ...`)
  when the change was an attack.
"""

from __future__ import annotations

from backup.journal import WriteTx
from backup.state import save_state

# guard_reason after a discard: the replica now differs from the source in what was
# dropped, so the daemon measures every batch (as a full pass would) until a full pass ran.
DISCARDED = "discarded by an operator"


async def resume(write: WriteTx, source: str) -> None:
    await save_state(write, source, guard_tripped=0)


async def discard(write: WriteTx, source: str) -> int:
    """Returns how many pending changes were dropped."""
    async with write() as db:
        cur = await db.execute("DELETE FROM backup_journal WHERE source = ?", (source,))
        dropped = cur.rowcount
    # a new reason: the full-pass approval that `resume` keeps is not given
    await save_state(write, source, guard_tripped=0, guard_reason=DISCARDED)
    return dropped
