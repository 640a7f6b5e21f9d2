"""Redraws progress messages (throttled, latest counts) and finishes jobs, exactly once each."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from bot.core.bulk.loops import Loop
from bot.core.bulk.models import Progress
from storage.bulk import BulkJob

if TYPE_CHECKING:
    from bot.core.bulk.engine import BulkEngine

log = logging.getLogger("smsbot.bulk")

Shown = tuple[int, int, int, int, int, str, int]


class ProgressTracker(Loop):
    """Once no row of a job can go out any more, it finishes it (`BulkStore.begin_finish`)."""

    name = "smsbot-bulk-progress"

    def __init__(self, engine: BulkEngine, interval: float) -> None:
        super().__init__(engine)
        self.engine = engine
        self.interval = interval
        self._last_draw: dict[int, float] = {}
        self._last_shown: dict[int, Shown] = {}
        self._samples: dict[int, deque[tuple[float, int]]] = {}

    def rate(self, job_id: int, done: int, now: float) -> float | None:
        samples = self._samples.setdefault(job_id, deque())
        samples.append((now, done))
        while len(samples) > 2 and now - samples[0][0] > 15:
            samples.popleft()
        t0, d0 = samples[0]
        return (done - d0) / (now - t0) if now - t0 >= 1 else None

    def tick(self) -> float:
        engine = self.engine
        if not engine.lead():
            return 0.5  # another process redraws, finishes and prompts: once per fleet
        now = time.monotonic()
        released, missed = engine.jobs.release_due(engine.misfire_grace)
        if released:
            engine.wake()
        for job_id in missed:
            job = engine.jobs.get(job_id)
            if job is not None:
                engine.post_missed_prompt(job)
        for job in engine.jobs.live_jobs():
            self.look_at(job, now)
        delay = min(0.5, self.interval)
        waiting = engine.jobs.next_waiting_due()
        if waiting is not None:
            delay = max(0.0, min(delay, waiting - time.time()))
        return delay

    def look_at(self, job: BulkJob, now: float) -> None:
        """Finish the job if nothing is left; else redraw it when its counts changed."""
        engine = self.engine
        p = Progress.from_counts(self.settled_counts(job))
        p.rate = self.rate(job.id, p.done, now)
        if p.remaining == 0 and job.status in ("running", "canceling"):
            if engine.jobs.begin_finish(job.id):
                fresh = engine.jobs.get(job.id)
                if fresh is not None:
                    engine.finish(fresh)
                self._forget(job.id)
            return
        shown = (p.sent, p.failed, p.unknown, p.canceled, p.remaining, job.status, len(job.provider_job_ids))
        if shown != self._last_shown.get(job.id) and now - self._last_draw.get(job.id, 0.0) >= self.interval:
            engine.redraw(job, p)
            self._last_draw[job.id] = now
            self._last_shown[job.id] = shown

    def settled_counts(self, job: BulkJob) -> dict[str, int]:
        jobs = self.engine.jobs
        counts = jobs.counts(job.id)
        # A retry released after Pause/Cancel came back as pending: take it out again. The
        # job list may be stale (Resume landed since): repause/recancel check it again in
        # their own transaction and never change the job's status.
        if job.status == "paused" and (counts.get("pending") or counts.get("queued")):
            jobs.repause(job.id)
            counts = jobs.counts(job.id)
        elif job.status == "canceling" and (counts.get("pending") or counts.get("queued")
                                            or counts.get("paused") or counts.get("waiting")):
            jobs.recancel(job.id)
            counts = jobs.counts(job.id)
        return counts

    def flush(self) -> None:
        """One last pass at shutdown, unthrottled: every live job's message shows its latest counts."""
        self.interval = 0.0
        try:
            self.tick()
        except Exception:
            log.exception("the last bulk progress redraw failed")

    def _forget(self, job_id: int) -> None:
        self._last_draw.pop(job_id, None)
        self._last_shown.pop(job_id, None)
        self._samples.pop(job_id, None)
