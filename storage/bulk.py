"""SQL for bulk jobs, over a `storage.store.Store` (same connections, same write lock).

A job lives in `bulk_jobs`; each recipient is an outbox row in `messages` with its
`bulk_job_id`. Row statuses beyond the outbox's own:

- `draft`:  parsed and shown in the confirmation view, not confirmed (no worker claims it);
- `queued`: confirmed, waiting for a provider-side bulk batch (the batch runner takes it,
  the dispatcher never does: `claim_due` only takes `pending`);
- `paused`: taken out of `pending`/`queued` by Pause; Resume puts it back;
- `waiting`: confirmed for a later time (send later); at the job's due time the engine
  releases them to `pending`/`queued`, or, when that time is older than the misfire grace
  (smsbot was down), marks them `missed` and the job `missed` (Send now / Cancel).

Job statuses: draft -> confirming -> running <-> paused -> finishing -> done; Cancel moves
running/paused/missed to canceling, which also ends in finishing -> done. A scheduled job
found past its grace becomes `missed` until someone picks Send now (-> running) or Cancel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from storage.consent import stop_opted_out
from storage.store import Store

# Rows that may still be sent (or are being sent): a job with any is not finished.
ACTIVE = ("pending", "claimed", "sending", "queued", "paused", "waiting")
ACTIVE_SQL = "('pending', 'claimed', 'sending', 'queued', 'paused', 'waiting')"
LIVE_JOBS = ("running", "paused", "canceling")


class DraftRow(NamedTuple):
    """One recipient of a draft, already rendered (a tuple: 100,000 of them stay cheap)."""

    to: str
    name: str | None
    payload: str  # OutboundMessage JSON
    summary: str
    due_at: float | None = None  # later than the job's: held for the recipient's quiet hours


class NewBulkJob(BaseModel):
    idem_key: str
    sender: str
    mode: str = "per_recipient"  # or "provider_bulk" (Sociocs POST /messages/bulk)
    text: str
    plan: dict[str, Any] = Field(default_factory=dict)  # what the confirmation view showed
    total: int = 0
    duplicates_removed: int = 0
    invalid_rows: int = 0
    due_at: float | None = None
    created_by: str | None = None
    user_name: str | None = None
    user_tz: str | None = None
    channel_id: str | None = None
    source: str = "slack"
    consent_family: str | None = None  # sms | whatsapp: whose opt-outs the claim checks (None: all)


class BulkJob(BaseModel):
    id: int
    idem_key: str
    sender: str
    status: str
    mode: str
    text: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    total: int = 0
    duplicates_removed: int = 0
    invalid_rows: int = 0
    provider_job_ids: list[str] = Field(default_factory=list)
    due_at: float | None = None
    created_by: str | None = None
    user_tz: str | None = None
    channel_id: str | None = None
    thread_channel: str | None = None
    thread_ts: str | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None

    @classmethod
    def from_db(cls, row: Any) -> BulkJob:
        data = dict(row)
        data["payload"] = json.loads(data.get("payload") or "{}")
        data["provider_job_ids"] = json.loads(data.get("provider_job_ids") or "[]")
        return cls.model_validate(data)

    @property
    def plan(self) -> dict[str, Any]:
        return dict(self.payload.get("plan") or {})

    @property
    def allow_duplicates(self) -> bool:
        return bool(self.plan.get("allow_duplicates"))


class BatchRow(NamedTuple):
    id: int
    to: str
    name: str | None


class FailureRow(NamedTuple):
    id: int
    to: str
    name: str | None
    status: str
    error: str | None


def _target(job: Any, now: float) -> str:
    """Where a job's rows go when released: `waiting` until a later due time, else sendable."""
    if job["due_at"] is not None and job["due_at"] > now + 1:
        return "waiting"
    return "queued" if job["mode"] == "provider_bulk" else "pending"


class BulkStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- drafts

    def create_draft(
        self, job: NewBulkJob, rows: Iterable[DraftRow], now: float | None = None
    ) -> tuple[int, bool]:
        """Store a draft job and its recipients in one transaction; (job id, created).

        `rows` may be an iterator (the draft's spool): executemany pulls one row at a time,
        so 100,000 rows are never a list here. A repeated idem_key (Slack retrying the same
        submission) creates nothing and reads no row.
        """
        now = time.time() if now is None else now
        due = job.due_at if job.due_at is not None else now
        # scheduled stays 0 even for a later job: its rows are not single scheduled messages
        # (`/sms list`, missed-schedule handling); the job's due_at alone holds them back.
        scheduled = 0
        payload = json.dumps({"plan": job.plan, "user_name": job.user_name, "source": job.source})
        with self.store.write() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO bulk_jobs (idem_key, sender, status, mode, text, payload, total,"
                " duplicates_removed, invalid_rows, due_at, created_by, user_tz, channel_id, created_at, updated_at)"
                " VALUES (?, ?, 'draft', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.idem_key, job.sender, job.mode, job.text, payload, job.total, job.duplicates_removed,
                 job.invalid_rows, job.due_at, job.created_by, job.user_tz, job.channel_id, now, now),
            )
            if not cur.rowcount:
                existing = conn.execute("SELECT id FROM bulk_jobs WHERE idem_key = ?", (job.idem_key,)).fetchone()
                return int(existing[0]), False
            job_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO messages (idem_key, sender, to_number, name, payload, summary, status, scheduled,"
                " priority, due_at, created_at, updated_at, created_by, user_name, user_tz, source, channel_id,"
                " needs_announce, bulk_job_id, consent_family)"
                " VALUES (?, ?, ?, ?, ?, ?, 'draft', ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    (f"bulk:{job_id}:{n}", job.sender, r.to, r.name, r.payload, r.summary, scheduled,
                     max(due, r.due_at or due), now, now, job.created_by, job.user_name, job.user_tz, job.source,
                     job.channel_id, job_id, job.consent_family)
                    for n, r in enumerate(rows)
                ),
            )
        return job_id, True

    def draft_rows(self, job_id: int) -> list[tuple[int, str, float]]:
        """(id, number, due_at) of a draft's rows (quiet hours judged again at confirmation)."""
        rows = self.store.conn.execute(
            "SELECT id, to_number, due_at FROM messages WHERE bulk_job_id = ? AND status = 'draft' ORDER BY id",
            (job_id,)).fetchall()
        return [(int(r[0]), str(r[1]), float(r[2])) for r in rows]

    def hold_rows(self, holds: Sequence[tuple[float, int]]) -> None:
        """Move draft rows' due times later: (due_at, id) pairs."""
        with self.store.write() as conn:
            conn.executemany("UPDATE messages SET due_at = ? WHERE id = ? AND status = 'draft' AND due_at < ?",
                             [(due, mid, due) for due, mid in holds])

    def discard_stale_drafts(self, older_than: float = 86400.0, now: float | None = None) -> int:
        """Drafts nobody confirmed (the modal was closed): their rows would only take space."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM bulk_jobs WHERE status = 'draft' AND created_at < ?", (now - older_than,)
            )]
            for job_id in ids:
                conn.execute("DELETE FROM messages WHERE bulk_job_id = ? AND status = 'draft'", (job_id,))
                conn.execute("UPDATE bulk_jobs SET status = 'discarded', updated_at = ? WHERE id = ?", (now, job_id))
        return len(ids)

    # -- reading

    def get(self, job_id: int) -> BulkJob | None:
        row = self.store.conn.execute("SELECT * FROM bulk_jobs WHERE id = ?", (job_id,)).fetchone()
        return BulkJob.from_db(row) if row else None

    def live_jobs(self) -> list[BulkJob]:
        rows = self.store.conn.execute(
            f"SELECT * FROM bulk_jobs WHERE status IN {tuple(LIVE_JOBS)!r} ORDER BY id"
        ).fetchall()
        return [BulkJob.from_db(r) for r in rows]

    def counts(self, job_id: int, now: float | None = None) -> dict[str, int]:
        """Rows per status, plus consent's figures under keys starting with "_": rows the claim
        stopped as opted out (within "failed"), rows held for quiet hours and until when."""
        now = time.time() if now is None else now
        counts = self.store.counts_by_status(job_id)
        if counts.get("failed"):
            counts["_opted_out"] = int(self.store.conn.execute(
                "SELECT count(*) FROM messages WHERE bulk_job_id = ? AND status = 'failed' AND error_kind = 'opted_out'",
                (job_id,)).fetchone()[0])
        held = self.store.conn.execute(
            "SELECT count(*), max(due_at) FROM messages WHERE bulk_job_id = ? AND status IN ('pending', 'queued')"
            " AND due_at > ?", (job_id, now + 1)).fetchone()
        if held and held[0]:
            counts["_quiet_waiting"], counts["_quiet_until"] = int(held[0]), int(held[1])
        return counts

    def failures(self, job_id: int) -> Iterator[FailureRow]:
        """Every recipient that did not certainly get the message, in list order."""
        rows = self.store.conn.execute(
            "SELECT id, to_number, name, status, error FROM messages WHERE bulk_job_id = ?"
            " AND status IN ('failed', 'unknown', 'missed') ORDER BY id",
            (job_id,),
        )
        for r in rows:
            yield FailureRow(int(r[0]), str(r[1]), r[2], str(r[3]), r[4])

    # -- confirming

    def begin_confirm(self, job_id: int, now: float | None = None) -> bool:
        """draft -> confirming, once: a double click or a Slack retry confirms nothing twice."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            cur = conn.execute(
                "UPDATE bulk_jobs SET status = 'confirming', updated_at = ? WHERE id = ? AND status = 'draft'",
                (now, job_id),
            )
            return cur.rowcount == 1

    def activate(
        self, job_id: int, thread_channel: str | None = None, thread_ts: str | None = None,
        now: float | None = None,
    ) -> int:
        """Confirmed: the rows become sendable, all in one transaction. Returns rows released."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            job = conn.execute(f"SELECT mode, status, due_at FROM bulk_jobs WHERE id = ?{self.store.lock_sql}",
                               (job_id,)).fetchone()
            if job is None or job["status"] not in ("draft", "confirming"):
                return 0
            # A later job's rows wait for the engine (`release_due`): it checks the grace first.
            target = _target(job, now)
            cur = conn.execute(
                "UPDATE messages SET status = ?, updated_at = ? WHERE bulk_job_id = ? AND status = 'draft'",
                (target, now, job_id),
            )
            self.store._notify(conn)
            conn.execute(
                "UPDATE bulk_jobs SET status = 'running', thread_channel = ?, thread_ts = ?, updated_at = ?"
                " WHERE id = ?",
                (thread_channel, thread_ts, now, job_id),
            )
            return cur.rowcount

    def abandon_confirm(self, job_id: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.store.write() as conn:
            conn.execute(
                "UPDATE bulk_jobs SET status = 'draft', updated_at = ? WHERE id = ? AND status = 'confirming'",
                (now, job_id),
            )

    def set_thread(self, job_id: int, channel: str, ts: str) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE bulk_jobs SET thread_channel = ?, thread_ts = ? WHERE id = ?", (channel, ts, job_id))

    # -- people's controls

    def cancel(self, job_id: int, now: float | None = None) -> int:
        """Nothing not yet handed to a provider goes out. Returns rows canceled."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            cur = conn.execute(
                "UPDATE messages SET status = 'canceled', updated_at = ? WHERE bulk_job_id = ?"
                " AND status IN ('pending', 'claimed', 'queued', 'paused', 'draft', 'waiting', 'missed')",
                (now, job_id),
            )
            conn.execute(
                "UPDATE bulk_jobs SET status = CASE WHEN status = 'draft' THEN 'discarded' ELSE 'canceling' END,"
                " updated_at = ? WHERE id = ? AND status IN ('draft', 'running', 'paused', 'missed')",
                (now, job_id),
            )
            return cur.rowcount

    def pause(self, job_id: int, now: float | None = None) -> int:
        # `claimed` rows are not sent yet: the worker's mark_sending only takes `claimed`.
        now = time.time() if now is None else now
        with self.store.write() as conn:
            job = conn.execute(f"SELECT status FROM bulk_jobs WHERE id = ?{self.store.lock_sql}",
                               (job_id,)).fetchone()
            if job is None or job["status"] not in ("running", "paused"):
                return 0
            cur = conn.execute(
                "UPDATE messages SET status = 'paused', updated_at = ? WHERE bulk_job_id = ?"
                " AND status IN ('pending', 'claimed', 'queued', 'waiting')",
                (now, job_id),
            )
            conn.execute("UPDATE bulk_jobs SET status = 'paused', updated_at = ? WHERE id = ?", (now, job_id))
            return cur.rowcount

    def repause(self, job_id: int, now: float | None = None) -> int:
        """Take rows a retry put back in `pending` out again, only while the job is still paused.

        The job's own status is never changed here: a Resume that landed after the caller
        read the job list wins (this transaction sees it and does nothing).
        """
        now = time.time() if now is None else now
        with self.store.write() as conn:
            job = conn.execute(f"SELECT status FROM bulk_jobs WHERE id = ?{self.store.lock_sql}",
                               (job_id,)).fetchone()
            if job is None or job["status"] != "paused":
                return 0
            cur = conn.execute(
                "UPDATE messages SET status = 'paused', updated_at = ? WHERE bulk_job_id = ?"
                " AND status IN ('pending', 'claimed', 'queued')",
                (now, job_id),
            )
            return cur.rowcount

    def recancel(self, job_id: int, now: float | None = None) -> int:
        """Cancel rows a retry put back, only while the job is canceling (its status untouched)."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            job = conn.execute(f"SELECT status FROM bulk_jobs WHERE id = ?{self.store.lock_sql}",
                               (job_id,)).fetchone()
            if job is None or job["status"] != "canceling":
                return 0
            cur = conn.execute(
                "UPDATE messages SET status = 'canceled', updated_at = ? WHERE bulk_job_id = ?"
                " AND status IN ('pending', 'claimed', 'queued', 'paused', 'waiting')",
                (now, job_id),
            )
            return cur.rowcount

    def resume(self, job_id: int, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self.store.write() as conn:
            job = conn.execute(f"SELECT status, mode, due_at FROM bulk_jobs WHERE id = ?{self.store.lock_sql}",
                               (job_id,)).fetchone()
            if job is None or job["status"] != "paused":
                return 0
            target = _target(job, now)
            cur = conn.execute(
                "UPDATE messages SET status = ?, updated_at = ? WHERE bulk_job_id = ? AND status = 'paused'",
                (target, now, job_id),
            )
            conn.execute("UPDATE bulk_jobs SET status = 'running', updated_at = ? WHERE id = ?", (now, job_id))
            self.store._notify(conn)
            return cur.rowcount

    # -- scheduled jobs: their due time, the misfire grace, Send now

    def next_waiting_due(self) -> float | None:
        row = self.store.conn.execute("SELECT min(due_at) FROM messages WHERE status = 'waiting'").fetchone()
        return row[0] if row and row[0] is not None else None

    def release_due(self, grace: float, now: float | None = None) -> tuple[list[int], list[int]]:
        """Jobs whose time came: (released, missed) job ids, each decided in one transaction.

        A job whose due time is more than `grace` ago (smsbot was down) sends nothing: its
        waiting rows become `missed` and the job `missed`, so a person decides. Only the
        caller that moved a job gets its id (the prompt is posted once).
        """
        now = time.time() if now is None else now
        released: list[int] = []
        missed: list[int] = []
        with self.store.write() as conn:
            jobs = conn.execute(
                "SELECT id, mode, status, due_at FROM bulk_jobs WHERE status = 'running' AND id IN"
                " (SELECT DISTINCT bulk_job_id FROM messages WHERE status = 'waiting' AND due_at <= ?)"
                f"{self.store.skip_locked}",
                (now,),
            ).fetchall()
            for job in jobs:
                due = job["due_at"]
                if due is None:
                    due = conn.execute("SELECT min(due_at) FROM messages WHERE bulk_job_id = ? AND status = 'waiting'",
                                       (job["id"],)).fetchone()[0]
                if due is not None and due < now - grace:
                    conn.execute(
                        "UPDATE messages SET status = 'missed', updated_at = ? WHERE bulk_job_id = ?"
                        " AND status = 'waiting'",
                        (now, job["id"]),
                    )
                    conn.execute("UPDATE bulk_jobs SET status = 'missed', updated_at = ? WHERE id = ?",
                                 (now, job["id"]))
                    missed.append(int(job["id"]))
                else:
                    target = "queued" if job["mode"] == "provider_bulk" else "pending"
                    conn.execute(
                        "UPDATE messages SET status = ?, updated_at = ? WHERE bulk_job_id = ?"
                        " AND status = 'waiting' AND due_at <= ?",
                        (target, now, job["id"], now),
                    )
                    released.append(int(job["id"]))
            if released:
                self.store._notify(conn)
        return released, missed

    def send_missed_now(self, job_id: int, now: float | None = None) -> int:
        """A person chose Send now for a missed job: its missed rows are due now. Rows released."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            job = conn.execute(f"SELECT status, mode FROM bulk_jobs WHERE id = ?{self.store.lock_sql}",
                               (job_id,)).fetchone()
            if job is None or job["status"] != "missed":
                return 0
            target = "queued" if job["mode"] == "provider_bulk" else "pending"
            cur = conn.execute(
                "UPDATE messages SET status = ?, due_at = ?, updated_at = ? WHERE bulk_job_id = ?"
                " AND status = 'missed'",
                (target, now, now, job_id),
            )
            conn.execute("UPDATE bulk_jobs SET status = 'running', updated_at = ? WHERE id = ?", (now, job_id))
            self.store._notify(conn)
            return cur.rowcount

    def scheduled_jobs(
        self, created_by: str | None = None, limit: int = 20, now: float | None = None
    ) -> tuple[list[BulkJob], int]:
        """Confirmed jobs waiting for their time (`/sms list`), soonest first, and how many there are."""
        now = time.time() if now is None else now
        where = ("j.due_at IS NOT NULL AND ((j.status = 'running' AND EXISTS (SELECT 1 FROM messages m"
                 " WHERE m.bulk_job_id = j.id AND m.status = 'waiting')) OR (j.status = 'paused' AND j.due_at > ?))")
        args: list[Any] = [now]
        if created_by is not None:
            where += " AND j.created_by = ?"
            args.append(created_by)
        total = int(self.store.conn.execute(f"SELECT count(*) FROM bulk_jobs j WHERE {where}", args).fetchone()[0])
        rows = self.store.conn.execute(
            f"SELECT * FROM bulk_jobs j WHERE {where} ORDER BY j.due_at, j.id LIMIT ?", (*args, limit)
        ).fetchall()
        return [BulkJob.from_db(r) for r in rows], total

    # -- finishing

    def begin_finish(self, job_id: int, now: float | None = None) -> bool:
        """running/canceling -> finishing when no row can still go out; True for exactly one caller."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            active = conn.execute(
                f"SELECT 1 FROM messages WHERE bulk_job_id = ? AND status IN {ACTIVE_SQL} LIMIT 1", (job_id,)
            ).fetchone()
            if active is not None:
                return False
            cur = conn.execute(
                "UPDATE bulk_jobs SET status = 'finishing', updated_at = ? WHERE id = ?"
                " AND status IN ('running', 'canceling')",
                (now, job_id),
            )
            return cur.rowcount == 1

    def set_summary_ts(self, job_id: int, ts: str) -> None:
        """Where the summary was posted (its thread reply's ts), so a later correction edits it."""
        with self.store.write() as conn:
            row = conn.execute(f"SELECT payload FROM bulk_jobs WHERE id = ?{self.store.lock_sql}",
                               (job_id,)).fetchone()
            if row is None:
                return
            payload = json.loads(row[0] or "{}")
            payload["summary_ts"] = ts
            conn.execute("UPDATE bulk_jobs SET payload = ? WHERE id = ?", (json.dumps(payload), job_id))

    def mark_done(self, job_id: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.store.write() as conn:
            conn.execute(
                "UPDATE bulk_jobs SET status = 'done', finished_at = ?, updated_at = ? WHERE id = ?",
                (now, now, job_id),
            )

    # -- provider-side batches (Sociocs POST /messages/bulk)

    def take_batch(
        self, job_id: int, owner: str, size: int, lease: float, now: float | None = None
    ) -> list[BatchRow]:
        """Mark up to `size` queued rows `sending` (committed before the provider call)."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            if self.store._is_migrated(conn):
                return []
            rows = conn.execute(
                "SELECT id, to_number, name, consent_family, consent_exempt FROM messages WHERE bulk_job_id = ?"
                f" AND status = 'queued' AND due_at <= ? ORDER BY id LIMIT ?{self.store.skip_locked}",
                (job_id, now, size),
            ).fetchall()
            rows = stop_opted_out(conn, rows, now)[0]  # consent: opted-out rows fail here, counted
            conn.executemany(
                "UPDATE messages SET status = 'sending', lease_owner = ?, lease_until = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ? AND status = 'queued'",
                [(owner, now + lease, now, r[0]) for r in rows],
            )
        return [BatchRow(int(r[0]), str(r[1]), r[2]) for r in rows]

    def next_queued_due(self) -> float | None:
        row = self.store.conn.execute(
            "SELECT min(m.due_at) FROM messages m JOIN bulk_jobs j ON j.id = m.bulk_job_id"
            " WHERE j.status = 'running' AND j.mode = 'provider_bulk' AND m.status = 'queued'"
        ).fetchone()
        return row[0] if row and row[0] is not None else None

    def finish_batch(
        self, job_id: int, ids: Sequence[int], status: str, *, provider_job_id: str | None = None,
        error: str | None = None, error_kind: str | None = None, now: float | None = None,
    ) -> None:
        """Record a batch's outcome for all its rows (and the provider's job id) at once."""
        now = time.time() if now is None else now
        error = self.store.scrub(error)
        pid = f"bulk:{provider_job_id}" if provider_job_id else None
        with self.store.write() as conn:
            conn.executemany(
                "UPDATE messages SET status = ?, provider_message_id = ?, delivery = ?, error = ?, error_kind = ?,"
                " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END, lease_owner = NULL, lease_until = NULL,"
                " updated_at = ? WHERE id = ? AND status = 'sending'",
                [(status, pid, "accepted" if status == "sent" else None, error, error_kind, status, now, now, i)
                 for i in ids],
            )
            if provider_job_id:
                row = conn.execute(f"SELECT provider_job_ids FROM bulk_jobs WHERE id = ?{self.store.lock_sql}",
                                   (job_id,)).fetchone()
                known = json.loads(row[0] or "[]") if row else []
                known.append(provider_job_id)
                conn.execute(
                    "UPDATE bulk_jobs SET provider_job_ids = ?, updated_at = ? WHERE id = ?",
                    (json.dumps(known), now, job_id),
                )

    def requeue_batch(
        self, ids: Sequence[int], due_at: float, error: str | None = None, error_kind: str | None = None,
        now: float | None = None,
    ) -> None:
        """Give a batch back: only when the provider certainly took none of it (429, refused connection)."""
        now = time.time() if now is None else now
        error = self.store.scrub(error)
        with self.store.write() as conn:
            conn.executemany(
                "UPDATE messages SET status = 'queued', due_at = ?, error = ?, error_kind = ?, lease_owner = NULL,"
                " lease_until = NULL, updated_at = ? WHERE id = ? AND status = 'sending'",
                [(due_at, error, error_kind, now, i) for i in ids],
            )

    def attempts_of(self, message_id: int) -> int:
        row = self.store.conn.execute("SELECT attempts FROM messages WHERE id = ?", (message_id,)).fetchone()
        return int(row[0]) if row else 0
