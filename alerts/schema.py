"""Tables owned by alert delivery (`outbox_*`, `alert_*`), applied by `Store.migrate`."""

from __future__ import annotations

OWNER = "alerts"

MIGRATIONS: tuple[str, ...] = (
    """
    -- One row per (alarm event, channel): what must reach that channel. A row stays
    -- 'pending' until the channel confirmed it, so a crash mid-send resends it.
    CREATE TABLE outbox_message (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,          -- Channel.key (derived from the masked URL)
        alarm_id TEXT NOT NULL,
        event TEXT NOT NULL,
        severity TEXT NOT NULL,
        payload TEXT NOT NULL,          -- the AlarmEvent as JSON
        created REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | orphaned | dead
        attempts INTEGER NOT NULL DEFAULT 0,
        sent REAL
    );
    CREATE INDEX outbox_message_pending ON outbox_message(state, channel, id);

    -- What status shows about each channel; never the URL in clear.
    CREATE TABLE alert_channel (
        key TEXT PRIMARY KEY,
        display TEXT NOT NULL,          -- masked URL
        service TEXT NOT NULL,
        tags TEXT NOT NULL,             -- JSON list
        form TEXT NOT NULL,
        configured INTEGER NOT NULL DEFAULT 1,
        last_success REAL,
        last_failure REAL,
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        failing_since REAL,
        sent_total INTEGER NOT NULL DEFAULT 0
    );
    """,
    """
    -- A row that cannot be decoded or rendered is set aside as state 'dead' with the
    -- error, so it never blocks the rows behind it (kept for forensics).
    ALTER TABLE outbox_message ADD COLUMN error TEXT;
    """,
    """
    -- Failed send attempts per channel, never reset (consecutive_failures resets on the
    -- next success), so a monitoring system sees how often a channel fails over time.
    ALTER TABLE alert_channel ADD COLUMN failed_total INTEGER NOT NULL DEFAULT 0;
    """,
    """
    -- OAuth refresh tokens a provider rotated (kakaotalk://, alerts/tokens.py), keyed by
    -- Channel.key: the URL's token stops working once Kakao hands out a new one.
    CREATE TABLE alert_token (
        channel TEXT PRIMARY KEY,
        configured TEXT NOT NULL,       -- SHA-256 of the URL's token this one replaced
        token TEXT NOT NULL,
        saved REAL NOT NULL
    );
    """,
    """
    -- 1 on a row the sender added because every channel the event was routed to kept
    -- failing for [alerts] fallback_after (a modem SMS); status shows when that happened.
    ALTER TABLE outbox_message ADD COLUMN fallback INTEGER NOT NULL DEFAULT 0;
    """,
)
