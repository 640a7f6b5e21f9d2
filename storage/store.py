"""The store: the outbox of messages, delivery events and request de-duplication.

Two backends, one class: SQLite (WAL mode, one connection per thread; claims use
`BEGIN IMMEDIATE` so two workers, threads or processes, never take the same row) and
PostgreSQL (storage/pg.py: a pool; claims use `FOR UPDATE SKIP LOCKED`). The SQL is
written once, in SQLite's dialect; `self.lock_sql`/`self.skip_locked` are the only
per-dialect pieces in the queries. Open one with `storage.open_store(url)`.

A row moves: pending -> claimed -> sending -> sent | failed | unknown, or pending ->
canceled | missed. `claimed` means a worker holds it but has not called the provider yet
(safe to give back); `sending` is written *before* the provider call, so a crash there
leaves a row that may have gone out: it becomes `unknown`, never re-sent.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import sqlite_utils
from pydantic import BaseModel

from storage.consent import STOPPED_KIND, stop_opted_out
from storage.schema import SchemaTooNew, migrate

__all__ = ["SchemaTooNew", "Store"]

Status = Literal[
    "pending", "claimed", "sending", "sent", "failed", "unknown", "canceled", "missed",
    "draft", "queued", "paused", "waiting",  # bulk rows, see storage/bulk.py
]
MAX_ID = 2**63 - 1  # SQLite's largest integer
FINAL = ("sent", "failed", "unknown", "canceled", "missed")

# Webhook events name the API (one Sociocs key serves three senders); a message matches an
# event only when its sender belongs to that API, so one provider cannot touch another's.
SENDERS_BY_FAMILY: dict[str, tuple[str, ...]] = {"sociocs": ("twlo", "twlowa", "gswa")}


def family_senders(provider: str) -> tuple[str, ...]:
    return SENDERS_BY_FAMILY.get(provider, (provider,))


# Delivery states only move forward: a late "sent" never replaces "delivered".
# A total order (docs/architecture.md, "Which delivery state wins"): the stored state is the
# highest-ranked one ever reported, so arrival order and duplicates never matter. delivered
# outranks failed: a receipt proves the message arrived, and showing "failed" would invite a
# duplicate resend to the customer.
DELIVERY_RANK = {"unknown": 0, "scheduled": 1, "accepted": 2, "sent": 3, "failed": 4, "delivered": 5, "read": 6}


#: a sender's shared limit as the claim takes it: (rate/s, burst) or (rate/s, burst, ahead s)
Limit = tuple[float, int] | tuple[float, int, float]


class MessageRow(BaseModel):
    id: int
    idem_key: str
    sender: str
    to_number: str
    name: str | None = None
    payload: dict[str, Any]
    summary: str = ""
    status: Status
    delivery: str | None = None
    delivery_error: str | None = None
    scheduled: bool = False
    priority: int = 0
    due_at: float
    created_at: float
    updated_at: float
    sent_at: float | None = None
    created_by: str | None = None
    user_name: str | None = None
    user_tz: str | None = None
    source: str = "slack"
    channel_id: str | None = None
    thread_channel: str | None = None
    thread_ts: str | None = None
    status_ts: str | None = None
    response_url: str | None = None
    needs_announce: bool = False
    attempts: int = 0
    error: str | None = None
    error_kind: str | None = None
    lease_owner: str | None = None
    lease_until: float | None = None
    provider_message_id: str | None = None
    bulk_job_id: int | None = None
    consent_family: str | None = None  # sms | whatsapp; None: every family's opt-outs apply
    consent_exempt: bool = False  # the opt-out confirmation or the HELP reply
    #: not stored: this row's reserved slot of its sender's shared limit, on the database's
    #: clock (`slot_at`), and how long after the grant that is (`slot_delay`; 0: at once)
    slot_at: float = 0.0
    slot_delay: float = 0.0

    @classmethod
    def from_db(cls, row: sqlite3.Row | dict[str, Any]) -> MessageRow:
        data = dict(row)
        data["payload"] = json.loads(data["payload"])
        return cls.model_validate(data)


class NewMessage(BaseModel):
    """What a listener or the CLI hands the store: validated, normalised, ready to send."""

    idem_key: str
    sender: str
    to_number: str
    name: str | None = None
    payload: dict[str, Any]
    summary: str = ""
    scheduled: bool = False
    priority: int = 0
    due_at: float
    created_by: str | None = None
    user_name: str | None = None
    user_tz: str | None = None
    source: str = "slack"
    channel_id: str | None = None
    response_url: str | None = None
    needs_announce: bool = True
    bulk_job_id: int | None = None
    # Set when the send belongs to an existing thread (a reply in a conversation's thread).
    thread_channel: str | None = None
    thread_ts: str | None = None
    consent_family: str | None = None  # sms | whatsapp (bot.core.consent.rules); None: all apply
    consent_exempt: bool = False  # the opt-out confirmation or the HELP reply only


class Viewer(BaseModel):
    """Who is reading: a person (user_id) who may or may not see everyone's messages.

    Who sees everyone's is decided in bot/visibility.py (SMS_BULK_USERS); the operator's
    CLI reads as `Viewer.operator()`. The filter itself is `visible_sql` below.
    """

    user_id: str | None = None
    sees_all: bool = False

    @classmethod
    def operator(cls) -> Viewer:
        return cls(user_id=None, sees_all=True)


# Never confirmed: a bulk draft's rows (also once the draft was discarded).
_UNCONFIRMED = ("(status = 'draft' OR (bulk_job_id IS NOT NULL AND bulk_job_id IN"
                " (SELECT id FROM bulk_jobs WHERE status = 'discarded')))")


def visible_sql(viewer: Viewer) -> tuple[str, list[Any]]:
    """The one visibility rule, as a WHERE condition over `messages`.

    People see the messages they created; a viewer who sees all sees everyone's, except
    unconfirmed bulk drafts, which only their author ever sees.
    """
    if viewer.sees_all and viewer.user_id:
        return f"(NOT {_UNCONFIRMED} OR created_by = ?)", [viewer.user_id]
    if viewer.sees_all:
        return f"(NOT {_UNCONFIRMED})", []
    if viewer.user_id:
        return "(created_by = ?)", [viewer.user_id]
    return "(1 = 0)", []


class Transition(BaseModel):
    """The answer to cancel/edit: did it happen, and if not, the row's status."""

    ok: bool
    status: str | None = None  # None: no such row
    row: MessageRow | None = None


