"""Conversations (issue 13): inbound messages stored once, one conversation per contact.

A conversation is a (number, sender) pair and the Slack thread its messages land in. The
statements here are portable SQL (SQLite and PostgreSQL share them, see storage/store.py).
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from storage.store import Store, Viewer


class Conversation(BaseModel):
    id: int
    number: str
    sender: str
    contact_name: str | None = None
    thread_channel: str | None = None
    thread_ts: str | None = None
    thread_at: float | None = None
    mention: str | None = None
    last_text: str | None = None
    last_inbound_at: float | None = None
    last_whatsapp_at: float | None = None
    last_outbound_at: float | None = None
    awaiting_reply: bool = False
    created_at: float
    updated_at: float


class NewInbound(BaseModel):
    """An inbound message as the core hands it to the store."""

    provider: str
    provider_message_id: str
    sender: str | None = None
    channel: str
    from_number: str
    to_number: str | None = None
    contact_name: str | None = None
    text: str = ""
    media: list[dict[str, Any]] = Field(default_factory=list)
    received_at: float


class InboundRow(NewInbound):
    """A stored inbound message: what came in, and where and whether it was shown."""

    id: int
    conversation_id: int | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    posted: bool = False
    posting_owner: str | None = None
    posting_until: float | None = None
    notes: list[str] = Field(default_factory=list)  # for the thread, after the message
    hooks_pending: bool = False  # its hooks have not all run yet: a re-delivery runs them

    @classmethod
    def from_db(cls, row: Any) -> InboundRow:
        data = dict(row)
        data["media"] = json.loads(data.get("media") or "[]")
        data["notes"] = json.loads(data.get("notes") or "[]")
        return cls.model_validate(data)


class SendThread(BaseModel):
    """The thread of the latest send to a contact (existing sends count for conversations)."""

    channel: str
    ts: str
    created_by: str | None = None
    created_at: float


class ThreadUpdate(NamedTuple):
    """A conversation's thread from now on (`at`: when that thread was made or adopted)."""

    conversation_id: int
    channel: str
    ts: str
    at: float
    mention: str | None = None


def _conversation(row: Any) -> Conversation | None:
    return Conversation.model_validate(dict(row)) if row else None


