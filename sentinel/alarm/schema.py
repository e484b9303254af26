"""Tables of the alarm engine (owner "alarm"), applied by `Store.migrate("alarm", MIGRATIONS)`."""

from __future__ import annotations

OWNER = "alarm"

MIGRATIONS: tuple[str, ...] = (
    """
    -- the counter behind alarm ids: never reused over the database's life
    CREATE TABLE alarm_seq (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
    INSERT INTO alarm_seq(id, n) VALUES (1, 0);

    -- one row per alarm (pending, firing, acknowledged, resolved or cancelled)
    CREATE TABLE alarm_alarms (
        id TEXT PRIMARY KEY,
        n INTEGER NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        condition TEXT NOT NULL,
        sensor_id TEXT NOT NULL,
        location TEXT NOT NULL,
        kind TEXT NOT NULL,
        unit TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        severity TEXT NOT NULL,
        value TEXT,
        reason TEXT NOT NULL DEFAULT '',
        opened REAL NOT NULL,
        fired REAL,
        last_notified REAL,
        escalation INTEGER NOT NULL DEFAULT 0,
        acked_by TEXT,
        acked_at REAL,
        clear_since REAL,
        latched INTEGER NOT NULL DEFAULT 0,
        unpaged INTEGER NOT NULL DEFAULT 0,
        direction TEXT,
        closed REAL,
        updated REAL NOT NULL
    );
    CREATE INDEX alarm_alarms_open ON alarm_alarms(state) WHERE closed IS NULL;

    CREATE TABLE alarm_transitions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        alarm_id TEXT NOT NULL,
        ts REAL NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        severity TEXT NOT NULL,
        reason TEXT NOT NULL,
        event TEXT,
        notified INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX alarm_transitions_alarm ON alarm_transitions(alarm_id, seq);

    -- latest value per sensor and kind, written in batches by Engine.flush()
    CREATE TABLE alarm_sensors (
        id TEXT NOT NULL,
        kind TEXT NOT NULL,
        location TEXT NOT NULL DEFAULT '',
        unit TEXT NOT NULL DEFAULT '',
        max_age REAL,
        configured INTEGER NOT NULL DEFAULT 1,
        value TEXT,
        value_ts REAL,
        fault TEXT,
        PRIMARY KEY (id, kind)
    );

    CREATE TABLE alarm_history (
        sensor_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        ts REAL NOT NULL,
        value TEXT
    );
    CREATE INDEX alarm_history_sensor ON alarm_history(sensor_id, kind, ts);
    CREATE INDEX alarm_history_ts ON alarm_history(ts);

    -- sensor_id NULL = everything
    CREATE TABLE alarm_silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sensor_id TEXT,
        reason TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        until REAL NOT NULL,
        ended REAL,
        ended_by TEXT
    );

    -- written by the CLI (another process), applied by the engine in tick()
    CREATE TABLE alarm_commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        command TEXT NOT NULL,
        args TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL,
        applied REAL,
        result TEXT
    );
    CREATE INDEX alarm_commands_pending ON alarm_commands(id) WHERE applied IS NULL;
    """,
    """
    -- migration 2: the trail of safety actions (ack, silence, unsilence), one row per
    -- command applied, with the real identity of whoever ran it beside the declared name
    CREATE TABLE alarm_actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        requested REAL NOT NULL,
        command TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        until REAL,
        reason TEXT NOT NULL DEFAULT '',
        declared_by TEXT NOT NULL DEFAULT '',
        uid INTEGER,
        user TEXT,
        sudo_uid INTEGER,
        sudo_user TEXT,
        result TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX alarm_actions_ts ON alarm_actions(ts);
    """,
    """
    -- migration 3: the reason as a code for the messages' own wording (alerts/reasons.py),
    -- and the highest severity an alarm reached, so its "resolved" names the worst it got
    -- (NULL in rows from before: read as the row's severity)
    ALTER TABLE alarm_alarms ADD COLUMN cause TEXT NOT NULL DEFAULT '';
    ALTER TABLE alarm_alarms ADD COLUMN params TEXT;
    ALTER TABLE alarm_alarms ADD COLUMN peak TEXT;
    """,
    """
    -- migration 4: the client address of an action taken from the web dashboard
    -- (sentinel/web/actions.py); NULL for the CLI, whose uid columns say who it was
    ALTER TABLE alarm_actions ADD COLUMN address TEXT;
    """,
)
