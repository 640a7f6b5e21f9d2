"""The store's schema, versioned. Each migration runs once, in order, inside a transaction.

The scripts are written in SQLite's types; `pg_ddl` turns them into PostgreSQL's (64-bit
integers, identity keys, double precision: PostgreSQL's REAL is 4 bytes and would round
timestamps to minutes), so both backends share one list and one version number.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

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
    # 6: what the fleet shares: per-sender send budget and pause (one token bucket row each),
    # leases for work that runs once per fleet, and store-wide facts (e.g. "migrated to").
    """
    CREATE TABLE sender_limits (
        sender TEXT PRIMARY KEY,
        tokens REAL NOT NULL,
        refilled_at REAL NOT NULL,
        paused_until REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE leases (
        role TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 7: conversations (issue 13): one per contact (number, sender) with the Slack thread its
    # replies land in, and every inbound message once (unique per provider and provider id).
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL,
        sender TEXT NOT NULL,
        contact_name TEXT,
        thread_channel TEXT,
        thread_ts TEXT,
        thread_at REAL,
        mention TEXT,
        last_text TEXT,
        last_inbound_at REAL,
        last_whatsapp_at REAL,
        last_outbound_at REAL,
        awaiting_reply INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (number, sender)
    );
    CREATE INDEX conversations_thread ON conversations (thread_channel, thread_ts);
    CREATE INDEX conversations_waiting ON conversations (awaiting_reply, last_inbound_at);
    CREATE TABLE inbound_messages (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        provider_message_id TEXT NOT NULL,
        sender TEXT,
        channel TEXT NOT NULL,
        from_number TEXT NOT NULL,
        to_number TEXT,
        contact_name TEXT,
        text TEXT NOT NULL DEFAULT '',
        media TEXT NOT NULL DEFAULT '[]',
        received_at REAL NOT NULL,
        conversation_id INTEGER,
        slack_channel TEXT,
        slack_ts TEXT,
        posted INTEGER NOT NULL DEFAULT 0,
        posting_owner TEXT,
        posting_until REAL,
        UNIQUE (provider, provider_message_id)
    );
    CREATE INDEX inbound_conversation ON inbound_messages (conversation_id, received_at);
    CREATE INDEX inbound_from ON inbound_messages (from_number, received_at);
    CREATE INDEX inbound_unposted ON inbound_messages (posted) WHERE posted = 0;
    """,
    # 8: consent. The current opt-out state per (number, family: sms | whatsapp), an
    # append-only audit trail of every change, and what the claim checks on each row: its
    # family (NULL: every family's opt-outs apply) and whether it is one of the two texts an
    # opted-out number may get (the opt-out confirmation, the HELP reply).
    """
    CREATE TABLE consent_state (
        number TEXT NOT NULL,
        family TEXT NOT NULL,
        opted_out INTEGER NOT NULL,
        by_recipient INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL,
        reason TEXT,
        actor TEXT,
        changed_at REAL NOT NULL,
        confirmed_at REAL,
        PRIMARY KEY (number, family)
    );
    CREATE INDEX consent_state_out ON consent_state (opted_out, changed_at);
    CREATE TABLE consent_log (
        id INTEGER PRIMARY KEY,
        number TEXT NOT NULL,
        family TEXT NOT NULL,
        action TEXT NOT NULL,
        source TEXT NOT NULL,
        by_recipient INTEGER NOT NULL DEFAULT 0,
        actor TEXT,
        reason TEXT,
        at REAL NOT NULL
    );
    CREATE INDEX consent_log_number ON consent_log (number, id);
    ALTER TABLE messages ADD COLUMN consent_family TEXT;
    ALTER TABLE messages ADD COLUMN consent_exempt INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: notes the inbound hooks leave for a customer's message ("opted out"), a JSON list,
    # kept with the message so whichever process shows it posts them after it; and whether
    # its hooks (consent: STOP) have yet to finish, so a re-delivery runs them again.
    """
    ALTER TABLE inbound_messages ADD COLUMN notes TEXT;
    ALTER TABLE inbound_messages ADD COLUMN hooks_pending INTEGER NOT NULL DEFAULT 0;
    """,
]
LATEST = len(MIGRATIONS)
# Any constant: every process that migrates a PostgreSQL database takes this lock first.
PG_MIGRATION_LOCK = 7_212_450_001


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer smsbot: running an older one against it could corrupt it."""

    def __init__(self, found: int, known: int) -> None:
        self.found, self.known = found, known
        super().__init__(
            f"The database schema is version {found}, but this smsbot only knows versions up to {known}:"
            " upgrade smsbot before starting it against this database."
        )


class _Conn(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


def pg_ddl(script: str) -> str:
    """SQLite DDL as PostgreSQL DDL (the few types that differ)."""
    script = re.sub(r"\bINTEGER PRIMARY KEY\b", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", script)
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)


def migrate(conn: _Conn, dialect: str = "sqlite") -> int:
    """Bring the schema up to date; return the version. Safe to call from several processes.

    SQLite: BEGIN IMMEDIATE serialises migrating processes. PostgreSQL: a transaction-scoped
    advisory lock does (DDL is transactional there, so a failed migration leaves nothing).
    Refuses (SchemaTooNew) a schema newer than this code's.
    """
    conn.execute("BEGIN IMMEDIATE" if dialect == "sqlite" else "BEGIN")
    try:
        if dialect == "postgresql":
            conn.execute("SELECT pg_advisory_xact_lock(?)", (PG_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = row[0] if row else 0
        if version > LATEST:
            raise SchemaTooNew(version, LATEST)
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        for number, script in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            if dialect == "postgresql":
                script = pg_ddl(script)
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