class ConversationQueries:
    """The statements conversations need; takes the Store like storage/delivery.py."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- inbound messages

    def add_inbound(self, new: NewInbound) -> tuple[InboundRow, bool]:
        """Store an inbound message once: (row, created); a re-delivery returns the stored row."""
        with self.store.write() as conn:
            return self._insert_inbound(conn, new)

    def _insert_inbound(self, conn: Any, new: NewInbound) -> tuple[InboundRow, bool]:
        data = new.model_dump()
        data["media"] = json.dumps(data["media"], separators=(",", ":"))
        data["text"] = self.store.scrub(data["text"]) or ""
        cur = conn.execute(f"INSERT OR IGNORE INTO inbound_messages ({', '.join(data)}) VALUES"
                           f" ({', '.join('?' for _ in data)})", tuple(data.values()))
        row = conn.execute("SELECT * FROM inbound_messages WHERE provider = ? AND provider_message_id = ?",
                           (new.provider, new.provider_message_id)).fetchone()
        return InboundRow.from_db(row), bool(cur.rowcount)

    def ingest(self, new: NewInbound, sender: str, *, summary: str, now: float | None = None
               ) -> tuple[InboundRow, Conversation | None]:
        """One transaction: the message stored once, its conversation opened or updated, the two
        linked, its hooks pending. (row, None) for a re-delivery, which changes nothing, unless
        the first delivery's hooks did not all finish: then (row, its conversation) again."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            row, created = self._insert_inbound(conn, new)
            if not created:
                pending = row.hooks_pending and row.conversation_id is not None
                return row, self._get(conn, row.conversation_id) if pending else None
            conv = self._upsert_on_inbound(conn, new.from_number, sender, name=new.contact_name, text=summary,
                                           at=new.received_at, whatsapp=new.channel == "whatsapp", now=now)
            conn.execute("UPDATE inbound_messages SET conversation_id = ?, hooks_pending = 1 WHERE id = ?",
                         (conv.id, row.id))
        return row.model_copy(update={"conversation_id": conv.id, "hooks_pending": True}), conv

    def hooks_done(self, inbound_id: int) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE inbound_messages SET hooks_pending = 0 WHERE id = ?", (inbound_id,))

    @staticmethod
    def _get(conn: Any, conversation_id: int | None) -> Conversation | None:
        return _conversation(conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone())

    def inbound(self, inbound_id: int) -> InboundRow | None:
        row = self.store.conn.execute("SELECT * FROM inbound_messages WHERE id = ?", (inbound_id,)).fetchone()
        return InboundRow.from_db(row) if row else None

    def link_inbound(self, inbound_id: int, conversation_id: int) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE inbound_messages SET conversation_id = ? WHERE id = ?", (conversation_id, inbound_id))

    def mark_posted(self, inbound_id: int, channel: str | None, ts: str | None,
                    thread: ThreadUpdate | None = None) -> None:
        """Shown in Slack (or nowhere to show it: posted with no ts, listed by /sms inbox); with
        `thread`, the conversation's thread changes in the same transaction."""
        with self.store.write() as conn:
            conn.execute("UPDATE inbound_messages SET posted = 1, slack_channel = ?, slack_ts = ?,"
                         " posting_until = NULL WHERE id = ?", (channel, ts, inbound_id))
            if thread is not None:
                self._set_thread(conn, thread)

    def add_note(self, inbound_id: int, text: str) -> None:
        """A note to post in the message's thread right after it (whichever process shows it)."""
        with self.store.write() as conn:
            row = conn.execute(f"SELECT notes FROM inbound_messages WHERE id = ?{self.store.lock_sql}",
                               (inbound_id,)).fetchone()
            notes = json.loads(row["notes"] or "[]") if row is not None else []
            if row is not None and text not in notes:  # hooks run again after a failure: once
                notes = [*notes, text]
                conn.execute("UPDATE inbound_messages SET notes = ? WHERE id = ?", (json.dumps(notes), inbound_id))

    def release_post(self, inbound_id: int, owner: str) -> None:
        """Slack refused the post: the claim goes (a fallback, or another process, may post it)."""
        with self.store.write() as conn:
            conn.execute("UPDATE inbound_messages SET posting_owner = NULL, posting_until = NULL"
                         " WHERE id = ? AND posting_owner = ?", (inbound_id, owner))

    def claim_post(self, inbound_id: int, owner: str, lease: float, now: float | None = None) -> str | None:
        """Claim showing a message, once across processes (one write): "fresh", or "retry" when an
        earlier claim by another process ran out (it may have posted: look before posting
        again); None when it is posted or another process holds it."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            row = conn.execute("SELECT posted, posting_owner, posting_until FROM inbound_messages WHERE id = ?"
                               f"{self.store.lock_sql}", (inbound_id,)).fetchone()
            if row is None or row[0] or (row[2] is not None and row[2] > now and row[1] != owner):
                return None
            conn.execute("UPDATE inbound_messages SET posting_owner = ?, posting_until = ? WHERE id = ?",
                         (owner, now + lease, inbound_id))
        return "retry" if row[2] is not None and row[1] != owner else "fresh"

    def unposted(self, limit: int = 500) -> list[InboundRow]:
        rows = self.store.conn.execute(
            "SELECT * FROM inbound_messages WHERE posted = 0 AND conversation_id IS NOT NULL ORDER BY id LIMIT ?",
            (limit,))
        return [InboundRow.from_db(r) for r in rows]

    def inbound_from(self, number: str, viewer: Viewer, limit: int = 20) -> list[InboundRow]:
        cond, args = conversation_visible_sql(viewer, "c")
        rows = self.store.conn.execute(
            "SELECT i.* FROM inbound_messages i LEFT JOIN conversations c ON c.id = i.conversation_id"
            f" WHERE i.from_number = ? AND {cond} ORDER BY i.received_at DESC, i.id DESC LIMIT ?",
            (number, *args, limit))
        return [InboundRow.from_db(r) for r in rows]

    def last_channel(self, conversation_id: int) -> str | None:
        """The channel (sms / whatsapp) of the customer's latest message in a conversation."""
        row = self.store.conn.execute("SELECT channel FROM inbound_messages WHERE conversation_id = ?"
                                      " ORDER BY received_at DESC, id DESC LIMIT 1", (conversation_id,)).fetchone()
        return str(row[0]) if row else None

    def all_inbound(self, since: float = 0.0, viewer: Viewer | None = None) -> list[InboundRow]:
        cond, args = conversation_visible_sql(viewer or Viewer.operator(), "c")
        rows = self.store.conn.execute(
            "SELECT i.* FROM inbound_messages i LEFT JOIN conversations c ON c.id = i.conversation_id"
            f" WHERE i.received_at >= ? AND {cond} ORDER BY i.id", (since, *args))
        return [InboundRow.from_db(r) for r in rows]

    # -- conversations

    def get(self, conversation_id: int) -> Conversation | None:
        return _conversation(self.store.conn.execute("SELECT * FROM conversations WHERE id = ?",
                                                     (conversation_id,)).fetchone())

    def find(self, number: str, sender: str) -> Conversation | None:
        return _conversation(self.store.conn.execute(
            "SELECT * FROM conversations WHERE number = ? AND sender = ?", (number, sender)).fetchone())

    def with_number(self, number: str) -> list[Conversation]:
        rows = self.store.conn.execute("SELECT * FROM conversations WHERE number = ? ORDER BY id", (number,))
        return [c for r in rows.fetchall() if (c := _conversation(r)) is not None]

    def by_thread(self, channel: str, thread_ts: str) -> Conversation | None:
        return _conversation(self.store.conn.execute(
            "SELECT * FROM conversations WHERE thread_channel = ? AND thread_ts = ? ORDER BY updated_at DESC LIMIT 1",
            (channel, thread_ts)).fetchone())

    def on_inbound(self, number: str, sender: str, *, name: str | None, text: str, at: float,
                   whatsapp: bool, now: float | None = None) -> Conversation:
        """Open or update the contact's conversation for a customer's message: it waits for an answer."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            return self._upsert_on_inbound(conn, number, sender, name=name, text=text, at=at, whatsapp=whatsapp,
                                           now=now)

    def _upsert_on_inbound(self, conn: Any, number: str, sender: str, *, name: str | None, text: str, at: float,
                           whatsapp: bool, now: float) -> Conversation:
        wa = at if whatsapp else None
        conn.execute(
            "INSERT INTO conversations (number, sender, contact_name, last_text, last_inbound_at,"
            " last_whatsapp_at, awaiting_reply, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
            " ON CONFLICT (number, sender) DO UPDATE SET"
            " contact_name = coalesce(excluded.contact_name, conversations.contact_name),"
            " last_text = excluded.last_text, awaiting_reply = 1, updated_at = excluded.updated_at,"
            " last_inbound_at = CASE WHEN conversations.last_inbound_at IS NULL"
            "   OR excluded.last_inbound_at > conversations.last_inbound_at"
            "   THEN excluded.last_inbound_at ELSE conversations.last_inbound_at END,"
            " last_whatsapp_at = CASE WHEN excluded.last_whatsapp_at IS NOT NULL AND"
            "   (conversations.last_whatsapp_at IS NULL OR excluded.last_whatsapp_at > conversations.last_whatsapp_at)"
            "   THEN excluded.last_whatsapp_at ELSE conversations.last_whatsapp_at END",
            (number, sender, name, text[:500], at, wa, now, now))
        found = _conversation(conn.execute("SELECT * FROM conversations WHERE number = ? AND sender = ?",
                                           (number, sender)).fetchone())
        assert found is not None
        return found

    def set_thread(self, conversation_id: int, channel: str, ts: str, at: float, mention: str | None = None) -> None:
        with self.store.write() as conn:
            self._set_thread(conn, ThreadUpdate(conversation_id, channel, ts, at, mention))

    @staticmethod
    def _set_thread(conn: Any, t: ThreadUpdate) -> None:
        conn.execute("UPDATE conversations SET thread_channel = ?, thread_ts = ?, thread_at = ?,"
                     " mention = coalesce(?, mention), updated_at = ? WHERE id = ?",
                     (t.channel, t.ts, t.at, t.mention, time.time(), t.conversation_id))

    def answered(self, number: str, sender: str, by: str | None = None, now: float | None = None) -> bool:
        """A send to the contact went out: nobody needs to answer any more. False: no conversation."""
        now = time.time() if now is None else now
        # Most sends (a bulk job's) have no conversation: a read, not a write transaction each.
        if self.store.conn.execute("SELECT 1 FROM conversations WHERE number = ? AND sender = ?",
                                   (number, sender)).fetchone() is None:
            return False
        with self.store.write() as conn:
            cur = conn.execute("UPDATE conversations SET awaiting_reply = 0, last_outbound_at = ?,"
                               " mention = coalesce(?, mention) WHERE number = ? AND sender = ?",
                               (now, by, number, sender))
            return bool(cur.rowcount)

    def waiting(self, viewer: Viewer, limit: int = 20) -> list[Conversation]:
        cond, args = conversation_visible_sql(viewer, "c")
        rows = self.store.conn.execute(
            f"SELECT c.* FROM conversations c WHERE c.awaiting_reply = 1 AND {cond}"
            " ORDER BY c.last_inbound_at DESC, c.id DESC LIMIT ?", (*args, limit))
        return [Conversation.model_validate(dict(r)) for r in rows]

    def last_whatsapp(self, number: str, sender: str) -> float | None:
        row = self.store.conn.execute("SELECT last_whatsapp_at FROM conversations WHERE number = ? AND sender = ?",
                                      (number, sender)).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def latest_send_thread(self, number: str, sender: str) -> SendThread | None:
        """The newest outbox row with a thread to this contact (sends made before conversations existed count)."""
        row = self.store.conn.execute(
            "SELECT thread_channel, thread_ts, created_by, created_at FROM messages WHERE to_number = ?"
            " AND sender = ? AND thread_ts IS NOT NULL AND thread_channel IS NOT NULL AND bulk_job_id IS NULL"
            " ORDER BY created_at DESC, id DESC LIMIT 1", (number, sender)).fetchone()
        if row is None:
            return None
        return SendThread(channel=row[0], ts=row[1], created_by=row[2], created_at=float(row[3]))


def conversation_visible_sql(viewer: Viewer, alias: str) -> tuple[str, list[Any]]:
    """Who sees a conversation: everyone who sees all; others theirs (mentioned, or they texted the number)."""
    if viewer.sees_all:
        return "(1 = 1)", []
    if viewer.user_id:
        return (f"({alias}.mention = ? OR EXISTS (SELECT 1 FROM messages m WHERE m.to_number = {alias}.number"
                " AND m.created_by = ?))", [viewer.user_id, viewer.user_id])
    return "(1 = 0)", []
