"""Tables owned by backup/ (owner "backup" in schema_version)."""

from __future__ import annotations

OWNER = "backup"

MIGRATIONS: tuple[str, ...] = (
    """
    -- One row per changed path not yet on the replica. `first_seen` is when the oldest
    -- unshipped change happened (the RPO); `seq` is bumped on every change, so a shipped
    -- batch deletes only rows that did not change while rsync ran.
    CREATE TABLE backup_journal (
        source TEXT NOT NULL,
        path TEXT NOT NULL,
        first_seen REAL NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (source, path)
    ) WITHOUT ROWID;
    CREATE INDEX backup_journal_seq ON backup_journal(source, seq);
    CREATE TABLE backup_state (
        source TEXT PRIMARY KEY,
        last_success REAL,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_error_ts REAL,
        last_full REAL,
        last_full_ok INTEGER,
        shipped_files INTEGER NOT NULL DEFAULT 0,
        guard_tripped INTEGER NOT NULL DEFAULT 0,
        guard_count INTEGER,
        guard_ts REAL,
        guard_reason TEXT,
        last_prune REAL
    );
    CREATE TABLE backup_verify (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        ts REAL NOT NULL,
        ok INTEGER NOT NULL,
        differences INTEGER NOT NULL,
        sample TEXT NOT NULL,
        error TEXT
    );
    CREATE INDEX backup_verify_source_ts ON backup_verify(source, ts);
    """,
    """
    -- Paths are the file system's bytes (a Linux name need not be UTF-8): the journal key
    -- becomes a BLOB; existing TEXT rows become their UTF-8 bytes.
    CREATE TABLE backup_journal_bytes (
        source TEXT NOT NULL,
        path BLOB NOT NULL,
        first_seen REAL NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (source, path)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO backup_journal_bytes(source, path, first_seen, seq)
        SELECT source, CAST(path AS BLOB), first_seen, seq FROM backup_journal;
    DROP TABLE backup_journal;
    ALTER TABLE backup_journal_bytes RENAME TO backup_journal;
    CREATE INDEX backup_journal_seq ON backup_journal(source, seq);
    -- Paths that rsync or the kernel refused on their own while the rest shipped: kept
    -- out of the journal (so they hold nothing up), shown in status, retried when they
    -- change again and after each full pass.
    CREATE TABLE backup_quarantine (
        source TEXT NOT NULL,
        path BLOB NOT NULL,
        reason TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (source, path)
    ) WITHOUT ROWID;
    """,
    """
    -- A state that synced before the source/target markers existed (an upgraded install)
    -- adopts them once, where it is safe (backup/adoption.py); 1 until both are in place.
    -- Rows made after this migration never adopt: a new install writes its markers at
    -- the first sync, and a lost marker is an alarm.
    ALTER TABLE backup_state ADD COLUMN markers_adopt INTEGER;
    UPDATE backup_state SET markers_adopt = 1
        WHERE last_success IS NOT NULL OR last_full IS NOT NULL;
    """,
    """
    -- Archive-log replication (backup/archive_log.py): every closed log that reached the
    -- replica, by thread and sequence number; `closed` is its mtime at the source (when
    -- the database finished it), `arrived` when it was on the replica. `backup_log_state`
    -- holds what the replicator last worked out from them for `sentinel status`: the
    -- contiguous head, the gap (JSON list of "41-43" ranges) and the acknowledged floor
    -- per thread (JSON {thread: seq}: missing numbers at or below it are no gap).
    CREATE TABLE backup_log (
        source TEXT NOT NULL,
        thread INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        name BLOB NOT NULL,
        closed REAL NOT NULL,
        arrived REAL NOT NULL,
        PRIMARY KEY (source, thread, seq)
    ) WITHOUT ROWID;
    CREATE TABLE backup_log_state (
        source TEXT PRIMARY KEY,
        head_seq INTEGER,
        head_name TEXT,
        head_closed REAL,
        gap TEXT NOT NULL DEFAULT '[]',
        floor TEXT NOT NULL DEFAULT '{}',
        ts REAL NOT NULL
    );
    """,
)
