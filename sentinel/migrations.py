"""The one place the state database's tables are created and upgraded.

Every owner's migrations run here, in one order, before any component touches its tables:
the daemon calls `migrate` once at start, and so does every `sentinel backup` action that
opens the store (sentinel/cli/backup.py: with no daemon running, sync/resume/discard run
in-process on a state database the daemon may never have opened); tests call it on their
fresh store. A component
never migrates on its own: two places that each migrate "their" tables were how a table
came to be used before it existed.
"""

from __future__ import annotations

from alerts import schema as alerts_schema
from backup import database_drill_record, drill_record
from backup import schema as backup_schema
from sentinel import command_rows
from sentinel.alarm import rollup as history_rollup
from sentinel.alarm import schema as alarm_schema
from sentinel.report import record as report_record
from sentinel.store import Store

OWNERS = (
    (alarm_schema.OWNER, alarm_schema.MIGRATIONS),
    (history_rollup.OWNER, history_rollup.MIGRATIONS),
    (alerts_schema.OWNER, alerts_schema.MIGRATIONS),
    (backup_schema.OWNER, backup_schema.MIGRATIONS),
    (command_rows.OWNER, command_rows.MIGRATIONS),
    (database_drill_record.OWNER, database_drill_record.MIGRATIONS),
    (drill_record.OWNER, drill_record.MIGRATIONS),
    (report_record.OWNER, report_record.MIGRATIONS),
)


async def migrate(store: Store) -> None:
    """Creates or upgrades every table sentinel keeps in `store`."""
    for owner, migrations in OWNERS:
        await store.migrate(owner, migrations)