_DUE_EVENTS: dict[str, threading.Event] = {}



def _use_wal(conn: sqlite3.Connection, tries: int = 100) -> None:
    """Switch a new database file to WAL. SQLite answers "database is locked" at once (the busy
    handler is not consulted) when several processes create the file together and one of them
    holds a write lock: wait for it rather than failing start-up. WAL then stays on the file."""
    for attempt in range(tries):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.05)

class Store:
    dialect = "sqlite"

    def __init__(self, path: str = "smsbot.db") -> None:
        self.path = path
        self._local = threading.local()
        self._memory_conn: sqlite3.Connection | None = None
        # Writers of one process queue here instead of in SQLite's busy handler, which sleeps
        # in growing steps (up to 100 ms) whenever another connection holds the write lock.
        self._write_lock = threading.RLock()
        self._init_common()
        if path == ":memory:":
            # One shared connection: a memory database is private to its connection.
            self._memory_conn = self._connect()
            self._memory_lock = threading.RLock()
        migrate(self.conn)

    def _init_common(self) -> None:
        # Provider text (errors, delivery reports) can echo our credentials; every write of it
        # passes through scrub(), so nothing read back (Slack, /sms status, export) holds one.
        self.redactor: Callable[[str], str] | None = None
        # SQLite's wake-up: in-process only (other processes find due rows by polling);
        # shared by every Store of this process on the same file.
        self._due = _DUE_EVENTS.setdefault(self.path, threading.Event())
        self._migrated_to: str | None = None

    @property
    def lock_sql(self) -> str:
        """Appended to a SELECT whose rows the transaction goes on to change (PostgreSQL)."""
        return "" if self.dialect == "sqlite" else " FOR UPDATE"

    @property
    def skip_locked(self) -> str:
        """Appended to a claim's SELECT: rows another worker holds are skipped, not waited for."""
        return "" if self.dialect == "sqlite" else " FOR UPDATE SKIP LOCKED"

    def schema_version(self) -> int:
        return int(self.conn.execute("SELECT version FROM schema_version").fetchone()[0])

    def ping(self) -> bool:
        """The database answers (health checks)."""
        return bool(self.conn.execute("SELECT 1").fetchone()[0] == 1)

    def scrub(self, text: str | None) -> str | None:
        """Provider text on its way into the store, with every configured secret removed."""
        return text if text is None or self.redactor is None else self.redactor(text)

    # -- connections

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=self.path != ":memory:"
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        if self.path != ":memory:":
            _use_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        if self._memory_conn is not None:
            return self._memory_conn
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._connect()
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        return sqlite_utils.Database(self.conn)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front (no SQLITE_BUSY mid-way)."""
        lock = self._memory_lock if self._memory_conn is not None else self._write_lock
        lock.acquire()
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            lock.release()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._memory_conn is not None:
            self._memory_conn.close()

    # -- writing requests

    def enqueue(self, msg: NewMessage, now: float | None = None) -> tuple[int, bool]:
        """Store a send request; returns (id, created). A repeated idem_key creates nothing."""
        now = time.time() if now is None else now
        return self.enqueue_many([msg], now)[0]

    def enqueue_many(self, msgs: Sequence[NewMessage], now: float | None = None) -> list[tuple[int, bool]]:
        now = time.time() if now is None else now
        out: list[tuple[int, bool]] = []
        with self.write() as conn:
            self._notify(conn)
            for msg in msgs:
                data = msg.model_dump()
                data["payload"] = json.dumps(data["payload"], separators=(",", ":"))
                data.update(status="pending", created_at=now, updated_at=now)
                cols = ", ".join(data)
                marks = ", ".join("?" for _ in data)
                cur = conn.execute(
                    f"INSERT OR IGNORE INTO messages ({cols}) VALUES ({marks})", tuple(data.values())
                )
                if cur.rowcount:
                    out.append((int(cur.lastrowid or 0), True))
                else:
                    existing = conn.execute(
                        "SELECT id FROM messages WHERE idem_key = ?", (msg.idem_key,)
                    ).fetchone()
                    out.append((int(existing[0]), False))
        return out

    # -- reading

    def get(self, message_id: int) -> MessageRow | None:
        if not 0 < message_id <= MAX_ID:
            return None  # typed ids can be anything; SQLite integers stop at 2**63 - 1
        row = self.conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return MessageRow.from_db(row) if row else None

    def visible(self, message_id: int, viewer: Viewer) -> MessageRow | None:
        """One row by id, only if `viewer` may see it (else None, as if it did not exist)."""
        if not 0 < message_id <= MAX_ID:
            return None
        cond, args = visible_sql(viewer)
        row = self.conn.execute(f"SELECT * FROM messages WHERE id = ? AND {cond}", (message_id, *args)).fetchone()
        return MessageRow.from_db(row) if row else None

    def by_provider_id(self, provider_message_id: str, viewer: Viewer | None = None) -> MessageRow | None:
        """The row with this provider id; with a viewer, only one they may see."""
        cond, args = visible_sql(viewer) if viewer is not None else ("1 = 1", [])
        row = self.conn.execute(
            f"SELECT * FROM messages WHERE provider_message_id = ? AND {cond} ORDER BY id DESC LIMIT 1",
            (provider_message_id, *args),
        ).fetchone()
        return MessageRow.from_db(row) if row else None

    @staticmethod
    def _pending_where(created_by: str | None, scheduled_only: bool) -> tuple[str, list[Any]]:
        sql = "WHERE status = 'pending'"
        args: list[Any] = []
        if scheduled_only:
            sql += " AND scheduled = 1"
        if created_by:
            sql += " AND created_by = ?"
            args.append(created_by)
        return sql, args

    def pending(
        self, created_by: str | None = None, limit: int = 50, offset: int = 0, scheduled_only: bool = True
    ) -> list[MessageRow]:
        where, args = self._pending_where(created_by, scheduled_only)
        rows = self.conn.execute(f"SELECT * FROM messages {where} ORDER BY due_at, id LIMIT ? OFFSET ?",
                                 [*args, limit, offset])
        return [MessageRow.from_db(r) for r in rows]

    def count_pending(self, created_by: str | None = None, scheduled_only: bool = True) -> int:
        where, args = self._pending_where(created_by, scheduled_only)
        return int(self.conn.execute(f"SELECT count(*) FROM messages {where}", args).fetchone()[0])

    def history(self, to_number: str, viewer: Viewer, limit: int = 20) -> list[MessageRow]:
        """The messages to one number that `viewer` may see, newest first."""
        cond, args = visible_sql(viewer)
        rows = self.conn.execute(
            f"SELECT * FROM messages WHERE to_number = ? AND {cond} ORDER BY created_at DESC, id DESC LIMIT ?",
            (to_number, *args, limit),
        )
        return [MessageRow.from_db(r) for r in rows]

    def since(self, since: float, viewer: Viewer | None = None) -> Iterator[MessageRow]:
        """Rows created since `since`; with a viewer, only those they may see."""
        cond, args = visible_sql(viewer) if viewer is not None else ("1 = 1", [])
        for r in self.conn.execute(f"SELECT * FROM messages WHERE created_at >= ? AND {cond} ORDER BY id",
                                   (since, *args)):
            yield MessageRow.from_db(r)

    def next_due_at(self) -> float | None:
        """The earliest time a pending row falls due (index seek on (status, priority, due_at)).

        ORDER BY ... LIMIT 1, not min(): PostgreSQL's planner, before its statistics know a
        freshly filled table, aggregated min() over every pending row (10 ms at 20,000)."""
        row = self.conn.execute(
            "SELECT min(due_at) FROM ("
            " SELECT (SELECT due_at FROM messages WHERE status = 'pending' AND priority = 0"
            " ORDER BY due_at LIMIT 1) AS due_at"
            " UNION ALL"
            " SELECT (SELECT due_at FROM messages WHERE status = 'pending' AND priority = 1"
            " ORDER BY due_at LIMIT 1)) AS due"
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def needing_announcement(self, limit: int = 20) -> list[MessageRow]:
        rows = self.conn.execute(
            "SELECT * FROM messages WHERE needs_announce = 1 AND status = 'pending' ORDER BY id LIMIT ?",
            (limit,),
        )
        return [MessageRow.from_db(r) for r in rows]

    # -- the worker's side

    def claim_due(
        self,
        owner: str,
        now: float | None = None,
        limit: int = 10,
        lease: float = 60.0,
        misfire_grace: float | None = None,
        skip_senders: Sequence[str] = (),
    ) -> tuple[list[MessageRow], list[MessageRow]]:
        """Claim up to `limit` due rows. Returns (claimed, missed).

        Scheduled rows whose time passed more than `misfire_grace` ago are not sent but
        marked `missed`, so people decide (after downtime, a stale message can do harm).
        A store whose rows were copied elsewhere (`migrated_to`) claims nothing.
        """
        now = time.time() if now is None else now
        claimed: list[MessageRow] = []
        with self.write() as conn:
            if self._is_migrated(conn):
                return [], []
            rows, missed = self._due_rows(conn, now, limit, misfire_grace, skip_senders)
            for r in rows:
                conn.execute(
                    "UPDATE messages SET status = 'claimed', lease_owner = ?, lease_until = ?, updated_at = ?"
                    " WHERE id = ?",
                    (owner, now + lease, now, r["id"]),
                )
                m = MessageRow.from_db(r)
                claimed.append(m.model_copy(update={"status": "claimed", "lease_owner": owner}))
        return claimed, missed

    def _due_rows(
        self, conn: Any, now: float, limit: int, misfire_grace: float | None, skip_senders: Sequence[str],
        sweep: bool = True,
    ) -> tuple[list[Any], list[MessageRow]]:
        """Inside a claim: marks past-grace schedules missed (unless `sweep` is False: they are
        left out of the claim all the same); returns (due rows, missed rows)."""
        missed: list[MessageRow] = []
        if misfire_grace is not None and sweep:
            rows = conn.execute(
                "SELECT * FROM messages WHERE status = 'pending' AND priority = 0 AND scheduled = 1"
                f" AND due_at < ? ORDER BY due_at LIMIT 100{self.skip_locked}",
                (now - misfire_grace,),
            ).fetchall()
            for r in rows:
                conn.execute(
                    "UPDATE messages SET status = 'missed', updated_at = ? WHERE id = ?", (now, r["id"])
                )
                m = MessageRow.from_db(r)
                missed.append(m.model_copy(update={"status": "missed"}))
        skip = tuple(skip_senders)
        skip_sql = f" AND sender NOT IN ({','.join('?' for _ in skip)})" if skip else ""
        # Past-grace schedules the sweep above has not reached yet (it takes 100 a pass)
        # must wait for it, never go out late.
        stale_sql = ""
        stale: tuple[float, ...] = ()
        if misfire_grace is not None:
            stale_sql, stale = " AND NOT (scheduled = 1 AND due_at < ?)", (now - misfire_grace,)
        # Single messages (priority 0) first, then bulk rows: two index seeks.
        rows = []
        for priority in (0, 1):
            if len(rows) >= limit:
                break
            rows += conn.execute(
                f"SELECT * FROM messages WHERE status = 'pending' AND priority = {priority} AND due_at <= ?"
                f"{skip_sql}{stale_sql} ORDER BY due_at LIMIT ?{self.skip_locked}",
                (now, *skip, *stale, limit - len(rows)),
            ).fetchall()
        return rows, missed

    def claim_one(self, message_id: int, owner: str, now: float | None = None, lease: float = 60.0) -> MessageRow | None:
        """Claim one pending row by id (the CLI sends its own message, nothing else)."""
        now = time.time() if now is None else now
        with self.write() as conn:
            if self._is_migrated(conn):
                return None
            cur = conn.execute(
                "UPDATE messages SET status = 'claimed', lease_owner = ?, lease_until = ?, updated_at = ?"
                " WHERE id = ? AND status = 'pending'",
                (owner, now + lease, now, message_id),
            )
            if cur.rowcount != 1:
                return None
        return self.get(message_id)

    def mark_sending(self, message_id: int, owner: str, now: float | None = None, lease: float = 120.0) -> bool:
        """Commit, before the provider call, that this row may go out. False: not ours any more."""
        now = time.time() if now is None else now
        with self.write() as conn:
            if self._is_migrated(conn):
                return False
            if self._stopped_by_consent(conn, message_id, owner, now):
                return False
            cur = conn.execute(
                "UPDATE messages SET status = 'sending', lease_until = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ? AND status = 'claimed' AND lease_owner = ?",
                (now + lease, now, message_id, owner),
            )
            return cur.rowcount == 1

    def record_outcome(
        self,
        message_id: int,
        status: Literal["sent", "failed", "unknown"],
        *,
        provider_message_id: str | None = None,
        delivery: str | None = None,
        error: str | None = None,
        error_kind: str | None = None,
        now: float | None = None,
    ) -> MessageRow | None:
        now = time.time() if now is None else now
        error = self.scrub(error)
        with self.write() as conn:
            conn.execute(
                "UPDATE messages SET status = ?, provider_message_id = coalesce(?, provider_message_id),"
                " delivery = coalesce(delivery, ?), error = ?, error_kind = ?, updated_at = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END, lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND status IN ('claimed', 'sending')",
                (status, provider_message_id, delivery, error, error_kind, now, status, now, message_id),
            )
        return self.get(message_id)

    def release(
        self, message_id: int, due_at: float, error: str | None = None, error_kind: str | None = None,
        now: float | None = None,
    ) -> None:
        """Give a row back for a later try: only for failures that certainly sent nothing."""
        now = time.time() if now is None else now
        error = self.scrub(error)
        with self.write() as conn:
            conn.execute(
                "UPDATE messages SET status = 'pending', due_at = ?, error = ?, error_kind = ?,"
                " lease_owner = NULL, lease_until = NULL, updated_at = ?"
                " WHERE id = ? AND status IN ('claimed', 'sending')",
                (due_at, error, error_kind, now, message_id),
            )
            self._notify(conn)

    def unclaim(self, message_ids: Sequence[int], owner: str) -> None:
        """Hand back rows a worker claimed but never started (e.g. shutting down)."""
        with self.write() as conn:
            for mid in message_ids:
                conn.execute(
                    "UPDATE messages SET status = 'pending', lease_owner = NULL, lease_until = NULL"
                    " WHERE id = ? AND status = 'claimed' AND lease_owner = ?",
                    (mid, owner),
                )

    def unclaim_owner(self, owner: str) -> int:
        """Give back every row this worker claimed but never started (a graceful stop)."""
        with self.write() as conn:
            return conn.execute(
                "UPDATE messages SET status = 'pending', lease_owner = NULL, lease_until = NULL"
                " WHERE status = 'claimed' AND lease_owner = ?",
                (owner,),
            ).rowcount

    def reap_expired(self, now: float | None = None) -> list[MessageRow]:
        """Leases that ran out: `claimed` goes back to pending, `sending` becomes unknown.

        Returns the rows that became unknown, so people can be told.
        """
        now = time.time() if now is None else now
        with self.write() as conn:
            conn.execute(
                "UPDATE messages SET status = 'pending', lease_owner = NULL, lease_until = NULL, updated_at = ?"
                " WHERE status = 'claimed' AND lease_until < ?",
                (now, now),
            )
            # SKIP LOCKED: two reapers never both report (and announce) the same row.
            rows = conn.execute(
                f"SELECT * FROM messages WHERE status = 'sending' AND lease_until < ?{self.skip_locked}", (now,)
            ).fetchall()
            for r in rows:
                conn.execute(
                    "UPDATE messages SET status = 'unknown', error_kind = 'unknown', error = ?,"
                    " lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND status = 'sending'",
                    ("The worker stopped while sending; the message may or may not have gone out.", now, r["id"]),
                )
        return [MessageRow.from_db(r).model_copy(update={"status": "unknown"}) for r in rows]

    def recover_owner(self, owner_prefix: str, now: float | None = None) -> list[MessageRow]:
        """At start-up, rows left by a dead process of ours need no lease wait."""
        now = time.time() if now is None else now
        with self.write() as conn:
            conn.execute(
                "UPDATE messages SET lease_until = ? WHERE status IN ('claimed', 'sending') AND lease_owner LIKE ?",
                (now - 1, owner_prefix + "%"),
            )
        return self.reap_expired(now)

    def sending_ids(self, owner: str) -> list[int]:
        """Rows this worker is sending right now (a graceful stop that ran out of time)."""
        rows = self.conn.execute(
            "SELECT id FROM messages WHERE status = 'sending' AND lease_owner = ?", (owner,)
        ).fetchall()
        return [int(r[0]) for r in rows]

    # -- the fleet's claim: rows go straight to `sending`, as many as the shared limits allow

    def claim_sending(
        self, owner: str, *, limit: int, lease: float, misfire_grace: float | None = None,
        limit_of: Callable[[str], Limit | None] = lambda sender: None, now: float | None = None,
        sweep_missed: bool = True,
    ) -> tuple[list[MessageRow], list[MessageRow], float | None]:
        """Claim due rows and mark them `sending` in one transaction, per sender only as many as
        its shared token bucket (`limit_of(sender)` = (rate/s, burst[, ahead s]); None: no
        limit) lets go now, or within `ahead` seconds: such a row is only `claimed`, its
        `slot_delay` says when it may become `sending` (the fleet's slots are spaced 1/rate
        apart, so no worker waits on another's claim).

        Returns (sending rows, missed rows, retry_in): retry_in is set when a limit held rows
        back (try again then). Paused senders' rows are not even looked at. `sweep_missed`
        False skips marking past-grace schedules missed this time (never claims them).
        """
        now = time.time() if now is None else now
        with self.write() as conn:
            if self._is_migrated(conn):
                return [], [], None
            clock_sql, clock_args = self._clock_sql()
            paused = [str(r[0]) for r in conn.execute(
                f"SELECT sender FROM sender_limits WHERE paused_until > {clock_sql}", clock_args).fetchall()]
            rows, missed = self._due_rows(conn, now, limit, misfire_grace, paused, sweep_missed)
            rows = self._consent_check(conn, rows, now, missed)
            grants, retry_in = self._grants(conn, rows, limit_of)
            taken: list[tuple[Any, tuple[float, float]]] = []
            for r in rows:
                if grants[r["sender"]]:
                    taken.append((r, grants[r["sender"]].pop(0)))
            # A row whose slot is later is only `claimed`: a crash while it waits gives it back
            # to pending; it becomes `sending` (mark_sending) when its slot comes.
            now_ids = [r["id"] for r, (_, delay) in taken if delay <= 0]
            later_ids = [r["id"] for r, (_, delay) in taken if delay > 0]
            for status, ids, bump in (("sending", now_ids, 1), ("claimed", later_ids, 0)):
                if ids:
                    conn.execute(
                        f"UPDATE messages SET status = '{status}', lease_owner = ?, lease_until = ?,"
                        f" attempts = attempts + {bump}, updated_at = ? WHERE id IN ({','.join('?' for _ in ids)})",
                        (owner, now + lease, now, *ids),
                    )
        sending = []
        for r, (slot_at, delay) in taken:
            m = MessageRow.from_db(r)
            now_row = delay <= 0
            sending.append(m.model_copy(update={
                "status": "sending" if now_row else "claimed", "lease_owner": owner,
                "attempts": m.attempts + 1 if now_row else m.attempts, "slot_at": slot_at, "slot_delay": delay}))
        return sending, missed, retry_in

    # -- consent at claim time (storage/consent.py): the last check before a provider call

    def _consent_check(self, conn: Any, rows: list[Any], now: float, out: list[MessageRow]) -> list[Any]:
        """Rows whose number is opted out become `failed` ("opted out on ... via ...") in this
        claim's transaction and are appended to `out` (failed, not missed); returns the rest."""
        kept, stopped = stop_opted_out(conn, rows, now)
        for r in rows:
            if int(r["id"]) in stopped:
                out.append(MessageRow.from_db(r).model_copy(update={
                    "status": "failed", "error": stopped[int(r["id"])], "error_kind": STOPPED_KIND,
                    "lease_owner": None, "lease_until": None, "updated_at": now}))
        return kept

    def _stopped_by_consent(self, conn: Any, message_id: int, owner: str, now: float) -> bool:
        """claim_one's row (the CLI): stopped here, in mark_sending's transaction, if opted out."""
        row = conn.execute(
            "SELECT id, to_number, consent_family, consent_exempt FROM messages WHERE id = ? AND status = 'claimed'"
            " AND lease_owner = ?", (message_id, owner)).fetchone()
        return row is not None and bool(stop_opted_out(conn, [row], now)[1])

    def _grants(
        self, conn: Any, rows: Sequence[Any], limit_of: Callable[[str], Limit | None]
    ) -> tuple[dict[str, list[tuple[float, float]]], float | None]:
        """Per sender, the slots granted, (database time, delay), one per row that may go; and
        when to claim again."""
        wanted: dict[str, int] = {}
        for r in rows:
            wanted[r["sender"]] = wanted.get(r["sender"], 0) + 1
        grants: dict[str, list[tuple[float, float]]] = {}
        retry_in: float | None = None
        for sender, want in wanted.items():
            lim = limit_of(sender)
            if lim is None:
                grants[sender] = [(0.0, 0.0)] * want
                continue
            rate, burst, ahead = (*lim, 0.0)[:3]
            granted, at, before = self._bucket(conn, sender, want, rate, burst, None, ahead)
            # The i-th slot is due once the bucket holds i + 1 tokens again.
            delays = [max(0.0, (i + 1 - before) / rate) for i in range(granted)]
            grants[sender] = [(at + d, d) for d in delays]
            if granted < want:  # come back when half the reserved window has gone by
                wait = max(1.0 / max(rate, 1e-9), (granted + 1 - before) / rate - ahead / 2)
                retry_in = wait if retry_in is None else min(retry_in, wait)
        return grants, retry_in

    def unsend(self, message_ids: Sequence[int], owner: str) -> int:
        """Rows claimed into `sending` whose call certainly never started (a stop, a pause) go
        back to pending; the attempt the claim counted is taken back."""
        if not message_ids:
            return 0
        with self.write() as conn:
            count = conn.execute(
                "UPDATE messages SET status = 'pending', attempts = attempts - 1, lease_owner = NULL,"
                f" lease_until = NULL WHERE id IN ({','.join('?' for _ in message_ids)})"
                " AND status = 'sending' AND lease_owner = ?",
                (*message_ids, owner),
            ).rowcount
            self._notify(conn)
        return int(count)

    def record_outcomes(self, outcomes: Sequence[dict[str, Any]], now: float | None = None) -> list[MessageRow | None]:
        """Many record_outcome calls in one transaction (a group commit); rows in the same order.

        Each dict: message_id, status, and optionally provider_message_id, delivery, error, error_kind.
        """
        now = time.time() if now is None else now
        params = [(o["status"], o.get("provider_message_id"), o.get("delivery"), self.scrub(o.get("error")),
                   o.get("error_kind"), now, o["status"], now, o["message_id"]) for o in outcomes]
        ids = [o["message_id"] for o in outcomes]
        # Two statements whatever the group's size, and rows parsed after the commit: the
        # write lock is held for as little Python as possible (sender threads wait on it).
        with self.write() as conn:
            conn.executemany(
                "UPDATE messages SET status = ?, provider_message_id = coalesce(?, provider_message_id),"
                " delivery = coalesce(delivery, ?), error = ?, error_kind = ?, updated_at = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END, lease_owner = NULL,"
                " lease_until = NULL WHERE id = ? AND status IN ('claimed', 'sending')",
                params,
            )
            # What is stored now: the outcome, or what a reaper made of a row no longer ours.
            stored = conn.execute(
                f"SELECT * FROM messages WHERE id IN ({','.join('?' for _ in ids)})", ids).fetchall() if ids else []
        by_id = {r["id"]: r for r in stored}
        return [MessageRow.from_db(by_id[i]) if i in by_id else None for i in ids]

    # -- Slack bookkeeping

    def set_thread(self, message_id: int, thread_channel: str, thread_ts: str, status_ts: str | None = None) -> None:
        with self.write() as conn:
            conn.execute(
                "UPDATE messages SET thread_channel = ?, thread_ts = ?, status_ts = coalesce(?, status_ts),"
                " needs_announce = 0 WHERE id = ?",
                (thread_channel, thread_ts, status_ts, message_id),
            )

    def set_announce_done(self, message_id: int) -> None:
        with self.write() as conn:
            conn.execute("UPDATE messages SET needs_announce = 0 WHERE id = ?", (message_id,))

    # -- people's actions

    def cancel(self, message_id: int, now: float | None = None) -> Transition:
        if not 0 < message_id <= MAX_ID:
            return Transition(ok=False)
        now = time.time() if now is None else now
        with self.write() as conn:
            cur = conn.execute(
                "UPDATE messages SET status = 'canceled', updated_at = ?"
                " WHERE id = ? AND status IN ('pending', 'missed')",
                (now, message_id),
            )
            ok = cur.rowcount == 1
        row = self.get(message_id)
        return Transition(ok=ok, status=row.status if row else None, row=row)

    def edit(
        self,
        message_id: int,
        *,
        due_at: float | None = None,
        to_number: str | None = None,
        payload: dict[str, Any] | None = None,
        summary: str | None = None,
        name: str | None = None,
        now: float | None = None,
    ) -> Transition:
        """Change a pending row; refused (ok=False) once a worker has claimed it."""
        if not 0 < message_id <= MAX_ID:
            return Transition(ok=False)
        now = time.time() if now is None else now
        sets = ["updated_at = ?"]
        args: list[Any] = [now]
        for col, value in (("due_at", due_at), ("to_number", to_number), ("summary", summary), ("name", name)):
            if value is not None:
                sets.append(f"{col} = ?")
                args.append(value)
        if payload is not None:
            sets.append("payload = ?")
            args.append(json.dumps(payload, separators=(",", ":")))
        with self.write() as conn:
            cur = conn.execute(
                f"UPDATE messages SET {', '.join(sets)} WHERE id = ? AND status = 'pending'",
                (*args, message_id),
            )
            ok = cur.rowcount == 1
        row = self.get(message_id)
        return Transition(ok=ok, status=row.status if row else None, row=row)

    def send_missed_now(self, message_id: int, now: float | None = None) -> Transition:
        """A person chose "Send now" for a missed schedule."""
        if not 0 < message_id <= MAX_ID:
            return Transition(ok=False)
        now = time.time() if now is None else now
        with self.write() as conn:
            cur = conn.execute(
                "UPDATE messages SET status = 'pending', due_at = ?, updated_at = ? WHERE id = ? AND status = 'missed'",
                (now, now, message_id),
            )
            ok = cur.rowcount == 1
            self._notify(conn)
        row = self.get(message_id)
        return Transition(ok=ok, status=row.status if row else None, row=row)

    # -- de-duplication of Slack deliveries and similar

    def seen(self, key: str) -> bool:
        """Whether `first_time(key)` was called before (without recording anything)."""
        return self.conn.execute("SELECT 1 FROM seen_requests WHERE key = ?", (key,)).fetchone() is not None

    def first_time(self, key: str, now: float | None = None) -> bool:
        """True the first time `key` is seen (Slack retries, webhook re-deliveries)."""
        now = time.time() if now is None else now
        with self.write() as conn:
            cur = conn.execute("INSERT OR IGNORE INTO seen_requests (key, seen_at) VALUES (?, ?)", (key, now))
            return cur.rowcount == 1

    # -- delivery events

    def apply_delivery_event(
        self,
        provider: str,
        provider_message_id: str,
        status: str,
        error: str | None = None,
        occurred_at: float | None = None,
        now: float | None = None,
    ) -> tuple[bool, MessageRow | None]:
        """Record an event once; move the message's delivery state forward only.

        Returns (changed, row): changed is False for duplicates, stale events and unknown ids.
        """
        now = time.time() if now is None else now
        error = self.scrub(error)
        with self.write() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO delivery_events (provider, provider_message_id, status, error,"
                " occurred_at, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (provider, provider_message_id, status, error, occurred_at, now),
            )
            if cur.rowcount == 0:
                return False, None
            senders = family_senders(provider)
            # Locked: two events for one message at once must not both compare to the old state.
            row = conn.execute(
                "SELECT * FROM messages WHERE provider_message_id = ?"
                f" AND sender IN ({','.join('?' for _ in senders)}) ORDER BY id DESC LIMIT 1{self.lock_sql}",
                (provider_message_id, *senders),
            ).fetchone()
            if row is None:
                return False, None
            conn.execute(
                "UPDATE delivery_events SET message_id = ? WHERE provider = ? AND provider_message_id = ?"
                " AND status = ?",
                (row["id"], provider, provider_message_id, status),
            )
            current = row["delivery"]
            if current is not None and DELIVERY_RANK.get(status, 0) <= DELIVERY_RANK.get(current, 0):
                return False, MessageRow.from_db(row)
            # status_dirty in the same transaction: a crash before Slack shows the new state
            # leaves the flag, and the next start redraws the thread's status line.
            conn.execute(
                "UPDATE messages SET delivery = ?, delivery_error = coalesce(?, delivery_error), updated_at = ?,"
                " status_dirty = CASE WHEN thread_ts IS NOT NULL AND bulk_job_id IS NULL THEN 1 ELSE status_dirty END"
                " WHERE id = ?",
                (status, error, now, row["id"]),
            )
            updated = conn.execute("SELECT * FROM messages WHERE id = ?", (row["id"],)).fetchone()
        return True, MessageRow.from_db(updated)

    # -- figures

    def counts_by_status(self, bulk_job_id: int | None = None) -> dict[str, int]:
        if bulk_job_id is None:
            rows = self.conn.execute("SELECT status, count(*) FROM messages GROUP BY status")
        else:
            rows = self.conn.execute(
                "SELECT status, count(*) FROM messages WHERE bulk_job_id = ? GROUP BY status", (bulk_job_id,)
            )
        return {r[0]: r[1] for r in rows}

    # -- wake-ups: a due row written anywhere wakes waiting workers (SQLite: this process only)

    def _notify(self, conn: Any) -> None:
        """Inside a transaction that made a row due (PostgreSQL: NOTIFY, sent on commit)."""
        self._due.set()

    def notify_due(self) -> None:
        self._due.set()

    def listen(self) -> None:
        """Start listening for wake-ups (PostgreSQL: LISTEN; nothing to do on SQLite)."""

    def wait_for_due(self, timeout: float) -> bool:
        """Block until a due row was written (True) or `timeout` passed (False: poll anyway).

        On SQLite only this process's writes wake it; other processes are found by polling.
        """
        if self._due.wait(timeout):
            self._due.clear()
            return True
        return False

    # -- fleet-wide state: the database's clock, so machines with skewed clocks agree

    def _clock_sql(self) -> tuple[str, tuple[float, ...]]:
        """The database's clock inside a statement (no round trip of its own on PostgreSQL)."""
        if self.dialect == "sqlite":
            return "?", (time.time(),)
        return "extract(epoch FROM clock_timestamp())::float8", ()

    def clock(self, conn: Any | None = None) -> float:
        if self.dialect == "sqlite":
            return time.time()
        row = (conn or self.conn).execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        return float(row[0])

    def take_send_slots(
        self, sender: str, want: int, rate_per_s: float, burst: int, now: float | None = None
    ) -> int:
        """Take up to `want` sends for `sender` from its shared token bucket; returns how many.

        One row per sender, read and written in one locked transaction, so every process and
        thread shares the limit: in any one-second window at most `rate_per_s` + `burst` go.
        A paused sender (429 seen anywhere) gets nothing.
        """
        return self.take_send_slots_at(sender, want, rate_per_s, burst, now)[0]

    def take_send_slots_at(
        self, sender: str, want: int, rate_per_s: float, burst: int, now: float | None = None
    ) -> tuple[int, float]:
        """take_send_slots, and the bucket's time of the grant (pacing, and proving the limit)."""
        with self.write() as conn:
            return self._take_slots(conn, sender, want, rate_per_s, burst, now)

    def _take_slots(
        self, conn: Any, sender: str, want: int, rate_per_s: float, burst: int, now: float | None = None
    ) -> tuple[int, float]:
        """take_send_slots_at inside the caller's transaction."""
        granted, at, _ = self._bucket(conn, sender, want, rate_per_s, burst, now)
        return granted, at

    def _bucket(
        self, conn: Any, sender: str, want: int, rate_per_s: float, burst: int, now: float | None = None,
        ahead: float = 0.0,
    ) -> tuple[int, float, float]:
        """Take up to `want` tokens, or slots up to `ahead` seconds from now (the bucket then
        goes below zero: whoever comes next waits for it to refill). Returns (granted, the
        bucket's time, tokens before the grant)."""
        burst = max(1, burst)
        clock_sql, clock_args = self._clock_sql() if now is None else ("?", (now,))
        # The clock comes with the locked row (one round trip). Read before the lock was
        # granted it can only be earlier: fewer tokens, never more; max() keeps grant times
        # ordered like the grants.
        select = (f"SELECT tokens, refilled_at, paused_until, {clock_sql} AS clock FROM sender_limits"
                  f" WHERE sender = ?{self.lock_sql}")
        # The sender's row exists once made: no INSERT statement per claim after that.
        row = conn.execute(select, (*clock_args, sender)).fetchone()
        if row is None:
            conn.execute(
                "INSERT OR IGNORE INTO sender_limits (sender, tokens, refilled_at) VALUES (?, ?, -1)",
                (sender, float(burst)),
            )
            row = conn.execute(select, (*clock_args, sender)).fetchone()
        at = max(float(row["clock"]), row["refilled_at"])
        if row["paused_until"] > at or want <= 0:
            return 0, at, 0.0
        elapsed = at - row["refilled_at"] if row["refilled_at"] >= 0 else float(burst) / max(rate_per_s, 1e-9)
        tokens = min(float(burst), row["tokens"] + elapsed * rate_per_s)
        granted = max(0, min(want, math.floor(tokens + ahead * rate_per_s)))
        conn.execute(
            "UPDATE sender_limits SET tokens = ?, refilled_at = ? WHERE sender = ?",
            (tokens - granted, at, sender),
        )
        return granted, at, tokens

    def pause_sender(self, sender: str, until: float) -> None:
        """Every process stops sending for `sender` until `until` (a later pause never shortens)."""
        with self.write() as conn:
            conn.execute(
                "INSERT INTO sender_limits (sender, tokens, refilled_at, paused_until) VALUES (?, 0, -1, ?)"
                " ON CONFLICT (sender) DO UPDATE SET paused_until = CASE WHEN excluded.paused_until >"
                " sender_limits.paused_until THEN excluded.paused_until ELSE sender_limits.paused_until END",
                (sender, until),
            )

    def sender_paused_until(self, sender: str, now: float | None = None) -> float | None:
        """When the sender's pause ends, or None when it is not paused."""
        row = self.conn.execute("SELECT paused_until FROM sender_limits WHERE sender = ?", (sender,)).fetchone()
        now = self.clock() if now is None else now
        return float(row[0]) if row is not None and row[0] > now else None

    def try_lead(self, role: str, owner: str, ttl: float, now: float | None = None) -> bool:
        """Take or renew the lease on `role` (work that runs once per fleet). True: `owner` leads.

        A leader renews well within `ttl`; when it dies, another takes over once `ttl` ran out.
        """
        with self.write() as conn:
            now = self.clock(conn) if now is None else now
            cur = conn.execute(
                "INSERT INTO leases (role, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (role) DO UPDATE"
                " SET owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE leases.owner = excluded.owner OR leases.expires_at < ?",
                (role, owner, now + ttl, now),
            )
            return cur.rowcount == 1

    def resign(self, role: str, owner: str) -> None:
        """Give the lease up now (a graceful stop): the next candidate need not wait for the ttl."""
        with self.write() as conn:
            conn.execute("DELETE FROM leases WHERE role = ? AND owner = ?", (role, owner))

    def leader(self, role: str, now: float | None = None) -> str | None:
        row = self.conn.execute("SELECT owner, expires_at FROM leases WHERE role = ?", (role,)).fetchone()
        now = self.clock() if now is None else now
        return str(row[0]) if row is not None and row[1] >= now else None

    # -- a store whose rows were copied to another (storage.copy_store) sends nothing

    def _is_migrated(self, conn: Any) -> bool:
        if self._migrated_to is None:
            row = conn.execute("SELECT value FROM meta WHERE key = 'migrated_to'").fetchone()
            self._migrated_to = str(row[0]) if row else None
        return self._migrated_to is not None

    @property
    def migrated_to(self) -> str | None:
        """Where this store's rows went (URL without password), if `smsbot migrate` copied them."""
        self._is_migrated(self.conn)
        return self._migrated_to

    def mark_migrated(self, to_url: str) -> None:
        with self.write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('migrated_to', ?) ON CONFLICT (key) DO UPDATE"
                " SET value = excluded.value",
                (to_url,),
            )
        self._migrated_to = to_url
