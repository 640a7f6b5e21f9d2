"""Sociocs POST /messages/bulk, one batch at a time, at most once per batch.

A batch's rows are `sending` before the call, so a lost answer (or a crash) leaves them
`unknown`, never re-sent. Outcomes follow the dispatcher's policy (bot.core.outcomes).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol

from bot.core.bulk.loops import Loop
from bot.core.dispatch import Limiters, SharedLimiter
from bot.core.outcomes import Outcome, outcome_of
from providers.base import BulkRecipient, BulkResult, OutboundMessage, ProviderError
from storage.bulk import BatchRow, BulkJob

if TYPE_CHECKING:
    from bot.core.bulk.engine import BulkEngine

log = logging.getLogger("smsbot.bulk")

BATCH_SIZE = 1000
SHUTDOWN_UNKNOWN = ("smsbot was shutting down and Sociocs had not answered the bulk call within the grace period "
                    "(SMS_SHUTDOWN_GRACE); these messages may or may not have gone out.")


class BulkSender(Protocol):
    """A provider with a native bulk call (Sociocs)."""

    def send_bulk(self, recipients: list[BulkRecipient], msg: OutboundMessage,
                  duplicates_allowed: bool = False) -> BulkResult: ...

    def scrub(self, text: str) -> str: ...


class BatchRunner(Loop):
    """Takes the queued rows of running provider_bulk jobs, a batch at a time."""

    name = "smsbot-bulk-batches"

    def __init__(self, engine: BulkEngine, batch_size: int) -> None:
        super().__init__(engine)
        self.engine = engine
        self.batch_size = batch_size
        self._limiters = Limiters(engine.store, {})  # 10/s per sender without a dispatcher
        self.owner = f"bulk-batch:{id(self):x}"
        self._inflight: tuple[int, list[int]] | None = None  # (job id, row ids) of the call under way
        self._inflight_lock = threading.Lock()

    def drain(self, deadline: float) -> int:
        """Wait (until `deadline`, monotonic) for the batch call in flight; the loop takes no
        other. A call still running then leaves its rows unknown (they may have gone out)."""
        self.join(max(0.0, deadline - time.monotonic()))
        with self._inflight_lock:
            inflight, self._inflight = self._inflight, None
        if inflight is None:
            return 0
        job_id, ids = inflight
        self.engine.jobs.finish_batch(job_id, ids, "unknown", error_kind="unknown", error=SHUTDOWN_UNKNOWN)
        return len(ids)

    def own_limiter(self, sender: str) -> SharedLimiter:
        """Without a dispatcher: the sender's fleet-wide limit (one slot a batch call) and pause."""
        return self._limiters.get(sender)

    def tick(self) -> float:
        engine = self.engine
        worked = False
        for job in engine.jobs.live_jobs():
            if job.status != "running" or job.mode != "provider_bulk":
                continue
            while not engine.stopping():
                if not self.run_batch(job):
                    break
                worked = True
        if worked:
            return 0.0
        nxt = engine.jobs.next_queued_due()
        return 0.5 if nxt is None else max(0.0, min(0.5, nxt - time.time()))

    def run_batch(self, job: BulkJob) -> bool:
        """Send one batch of this job; False when there was nothing to send (or we must wait)."""
        engine = self.engine
        limiter = engine.limiter(job.sender)
        if limiter.paused():
            return False
        # The slot first, then the rows: rows marked `sending` must not sit out a wait
        # (their lease could run out and a batch that then goes out be recorded unknown).
        if not limiter.acquire(max_pause_wait=0.0):
            return False
        with self._inflight_lock:  # drain() sees either no batch or this one, whole
            rows = [] if engine.stopping() else engine.jobs.take_batch(job.id, self.owner, self.batch_size,
                                                                       engine.lease)
            self._inflight = (job.id, [r.id for r in rows]) if rows else None
        if not rows:
            limiter.refund()  # spent (a shared slot is not given back): errs on the safe side
            return False
        try:
            self._send_batch(job, rows)
        finally:
            with self._inflight_lock:
                self._inflight = None
        engine.tracker.wake()
        return True

    def _send_batch(self, job: BulkJob, rows: list[BatchRow]) -> None:
        jobs = self.engine.jobs
        ids = [r.id for r in rows]
        provider = self.engine.senders.get(job.sender)
        if provider is None or not hasattr(provider, "send_bulk"):
            jobs.finish_batch(job.id, ids, "failed", error=f"Sender '{job.sender}' is no longer configured.",
                              error_kind="config")
            return
        bulk: BulkSender = provider  # has send_bulk (checked above)
        attempt = jobs.attempts_of(ids[0])
        recipients = [BulkRecipient(to=r.to, name=r.name) for r in rows]
        try:
            result = bulk.send_bulk(recipients, OutboundMessage(to=rows[0].to, text=job.text),
                                    duplicates_allowed=job.allow_duplicates)
        except Exception as exc:
            if not isinstance(exc, ProviderError):
                log.error("bulk #%s batch failed unexpectedly: %s", job.id, type(exc).__name__)
            self._record(job, ids, outcome_of(exc, bulk, attempt, self.engine.max_attempts))
        else:
            jobs.finish_batch(job.id, ids, "sent", provider_job_id=result.job_id)
            self._count(job, "sent", len(ids))

    def _record(self, job: BulkJob, ids: list[int], outcome: Outcome) -> None:
        if outcome.pause is not None:
            self.engine.limiter(job.sender).pause(outcome.pause)
        if outcome.state == "retry":
            self.engine.jobs.requeue_batch(ids, time.time() + outcome.wait, error=outcome.error,
                                           error_kind=outcome.kind)
        else:
            self.engine.jobs.finish_batch(job.id, ids, outcome.state, error=outcome.error, error_kind=outcome.kind)
            self._count(job, outcome.state, len(ids))

    def _count(self, job: BulkJob, status: str, n: int) -> None:
        """A batch's rows reached `status` (the dispatcher's own rows are counted by its hook)."""
        if self.engine.metrics is not None:
            self.engine.metrics.sent(job.sender, status, n)
