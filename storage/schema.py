"""The store's schema, versioned. Each migration runs once, in order, inside a transaction."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the outbox. One row per message to one recipient, whatever started it.
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        idem_key TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        to_number TEXT NOT NULL,
        name TEXT,
        payload TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        delivery TEXT,
        delivery_error TEXT,
        scheduled INTEGER NOT NULL DEFAULT 0,
        priority INTEGER NOT NULL DEFAULT 0,
        due_at REAL NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        sent_at REAL,
        created_by TEXT,
        user_name TEXT,
        user_tz TEXT,
        source TEXT NOT NULL DEFAULT 'slack',
        channel_id TEXT,
        thread_channel TEXT,
        thread_ts TEXT,
        status_ts TEXT,
        response_url TEXT,
        needs_announce INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        error_kind TEXT,
        lease_owner TEXT,
        lease_until REAL,
        provider_message_id TEXT,
        bulk_job_id INTEGER
    );
    CREATE INDEX messages_due ON messages (status, priority, due_at);
    CREATE INDEX messages_provider_id ON messages (provider_message_id);
    CREATE INDEX messages_to ON messages (to_number, created_at);
    CREATE INDEX messages_bulk ON messages (bulk_job_id, status);
    CREATE INDEX messages_announce ON messages (needs_announce) WHERE needs_announce = 1;
    CREATE INDEX messages_created ON messages (created_at);
    """,
    # 2: delivery events from provider webhooks, deduplicated on (provider, id, status).
    """
    CREATE TABLE delivery_events (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        provider_message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        occurred_at REAL,
        received_at REAL NOT NULL,
        message_id INTEGER,
        UNIQUE (provider, provider_message_id, status)
    );
    CREATE TABLE seen_requests (
        key TEXT PRIMARY KEY,
        seen_at REAL NOT NULL
    );
    """,
    # 3: bulk jobs (their recipients are outbox rows with bulk_job_id) and sender health.
    """
    CREATE TABLE bulk_jobs (
        id INTEGER PRIMARY KEY,
        idem_key TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        status TEXT NOT NULL,
        mode TEXT NOT NULL DEFAULT 'per_recipient',
        text TEXT,
        payload TEXT NOT NULL DEFAULT '{}',
        total INTEGER NOT NULL DEFAULT 0,
        duplicates_removed INTEGER NOT NULL DEFAULT 0,
        invalid_rows INTEGER NOT NULL DEFAULT 0,
        provider_job_ids TEXT NOT NULL DEFAULT '[]',
        due_at REAL,
        created_by TEXT,
        user_tz TEXT,
        channel_id TEXT,
        thread_channel TEXT,
        thread_ts TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX bulk_jobs_status ON bulk_jobs (status);
    CREATE TABLE sender_health (
        sender TEXT PRIMARY KEY,
        state TEXT NOT NULL DEFAULT 'ok',
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        last_error_kind TEXT,
        last_error TEXT,
        alerted_at REAL,
        updated_at REAL NOT NULL
    );
    """,
    # 4: `/sms list` pages by owner and by time without sorting every pending row.
    """
    CREATE INDEX messages_owner_pending ON messages (created_by, status, scheduled, due_at);
    CREATE INDEX messages_scheduled_pending ON messages (status, scheduled, due_at);
    """,
    # 5: "the thread's status line is out of date": set with a delivery change, cleared once
    # chat.update succeeded, so a restart redraws what Slack never got (partial index: few rows).
    """
    ALTER TABLE messages ADD COLUMN status_dirty INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_status_dirty ON messages (status_dirty) WHERE status_dirty = 1;
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; return the version. Safe to call from several processes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        for number, script in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (number,))
            version = number
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version
