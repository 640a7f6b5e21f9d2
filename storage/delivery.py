"""Delivery bookkeeping beyond the Store's core API: adopting early events, settling
unknown sends, sender health and the latest failures. Used by bot/delivery.py."""

from __future__ import annotations

import time
from typing import Any

from storage.store import DELIVERY_RANK, MessageRow, Store, Viewer, visible_sql

ALERT_AFTER = 3  # consecutive sender-level failures before one alert
# A message with a thread whose status line delivery draws (bulk rows have the job's message).
_DIRTY_IF_THREAD = "CASE WHEN thread_ts IS NOT NULL AND bulk_job_id IS NULL THEN 1 ELSE status_dirty END"


class DeliveryQueries:
    """The statements delivery needs beyond the Store's core API."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def adopt_orphans(self, row: MessageRow, now: float | None = None) -> tuple[bool, MessageRow | None]:
        """Apply events that arrived before the send knew its provider id (fast providers)."""
        if not row.provider_message_id:
            return False, row
        now = time.time() if now is None else now
        # Read first: the common case (no early event) then costs no write transaction. An
        # event arriving after this read finds the row's provider id (committed) itself.
        if self.store.conn.execute(
            "SELECT 1 FROM delivery_events WHERE provider_message_id = ? AND message_id IS NULL LIMIT 1",
            (row.provider_message_id,),
        ).fetchone() is None:
            return False, row
        with self.store.write() as conn:
            events = conn.execute(
                "SELECT status, error FROM delivery_events WHERE provider_message_id = ? AND message_id IS NULL"
                " ORDER BY id",
                (row.provider_message_id,),
            ).fetchall()
            if not events:
                return False, row
            conn.execute(
                "UPDATE delivery_events SET message_id = ? WHERE provider_message_id = ? AND message_id IS NULL",
                (row.id, row.provider_message_id),
            )
            current = conn.execute(f"SELECT delivery FROM messages WHERE id = ?{self.store.lock_sql}",
                                   (row.id,)).fetchone()[0]
            best, error = current, None
            for ev in events:
                if best is None or DELIVERY_RANK.get(ev["status"], 0) > DELIVERY_RANK.get(best, 0):
                    best, error = ev["status"], ev["error"]
            if best == current:
                return False, row
            conn.execute(
                "UPDATE messages SET delivery = ?, delivery_error = coalesce(?, delivery_error), updated_at = ?,"
                f" status_dirty = {_DIRTY_IF_THREAD} WHERE id = ?",
                (best, error, now, row.id),
            )
        return True, self.store.get(row.id)

    def event_is_ours(self, provider: str, provider_message_id: str, status: str) -> bool:
        """Whether this exact event is on record for one of our messages: an event the store
        refused (apply_delivery_event's (False, None)) was then a replay, not a stranger's."""
        return self.store.conn.execute(
            "SELECT 1 FROM delivery_events WHERE provider = ? AND provider_message_id = ? AND status = ?"
            " AND message_id IS NOT NULL",
            (provider, provider_message_id, status),
        ).fetchone() is not None

    def settle_unknown(self, message_id: int, status: str, *, provider_message_id: str | None = None,
                       delivery: str | None = None, error: str | None = None, now: float | None = None) -> bool:
        """unknown -> sent | failed once the provider told us which. False if it moved meanwhile."""
        now = time.time() if now is None else now
        kind = "reconciled" if status == "sent" else "not_found"
        error = self.store.scrub(error)
        with self.store.write() as conn:
            cur = conn.execute(
                "UPDATE messages SET status = ?, provider_message_id = coalesce(?, provider_message_id),"
                " delivery = coalesce(?, delivery), error = ?, error_kind = ?, updated_at = ?,"
                f" status_dirty = {_DIRTY_IF_THREAD},"
                " sent_at = CASE WHEN ? = 'sent' THEN coalesce(sent_at, updated_at) ELSE sent_at END"
                " WHERE id = ? AND status = 'unknown'",
                (status, provider_message_id, delivery, error, kind, now, status, message_id),
            )
            return cur.rowcount == 1

    def note_unknown(self, message_id: int, error: str) -> bool:
        """Say more about a row that stays unknown (what was checked, what to do).

        Status and `updated_at` are left alone: the row is no more settled than before."""
        with self.store.write() as conn:
            cur = conn.execute(
                "UPDATE messages SET error = ? WHERE id = ? AND status = 'unknown'",
                (error, message_id),
            )
            return cur.rowcount == 1

    def unknown_rows(self, since: float, limit: int = 200) -> list[MessageRow]:
        rows = self.store.conn.execute(
            "SELECT * FROM messages WHERE status = 'unknown' AND created_at >= ? ORDER BY id LIMIT ?",
            (since, limit),
        )
        return [MessageRow.from_db(r) for r in rows]

    def is_known_provider_id(self, provider_message_id: str) -> bool:
        return self.store.by_provider_id(provider_message_id) is not None

    def latest_failures(self, viewer: Viewer, limit: int = 5) -> list[MessageRow]:
        cond, args = visible_sql(viewer)
        rows = self.store.conn.execute(
            f"SELECT * FROM messages WHERE (status IN ('failed', 'unknown') OR delivery = 'failed') AND {cond}"
            " ORDER BY updated_at DESC, id DESC LIMIT ?",
            (*args, limit),
        )
        return [MessageRow.from_db(r) for r in rows]

    # -- "the thread's status line is out of date" (messages.status_dirty)
    #
    # Set in the transaction that changes the state (adopt_orphans, settle_unknown) or right
    # after Store.apply_delivery_event; cleared only once Slack took the redrawn line, and only
    # if the row did not change again meanwhile (updated_at), so a restart redraws the rest.

    def mark_dirty(self, message_id: int) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE messages SET status_dirty = 1 WHERE id = ? AND status_dirty = 0", (message_id,))

    def clear_dirty(self, message_id: int, updated_at: float | None = None) -> None:
        """The line shows the row as of `updated_at` (None: there is nothing to draw)."""
        # Read first: the common case (already clean) then costs no write transaction.
        found = self.store.conn.execute(
            "SELECT status_dirty, updated_at FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        if found is None or not found[0] or (updated_at is not None and found[1] != updated_at):
            return
        sql = "UPDATE messages SET status_dirty = 0 WHERE id = ? AND status_dirty = 1"
        params: list[float] = [message_id]
        if updated_at is not None:
            sql += " AND updated_at = ?"
            params.append(updated_at)
        with self.store.write() as conn:
            conn.execute(sql, params)

    def is_dirty(self, message_id: int) -> bool:
        found = self.store.conn.execute("SELECT status_dirty FROM messages WHERE id = ?", (message_id,)).fetchone()
        return bool(found and found[0])

    def dirty_ids(self, limit: int = 10_000) -> list[int]:
        rows = self.store.conn.execute(
            "SELECT id FROM messages WHERE status_dirty = 1 ORDER BY id LIMIT ?", (limit,)
        )
        return [int(r[0]) for r in rows]

    # -- sender health: one row per sender; the alert goes out on the ok -> alerting edge only

    def health_failure(self, sender: str, kind: str | None, error: str | None,
                       now: float | None = None) -> int | None:
        """Count a sender-level failure. Returns the count when this call raised the alert."""
        now = time.time() if now is None else now
        error = self.store.scrub(error)
        with self.store.write() as conn:
            conn.execute(
                "INSERT INTO sender_health (sender, state, consecutive_failures, last_error_kind, last_error,"
                " updated_at) VALUES (?, 'ok', 1, ?, ?, ?) ON CONFLICT (sender) DO UPDATE SET"
                " consecutive_failures = sender_health.consecutive_failures + 1, last_error_kind = excluded.last_error_kind,"
                " last_error = excluded.last_error, updated_at = excluded.updated_at",
                (sender, kind, error, now),
            )
            cur = conn.execute(
                "UPDATE sender_health SET state = 'alerting', alerted_at = ? WHERE sender = ? AND state = 'ok'"
                " AND consecutive_failures >= ?",
                (now, sender, ALERT_AFTER),
            )
            if cur.rowcount != 1:
                return None
            return int(conn.execute("SELECT consecutive_failures FROM sender_health WHERE sender = ?",
                                    (sender,)).fetchone()[0])

    def health_success(self, sender: str, now: float | None = None) -> bool:
        """A send went through. True when the sender was alerting (time for a recovery notice)."""
        now = time.time() if now is None else now
        # Read first: the common case (healthy sender) then costs no write transaction.
        row = self.store.conn.execute(
            "SELECT state, consecutive_failures FROM sender_health WHERE sender = ?", (sender,)
        ).fetchone()
        if row is None or (row[0] == "ok" and row[1] == 0):
            return False
        with self.store.write() as conn:
            cur = conn.execute(
                "UPDATE sender_health SET state = 'ok', consecutive_failures = 0, updated_at = ?"
                " WHERE sender = ? AND state = 'alerting'",
                (now, sender),
            )
            conn.execute("UPDATE sender_health SET consecutive_failures = 0, updated_at = ? WHERE sender = ?",
                         (now, sender))
            return cur.rowcount == 1

    def health(self, sender: str) -> dict[str, Any] | None:
        row = self.store.conn.execute("SELECT * FROM sender_health WHERE sender = ?", (sender,)).fetchone()
        return dict(row) if row else None


# --------------------------------------------------------------------------- Slack, off the request path
