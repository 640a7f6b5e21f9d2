"""The bulk job engine: drafts, confirmation, controls, live progress, Sociocs batches, summary.

- A draft holds the parsed recipients (rows in status `draft`, see storage/bulk.py) so
  nothing is parsed twice and nothing is sent before the person confirms (`draft.py`).
- Per-recipient jobs go through the outbox (priority 1): the Dispatcher rate limits them
  per sender and keeps single sends ahead of them.
- Non-personalised text on a Sociocs sender goes as POST /messages/bulk batches, run by
  `BatchRunner` (`batches.py`).
- `ProgressTracker` (`progress.py`) redraws the visible message and, once no row can go out
  any more, has the summary and the failure CSV posted, exactly once.
- What people see goes through a `BulkView` (bot.core.ports); without one (the CLI)
  nothing is posted.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from bot.core.bulk import jobs as rules
from bot.core.bulk.batches import BATCH_SIZE, BatchRunner
from bot.core.bulk.draft import DRAFT_CHUNK, Draft, DraftRequest, Recipients, recheck_quiet
from bot.core.bulk.models import BulkPlan, BulkSummary, Progress
from bot.core.bulk.progress import ProgressTracker
from bot.core.bulk.wording import summary_text, when_words
from bot.core.consent.book import ConsentBook
from bot.core.consent.quiet import QuietPolicy
from bot.core.dispatch import Dispatcher, SharedLimiter
from bot.core.meter import MetricsSink
from bot.core.ports import BulkView
from bot.core.senders import Senders
from storage.bulk import BulkJob, BulkStore
from storage.store import MessageRow, Store

__all__ = ["BATCH_SIZE", "DRAFT_CHUNK", "BulkEngine", "may_send_bulk", "safe_cell"]

log = logging.getLogger("smsbot.bulk")

UPDATED_NOTE = "(Figures updated after the provider was checked for unknown outcomes.)"


def may_send_bulk(bulk_users: list[str], user_id: str | None) -> str | None:
    """None when allowed; otherwise the refusal (SMS_BULK_USERS empty: whoever may send)."""
    if bulk_users and user_id not in bulk_users:
        return (":no_entry: Bulk sends are limited to the people in SMS_BULK_USERS. "
                "Ask an admin, or send one by one with `/sms send`.")
    return None


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: `=SUM(A1)` -> `'=SUM(A1)` (formula injection)."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


class BulkEngine:
    def __init__(
        self,
        store: Store,
        senders: Senders,
        *,
        view: BulkView | None = None,
        dispatcher: Dispatcher | None = None,
        progress_interval: float = 3.0,
        batch_size: int = BATCH_SIZE,
        max_attempts: int = 5,
        lease: float | None = None,
        misfire_grace: float | None = None,
        consent: ConsentBook | None = None,
        quiet: QuietPolicy | None = None,
    ) -> None:
        self.store = store
        self.consent = consent or ConsentBook(store)
        self.quiet = quiet or QuietPolicy(self.consent.settings.sms_quiet_hours)
        self.jobs = BulkStore(store)
        self._redraw_lock = threading.Lock()
        self.senders = senders
        self.view = view
        self.dispatcher = dispatcher
        self.max_attempts = max_attempts
        # A batch's rows are `sending` during its call: held as long as the dispatcher holds one.
        self.lease = lease if lease is not None else (dispatcher.sending_lease if dispatcher else 30.0)
        # A scheduled job found later than this after its time (smsbot was down) waits for a person.
        self.misfire_grace = misfire_grace if misfire_grace is not None else \
            (dispatcher.misfire_grace if dispatcher else 900.0)
        #: whether this process leads the fleet: only the leader tracks progress (bot/core/fleet.py)
        self.lead: Callable[[], bool] = lambda: True
        self.tracker = ProgressTracker(self, progress_interval)
        self._tracker_woken = 0.0
        self.runner = BatchRunner(self, batch_size)
        self._stop = threading.Event()
        self._started = False
        #: bulk jobs by state and batch outcomes for /metrics (the runtime hands the process's Metrics)
        self.metrics: MetricsSink | None = None

    # -- lifecycle

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.dispatcher is not None:
            self.dispatcher.on_final.append(self.on_final)
        self.tracker.start()
        self.runner.start()

    def drain(self, deadline: float) -> int:
        """Take no new batch; let the one in flight answer until `deadline` (monotonic).

        Returns how many rows were still in a call at the deadline (recorded unknown).
        """
        self._stop.set()
        self.runner.wake()
        return self.runner.drain(deadline)

    def stop(self) -> None:
        self._stop.set()
        self.tracker.wake()
        self.runner.wake()
        self.tracker.join()
        self.runner.join()
        if self._started:
            self.tracker.flush()  # the progress messages show the counts we stop with

    def stopping(self) -> bool:
        # Stop with the dispatcher: from its first signal on, no new batch is taken.
        stopping = getattr(self.dispatcher, "stopping", None)
        return self._stop.is_set() or bool(callable(stopping) and stopping())

    def on_final(self, row: MessageRow) -> None:
        # Not once per row: each tick counts the job's rows. At most every 0.1 s; a job's
        # last row is still seen within one tracker delay (0.5 s at most).
        if row.bulk_job_id is not None and time.monotonic() - self._tracker_woken >= 0.1:
            self._tracker_woken = time.monotonic()
            self.tracker.wake()

    def wake(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()
        self.runner.wake()
        self.tracker.wake()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Tests: the dispatcher and both loops each ran a whole pass after this call."""
        loops = [self.runner, self.tracker] + ([self.dispatcher] if self.dispatcher is not None else [])
        return all(loop.wait_idle(timeout) for loop in loops)

    def limiter(self, sender: str) -> SharedLimiter:
        if self.dispatcher is not None:
            return self.dispatcher.limiter(sender)
        return self.runner.own_limiter(sender)

    # -- drafts and confirmation

    def draft(self, recipients: Recipients, text: str, sender: str, *, allow_duplicates: bool,
              when: datetime | None, idem_key: str, user_id: str | None = None, user_name: str | None = None,
              user_tz: str | None = None, channel_id: str | None = None, source: str = "slack",
              source_label: str = "pasted list", now: float | None = None) -> BulkPlan:
        self.jobs.discard_stale_drafts()  # modals closed without confirming leave drafts behind
        req = DraftRequest(text=text, sender=sender, allow_duplicates=allow_duplicates, when=when,
                           idem_key=idem_key, user_id=user_id, user_name=user_name, user_tz=user_tz,
                           channel_id=channel_id, source=source, source_label=source_label)
        return Draft(self.jobs, self.senders, self.consent, self.quiet).build(recipients, req, now=now)

    def confirm(self, job_id: int, post: bool = True) -> BulkJob | None:
        """Start a draft: post the visible progress message, then release its rows.

        None when it was not a draft any more (confirmed twice, canceled).
        """
        if not self.jobs.begin_confirm(job_id):
            return None
        job = self.jobs.get(job_id)
        assert job is not None
        recheck_quiet(self.jobs, self.quiet, job.id, job.created_at, time.time(), job.due_at)
        posted = None
        if post and self.view is not None and (job.channel_id or job.created_by):
            try:
                posted = self.view.post_progress(job, Progress(total=job.total, remaining=job.total), "running")
            except Exception:
                log.exception("posting bulk #%s failed", job_id)
        self.jobs.activate(job_id, posted.channel if posted else None, posted.ts if posted else None)
        self.wake()
        fresh = self.jobs.get(job_id)
        if self.metrics is not None and fresh is not None:
            self.metrics.bulk_job(fresh.status)
        return fresh

    # -- people's controls

    def _wake_if_moved(self, rule: Callable[[BulkStore, int], tuple[str, bool]], job_id: int) -> str:
        """Apply a control rule; rows that became claimable wake the dispatcher."""
        text, moved = rule(self.jobs, job_id)
        if moved:
            self.wake()
        return text

    def cancel(self, job_id: int) -> str:
        return self._wake_if_moved(rules.cancel, job_id)

    def pause(self, job_id: int) -> str:
        text, _ = rules.pause(self.jobs, job_id)
        self.tracker.wake()
        return text

    def send_missed_now(self, job_id: int) -> str:
        return self._wake_if_moved(rules.send_missed_now, job_id)

    def resume(self, job_id: int) -> str:
        text, _ = rules.resume(self.jobs, job_id)
        self.wake()
        return text

    def post_missed_prompt(self, job: BulkJob) -> None:
        """One prompt in the job's thread: it was missed while smsbot was down; Send now or Cancel."""
        if self.view is None:
            return
        self.redraw(job, state="missed")
        target = job.thread_channel or job.channel_id or job.created_by
        if not target or job.payload.get("source") == "cli":
            return
        self.view.missed_prompt(job, str(target), when_words(job.due_at, job.user_tz) if job.due_at else "earlier")

    # -- reporting

    def label(self, sender: str) -> str:
        return self.senders.label(sender)

    def progress(self, job_id: int, rate: float | None = None) -> Progress:
        return Progress.from_counts(self.jobs.counts(job_id), rate)

    def redraw(self, job: BulkJob, p: Progress | None = None, state: str | None = None) -> None:
        if self.view is None or not (job.thread_channel and job.thread_ts):
            return
        # One drawing at a time, from the job's state as stored now: a button's redraw that
        # loses the race with the final one must not land after it ("Canceling" over
        # "Canceled", or the buttons of a finished job coming back).
        with self._redraw_lock:
            fresh = self.jobs.get(job.id) or job
            if state not in ("canceled", "done") and fresh.status in ("finishing", "done"):
                return  # the final drawing is finish()'s
            self.view.redraw(fresh, p or self.progress(job.id), state or fresh.status)

    def write_failure_csv(self, job_id: int, out: TextIO) -> None:
        """The failure CSV, written row by row as the query yields them.

        `to` is always E.164 (`+` and digits, our own normaliser's); names and provider
        error text are not ours, so a leading = + - @ tab or CR is defused (`safe_cell`).
        """
        writer = csv.writer(out)
        writer.writerow(["to", "name", "status", "reason"])
        for row in self.jobs.failures(job_id):
            writer.writerow([row.to, safe_cell(row.name or ""), row.status, safe_cell(row.error or "")])

    def failure_csv(self, job_id: int) -> bytes:
        buf = io.StringIO()
        self.write_failure_csv(job_id, buf)
        return buf.getvalue().encode("utf-8")

    def summary_of(self, job: BulkJob, p: Progress | None = None) -> BulkSummary:
        p = p or self.progress(job.id)
        seconds = (job.finished_at or time.time()) - job.created_at if job.created_at else None
        return BulkSummary(job_id=job.id, progress=p, label=self.label(job.sender), seconds=seconds,
                           canceled=p.canceled > 0 and job.status in ("canceling", "finishing", "done"),
                           provider_job_ids=job.provider_job_ids or [])

    def summary(self, job: BulkJob, p: Progress | None = None) -> str:
        """The summary in plain words (the CLI prints it)."""
        return summary_text(self.summary_of(job, p))

    def finish(self, job: BulkJob) -> None:
        """Once per job: final message, summary and failure CSV in the thread."""
        p = self.progress(job.id)
        self.redraw(job, p, "canceled" if p.canceled > 0 else "done")
        if self.view is not None:
            self._post_summary(self.view, job, p)
        self.jobs.mark_done(job.id)
        if self.metrics is not None:
            self.metrics.bulk_job("canceled" if p.canceled > 0 else "done")

    def reconciled(self, job_id: int) -> None:
        """Rows of this job were settled after the fact (see Delivery.reconcile_once).

        A finished job's progress message and summary are drawn again with the new
        figures; the summary is edited in place when we know where it is. A job still
        running needs nothing: its next drawing counts the settled rows.
        """
        job = self.jobs.get(job_id)
        if job is None or job.status != "done" or self.view is None:
            self.tracker.wake()
            return
        p = self.progress(job.id)
        self.redraw(job, p, "canceled" if p.canceled else "done")
        summary = self.summary_of(job, p)
        summary_ts = job.payload.get("summary_ts")
        if job.thread_channel and summary_ts:
            if self.view.update_summary(job, str(summary_ts), summary, UPDATED_NOTE):
                return
        if job.thread_channel and job.thread_ts:
            ts = self.view.post_summary(job, summary, UPDATED_NOTE)
            if ts:
                self.jobs.set_summary_ts(job.id, ts)

    def _post_summary(self, view: BulkView, job: BulkJob, p: Progress) -> None:
        summary = self.summary_of(job, p)
        if job.thread_channel and job.thread_ts:
            ts = view.post_summary(job, summary)
            if ts:
                self.jobs.set_summary_ts(job.id, ts)
            if p.failed or p.unknown:
                view.upload_failure_csv(job, self.failure_csv(job.id).decode("utf-8"),
                                        f"Bulk #{job.id}: {p.failed:,} failed, {p.unknown:,} unknown recipients.")
        elif job.created_by and job.payload.get("source") != "cli":
            view.tell(job.channel_id, job.created_by, summary)
