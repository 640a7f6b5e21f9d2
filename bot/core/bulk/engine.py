"""The bulk job engine: drafts, confirmation, live progress, Sociocs batches, summary.

- A draft holds the parsed recipients (rows in status `draft`, see storage/bulk.py) so
  nothing is parsed twice and nothing is sent before the person confirms.
- Per-recipient jobs go through the outbox (priority 1): the Dispatcher rate limits them
  per sender and keeps single sends ahead of them.
- Non-personalised text on a Sociocs sender goes as POST /messages/bulk batches, run by
  `BatchRunner`: a batch's rows are `sending` before the call, so a lost answer (or a
  crash) leaves them `unknown`, never re-sent.
- `ProgressTracker` redraws the visible message (at most every `interval` seconds, with
  the latest counts), and once no row can go out any more, posts the summary and the
  failure CSV in the thread, exactly once (`BulkStore.begin_finish`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import marshal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, TextIO

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.input.recipients import RecipientList, RecipientStream, Renderer, RowProblem, placeholders
from bot.core.input.sms_segments import segment_info
from bot.core.senders import Senders
from bot.core.sending import MAX_TEXT_LENGTH, UserError
from bot.slack.announcer import UNREACHABLE, Notifier
from bot.slack.blocks.bulk import (
    PROBLEMS_SHOWN,
    BulkPlan,
    ProblemLine,
    Progress,
    missed_prompt,
    progress_message,
    summary_text,
    when_words,
)
from providers.base import (
    BulkRecipient,
    NotSent,
    OutboundMessage,
    ProviderError,
    RateLimited,
    UnknownOutcome,
)
from storage.bulk import BulkJob, BulkStore, DraftRow, NewBulkJob
from storage.store import MessageRow, Store

log = logging.getLogger("smsbot.bulk")

SOCIOCS_SENDERS = ("twlo", "twlowa", "gswa")
BATCH_SIZE = 1000
DRAFT_CHUNK = 1000  # rendered rows kept in memory while drafting (the rest wait on disk)
SEEN_TEXTS = 2000  # distinct texts whose segment count is remembered while drafting


def may_send_bulk(bulk_users: list[str], user_id: str | None) -> str | None:
    """None when allowed; otherwise the refusal (SMS_BULK_USERS empty: whoever may send)."""
    if bulk_users and user_id not in bulk_users:
        return (":no_entry: Bulk sends are limited to the people in SMS_BULK_USERS. "
                "Ask an admin, or send one by one with `/sms send`.")
    return None


class _Spool:
    """Draft rows between the renderer and the store: one chunk in memory, the rest on disk.

    The rows are inserted in one transaction, but rendering 100,000 of them must neither
    keep them all in memory (~30 MB of JSON) nor hold the store's write lock while the
    CSV is read (every `/sms send` ack writes a row). So rendered chunks go to a temporary
    file (marshal: plain tuples of str/None) and are read back one chunk at a time.
    """

    def __init__(self, chunk: int = DRAFT_CHUNK) -> None:
        self.chunk = chunk
        self.rows: list[tuple[str, str | None, str, str]] = []
        self.count = 0
        self.first: DraftRow | None = None
        self._file: IO[bytes] | None = None

    def append(self, row: DraftRow) -> None:
        if self.first is None:
            self.first = row
        self.rows.append((row.to, row.name, row.payload, row.summary))  # a plain tuple: marshal takes no NamedTuple
        self.count += 1
        if len(self.rows) >= self.chunk:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="smsbot-draft-")
            marshal.dump(self.rows, self._file)
            self.rows = []

    def __iter__(self) -> Iterator[DraftRow]:
        if self._file is not None:
            self._file.seek(0)
            while True:
                try:
                    chunk = marshal.load(self._file)
                except EOFError:
                    break
                for row in chunk:
                    yield DraftRow._make(row)
        for row in self.rows:
            yield DraftRow._make(row)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.rows = []


class Draft:
    """Turns a parsed recipient list and a text into a stored draft and its plan.

    The recipients are read once, in order, one at a time: a `RecipientStream`
    (`iter_csv`) is never held in memory whole, and neither are the rendered rows.
    """

    def __init__(self, engine: BulkEngine) -> None:
        self.engine = engine

    def build(
        self,
        recipients: RecipientList | RecipientStream,
        text: str,
        sender: str,
        *,
        allow_duplicates: bool,
        when: datetime | None,
        idem_key: str,
        user_id: str | None = None,
        user_name: str | None = None,
        user_tz: str | None = None,
        channel_id: str | None = None,
        source: str = "slack",
        source_label: str = "pasted list",
        now: float | None = None,
    ) -> BulkPlan:
        engine = self.engine
        now = time.time() if now is None else now
        provider = engine.senders.get(sender)
        if provider is None:
            raise UserError(f"Sender '{sender}' is not configured. Configured senders: "
                            f"{', '.join(engine.senders.names())}.", field="sender")
        text = (text or "").strip()
        if not text:
            raise UserError("Write the message text.", field="text")
        if len(text) > MAX_TEXT_LENGTH:
            raise UserError(f"The text is {len(text):,} characters; the limit is {MAX_TEXT_LENGTH:,}. "
                            "Shorten it.", field="text")
        due: float | None = None
        if when is not None:
            ts = when.timestamp()
            if ts < now - 60:
                raise UserError("That time is in the past. Choose a future time, or leave it empty to send now.",
                                field="when")
            due = ts if ts > now + 1 else None
        personalised = bool(placeholders(text))
        renderer = Renderer(text) if personalised else None
        # Empty renders are problems too; only the first PROBLEMS_SHOWN of them are ever shown.
        empty: list[ProblemLine] = []
        empties = 0
        uses_name = "name" in placeholders(text)
        named = False
        longest: tuple[int, int, str] | None = None  # (segments, characters, text)
        preview = ""
        seen_texts: dict[str, tuple[int, int]] = {}
        spool = _Spool()
        try:
            for r in recipients.iter_rows():
                body = renderer(r).strip() if renderer is not None else text
                if not body:
                    empties += 1
                    if len(empty) < PROBLEMS_SHOWN:
                        empty.append(ProblemLine(line=r.line, raw=r.to, reason="The message is empty for this "
                                                 "recipient (its placeholder values are blank)."))
                    continue
                if len(body) > MAX_TEXT_LENGTH:
                    # The same limit as `/sms send`: the row is skipped, never sent cut or refused late.
                    empties += 1
                    if len(empty) < PROBLEMS_SHOWN:
                        empty.append(ProblemLine(line=r.line, raw=r.to, reason=f"text would be {len(body):,} "
                                                 f"characters; the limit is {MAX_TEXT_LENGTH:,}"))
                    continue
                if r.name:
                    named = True
                if not preview:
                    preview = body
                # Segment counting walks every character; identical texts are counted once.
                info = seen_texts.get(body)
                if info is None:
                    seg = segment_info(body)
                    info = (seg.segments, seg.characters)
                    if len(seen_texts) < SEEN_TEXTS:
                        seen_texts[body] = info
                if longest is None or info > longest[:2]:
                    longest = (info[0], info[1], body)
                payload: dict[str, Any] = {"to": r.to, "text": body}
                if r.name:
                    payload["name"] = r.name
                spool.append(DraftRow(r.to, r.name, json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                                      body[:500]))
            seen_texts.clear()
            # Final only now that the rows were read (a stream counts as it goes).
            parsed = recipients.problems
            invalid = len(parsed) + empties
            if not spool.count:
                shown: list[RowProblem | ProblemLine] = [*parsed[:3], *empty[:3]]
                first = "; ".join(f"line {p.line}: {p.reason}" for p in shown[:3])
                raise UserError(f"No valid recipients. {first}".strip(), field="recipients")
            assert longest is not None and spool.first is not None
            sample = OutboundMessage(to=spool.first.to, text=longest[2])
            found = provider.validate(sample)
            if found:
                raise UserError(" ".join(found), field="text")
            seg = segment_info(longest[2])
            native = sender in SOCIOCS_SENDERS and hasattr(provider, "send_bulk")
            mode = "provider_bulk" if native and not personalised else "per_recipient"
            # Both lists are in line order: the first lines of the two are the first lines of all.
            problems = sorted([*(ProblemLine(line=p.line, raw=p.raw, reason=p.reason)
                                 for p in parsed[:PROBLEMS_SHOWN]), *empty], key=lambda p: p.line)
            notes = list(recipients.notes)
            if uses_name and not named:
                if isinstance(recipients, RecipientStream):
                    columns = ", ".join(f"`{c}`" for c in recipients.columns)
                    fix = (f"Columns in the file: {columns}. Name the column `name` (or `first_name` / "
                           "`full_name`), or use another placeholder.")
                else:
                    fix = "Put each name after its number (`+16175551212, Jane`), or remove {name}."
                notes.insert(0, "The text uses {name} but no recipient has a name, so it will be blank "
                             f"(\"Hi {{name}}\" sends \"Hi \"). {fix}")
            plan_fields = {
                "sender": sender, "sender_label": provider.label, "mode": mode, "valid": spool.count,
                "total_rows": recipients.total_rows, "duplicates_removed": recipients.duplicates_removed,
                "allow_duplicates": allow_duplicates, "invalid": invalid,
                "problems": [p.model_dump() for p in problems[:PROBLEMS_SHOWN]], "notes": notes,
                "encoding": seg.encoding, "segments": seg.segments, "characters": seg.characters,
                "preview": preview, "personalised": personalised, "native_bulk_sender": native,
                "due_at": due, "user_tz": user_tz, "source_label": source_label,
            }
            job = NewBulkJob(
                idem_key=idem_key, sender=sender, mode=mode, text=text, plan=plan_fields, total=spool.count,
                duplicates_removed=recipients.duplicates_removed, invalid_rows=invalid, due_at=due,
                created_by=user_id, user_name=user_name, user_tz=user_tz, channel_id=channel_id, source=source,
            )
            job_id, created = engine.jobs.create_draft(job, spool, now=now)
        finally:
            spool.close()
        if not created:
            existing = engine.jobs.get(job_id)
            if existing is not None:
                return BulkPlan.model_validate({**existing.plan, "job_id": job_id})
        return BulkPlan.model_validate({**plan_fields, "job_id": job_id})


class BulkEngine:
    def __init__(
        self,
        store: Store,
        senders: Senders,
        *,
        notifier: Notifier | None = None,
        client: WebClient | None = None,
        dispatcher: Any = None,
        progress_interval: float = 3.0,
        batch_size: int = BATCH_SIZE,
        max_attempts: int = 5,
        lease: float | None = None,
        misfire_grace: float | None = None,
    ) -> None:
        self.store = store
        self.jobs = BulkStore(store)
        self._redraw_lock = threading.Lock()
        self.senders = senders
        self.notifier = notifier
        self.client = client
        self.dispatcher = dispatcher
        self.max_attempts = max_attempts
        # A batch's rows are `sending` during its call: held as long as the dispatcher holds one.
        self.lease = lease if lease is not None else float(getattr(dispatcher, "sending_lease", 30.0))
        # A scheduled job found later than this after its time (smsbot was down) waits for a person.
        self.misfire_grace = misfire_grace if misfire_grace is not None else \
            float(getattr(dispatcher, "misfire_grace", 900.0))
        self.tracker = ProgressTracker(self, progress_interval)
        self.runner = BatchRunner(self, batch_size)
        self._stop = threading.Event()
        self._started = False

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
        if row.bulk_job_id is not None:
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

    def limiter(self, sender: str) -> Any:
        if self.dispatcher is not None:
            return self.dispatcher.limiter(sender)
        return self.runner.own_limiter(sender)

    # -- drafts and confirmation

    def draft(self, recipients: RecipientList | RecipientStream, text: str, sender: str, **kw: Any) -> BulkPlan:
        self.jobs.discard_stale_drafts()  # modals closed without confirming leave drafts behind
        return Draft(self).build(recipients, text, sender, **kw)

    def confirm(self, job_id: int, post: bool = True) -> BulkJob | None:
        """Start a draft: post the visible progress message, then release its rows.

        None when it was not a draft any more (confirmed twice, canceled).
        """
        if not self.jobs.begin_confirm(job_id):
            return None
        job = self.jobs.get(job_id)
        assert job is not None
        channel = ts = None
        if post and self.notifier is not None and (job.channel_id or job.created_by):
            try:
                channel, ts = self._post_progress(job)
            except Exception:
                log.exception("posting bulk #%s failed", job_id)
        self.jobs.activate(job_id, channel, ts)
        self.wake()
        return self.jobs.get(job_id)

    def _post_progress(self, job: BulkJob) -> tuple[str | None, str | None]:
        assert self.notifier is not None
        text, blocks = self.progress_blocks(job, Progress(total=job.total, remaining=job.total), "running")
        target = job.channel_id or job.created_by
        data = None
        try:
            data = self.notifier.post(str(target), text, blocks)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            if error in UNREACHABLE and job.created_by and target != job.created_by:
                blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                               f"I can't post in <#{job.channel_id}>, so this bulk send's progress comes here. "
                               "Invite me with `/invite @smsbot` to see it in the channel."}]})
                try:
                    data = self.notifier.post(job.created_by, text, blocks)
                except SlackApiError:
                    data = None
        if data and data.get("ts"):
            return str(data.get("channel") or target), str(data["ts"])
        return None, None

    # -- people's controls

    def cancel(self, job_id: int) -> str:
        job = self.jobs.get(job_id)
        if job is None:
            return f"There is no bulk send #{job_id}."
        if job.status not in ("running", "paused", "draft", "missed"):
            return f"Bulk #{job_id} is already {job.status}; nothing to cancel."
        n = self.jobs.cancel(job_id)
        self.wake()
        return f"Bulk #{job_id} canceled: {plural(n, 'recipient')} will not get it."

    def pause(self, job_id: int) -> str:
        n = self.jobs.pause(job_id)
        self.tracker.wake()
        job = self.jobs.get(job_id)
        if job is None or job.status != "paused":
            return f"Bulk #{job_id} is {job.status if job else 'unknown'}; it can't be paused."
        return f"Bulk #{job_id} paused; {plural(n, 'recipient')} wait for Resume."

    def send_missed_now(self, job_id: int) -> str:
        job = self.jobs.get(job_id)
        if job is None:
            return f"There is no bulk send #{job_id}."
        n = self.jobs.send_missed_now(job_id)
        if not n and job.status != "missed":
            return f"Bulk #{job_id} is {job.status}; nothing was sent now."
        self.wake()
        return f"Bulk #{job_id} sending now, late: {plural(n, 'recipient')} to go."

    def post_missed_prompt(self, job: BulkJob) -> None:
        """One prompt in the job's thread: it was missed while smsbot was down; Send now or Cancel."""
        if self.notifier is None:
            return
        self.redraw(job, state="missed")
        target = job.thread_channel or job.channel_id or job.created_by
        if not target or job.payload.get("source") == "cli":
            return
        when = when_words(job.due_at, job.user_tz) if job.due_at else "earlier"
        text, blocks = missed_prompt(job.id, job.total, when)
        try:
            self.notifier.post(str(target), text, blocks, thread_ts=job.thread_ts if job.thread_channel else None)
        except SlackApiError as exc:
            log.warning("posting the missed prompt of bulk #%s failed: %s", job.id, type(exc).__name__)

    def resume(self, job_id: int) -> str:
        n = self.jobs.resume(job_id)
        self.wake()
        return f"Bulk #{job_id} resumed; {plural(n, 'recipient')} to go."

    # -- reporting

    def label(self, sender: str) -> str:
        return self.senders.label(sender)

    def progress(self, job_id: int, rate: float | None = None) -> Progress:
        return Progress.from_counts(self.jobs.counts(job_id), rate)

    def progress_blocks(self, job: BulkJob, p: Progress, state: str) -> tuple[str, list[dict[str, Any]]]:
        return progress_message(job.id, job.created_by, self.label(job.sender), job.text or "", p, state,
                                job.provider_job_ids, job.due_at, job.user_tz)

    def redraw(self, job: BulkJob, p: Progress | None = None, state: str | None = None) -> None:
        if self.notifier is None or not (job.thread_channel and job.thread_ts):
            return
        # One drawing at a time, from the job's state as stored now: a button's redraw that
        # loses the race with the final one must not land after it ("Canceling" over
        # "Canceled", or the buttons of a finished job coming back).
        with self._redraw_lock:
            fresh = self.jobs.get(job.id) or job
            if state not in ("canceled", "done") and fresh.status in ("finishing", "done"):
                return  # the final drawing is finish()'s
            p = p or self.progress(job.id)
            text, blocks = self.progress_blocks(fresh, p, state or fresh.status)
            self.notifier.update(job.thread_channel, job.thread_ts, text, blocks)

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

    def summary(self, job: BulkJob, p: Progress | None = None) -> str:
        p = p or self.progress(job.id)
        seconds = (job.finished_at or time.time()) - job.created_at if job.created_at else None
        return summary_text(job.id, p, self.label(job.sender), seconds,
                            canceled=p.canceled > 0 and job.status in ("canceling", "finishing", "done"),
                            provider_job_ids=job.provider_job_ids)

    def finish(self, job: BulkJob) -> None:
        """Once per job: final message, summary and failure CSV in the thread."""
        p = self.progress(job.id)
        canceled = p.canceled > 0
        self.redraw(job, p, "canceled" if canceled else "done")
        text = self.summary(job, p)
        if self.notifier is not None:
            self._post_summary(job, text, p)
        self.jobs.mark_done(job.id)

    def reconciled(self, job_id: int) -> None:
        """Rows of this job were settled after the fact (see Delivery.reconcile_once).

        A finished job's progress message and summary are drawn again with the new
        figures; the summary is edited in place when we know where it is. A job still
        running needs nothing: its next drawing counts the settled rows.
        """
        job = self.jobs.get(job_id)
        if job is None or job.status != "done" or self.notifier is None:
            self.tracker.wake()
            return
        p = self.progress(job.id)
        self.redraw(job, p, "canceled" if p.canceled else "done")
        text = self.summary(job, p) + "\n(Figures updated after the provider was checked for unknown outcomes.)"
        summary_ts = job.payload.get("summary_ts")
        if job.thread_channel and summary_ts:
            if self.notifier.update(job.thread_channel, str(summary_ts), text):
                return
        if job.thread_channel and job.thread_ts:
            posted = self.notifier.post(job.thread_channel, text, thread_ts=job.thread_ts)
            if posted and posted.get("ts"):
                self.jobs.set_summary_ts(job.id, str(posted["ts"]))

    def _post_summary(self, job: BulkJob, text: str, p: Progress) -> None:
        assert self.notifier is not None
        if job.thread_channel and job.thread_ts:
            try:
                posted = self.notifier.post(job.thread_channel, text, thread_ts=job.thread_ts)
            except SlackApiError:
                posted = None
            if posted and posted.get("ts"):
                self.jobs.set_summary_ts(job.id, str(posted["ts"]))
            if (p.failed or p.unknown) and self.client is not None:
                try:
                    self.client.files_upload_v2(
                        channel=job.thread_channel, thread_ts=job.thread_ts,
                        filename=f"bulk-{job.id}-failures.csv", title=f"Bulk #{job.id}: failed and unknown",
                        content=self.failure_csv(job.id).decode("utf-8"),
                        initial_comment=f"Bulk #{job.id}: {p.failed:,} failed, {p.unknown:,} unknown recipients.",
                    )
                except Exception as exc:
                    log.warning("uploading the failure report of bulk #%s failed: %s", job.id, type(exc).__name__)
        elif job.created_by and job.payload.get("source") != "cli":
            self.notifier.ephemeral_or_dm(job.channel_id, job.created_by, text)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: `=SUM(A1)` -> `'=SUM(A1)` (formula injection)."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


class _Loop:
    """A daemon thread that runs `tick` until the engine stops; `wake` runs it early."""

    name = "smsbot-bulk"

    def __init__(self, engine: BulkEngine) -> None:
        self.engine = engine
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._passes = 0  # finished ticks: `wait_idle` synchronises on them
        self._passed = threading.Condition()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait for a whole tick that began after this call (tests: "it looked, sent nothing")."""
        deadline = time.monotonic() + timeout
        with self._passed:
            target = self._passes + 2  # the tick under way may have begun before the call
            while self._passes < target:
                self._wake.set()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._passed.wait(min(0.05, left))
        return True

    def _run(self) -> None:
        while not self.engine.stopping():
            try:
                delay = self.tick()
            except Exception:
                log.exception("%s pass failed", self.name)
                delay = 1.0
            with self._passed:
                self._passes += 1
                self._passed.notify_all()
            self._wake.wait(delay)
            self._wake.clear()

    def tick(self) -> float:
        raise NotImplementedError


class ProgressTracker(_Loop):
    """Redraws progress messages (throttled, latest counts) and finishes jobs."""

    name = "smsbot-bulk-progress"

    def __init__(self, engine: BulkEngine, interval: float) -> None:
        super().__init__(engine)
        self.interval = interval
        self._last_draw: dict[int, float] = {}
        self._last_shown: dict[int, tuple[Any, ...]] = {}
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
        now = time.monotonic()
        released, missed = engine.jobs.release_due(engine.misfire_grace)
        if released:
            engine.wake()
        for job_id in missed:
            job = engine.jobs.get(job_id)
            if job is not None:
                engine.post_missed_prompt(job)
        for job in engine.jobs.live_jobs():
            counts = engine.jobs.counts(job.id)
            # A retry released after Pause/Cancel came back as pending: take it out again. The
            # job list may be stale (Resume landed since): repause/recancel check it again in
            # their own transaction and never change the job's status.
            if job.status == "paused" and (counts.get("pending") or counts.get("queued")):
                engine.jobs.repause(job.id)
                counts = engine.jobs.counts(job.id)
            elif job.status == "canceling" and (counts.get("pending") or counts.get("queued")
                                                or counts.get("paused") or counts.get("waiting")):
                engine.jobs.recancel(job.id)
                counts = engine.jobs.counts(job.id)
            p = Progress.from_counts(counts)
            p.rate = self.rate(job.id, p.done, now)
            if p.remaining == 0 and job.status in ("running", "canceling"):
                if engine.jobs.begin_finish(job.id):
                    fresh = engine.jobs.get(job.id)
                    if fresh is not None:
                        engine.finish(fresh)
                    self._forget(job.id)
                continue
            shown = (p.sent, p.failed, p.unknown, p.canceled, p.remaining, job.status, len(job.provider_job_ids))
            if shown != self._last_shown.get(job.id) and now - self._last_draw.get(job.id, 0.0) >= self.interval:
                engine.redraw(job, p)
                self._last_draw[job.id] = now
                self._last_shown[job.id] = shown
        delay = min(0.5, self.interval)
        waiting = engine.jobs.next_waiting_due()
        if waiting is not None:
            delay = max(0.0, min(delay, waiting - time.time()))
        return delay

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


class BatchRunner(_Loop):
    """Sociocs POST /messages/bulk, one batch at a time, at most once per batch."""

    name = "smsbot-bulk-batches"

    def __init__(self, engine: BulkEngine, batch_size: int) -> None:
        super().__init__(engine)
        self.batch_size = batch_size
        self._limiters: dict[str, Any] = {}
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
        self.engine.jobs.finish_batch(
            job_id, ids, "unknown", error_kind="unknown",
            error=("smsbot was shutting down and Sociocs had not answered the bulk call within the grace period "
                   "(SMS_SHUTDOWN_GRACE); these messages may or may not have gone out."))
        return len(ids)

    def own_limiter(self, sender: str) -> Any:
        from bot.core.dispatch import RateLimiter

        if sender not in self._limiters:
            self._limiters[sender] = RateLimiter(10.0)
        return self._limiters[sender]

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
            limiter.refund()
            return False
        try:
            self._send_batch(job, rows, provider=engine.senders.get(job.sender))
        finally:
            with self._inflight_lock:
                self._inflight = None
        engine.tracker.wake()
        return True

    def _send_batch(self, job: BulkJob, rows: list[Any], provider: Any) -> None:
        engine = self.engine
        limiter = engine.limiter(job.sender)
        ids = [r.id for r in rows]
        if provider is None or not hasattr(provider, "send_bulk"):
            engine.jobs.finish_batch(job.id, ids, "failed", error=f"Sender '{job.sender}' is no longer configured.",
                                     error_kind="config")
            return
        attempt = engine.jobs.attempts_of(ids[0])
        recipients = [BulkRecipient(to=r.to, name=r.name) for r in rows]
        msg = OutboundMessage(to=rows[0].to, text=job.text)
        try:
            result = provider.send_bulk(recipients, msg, duplicates_allowed=job.allow_duplicates)
        except RateLimited as exc:
            wait = exc.retry_after if exc.retry_after is not None else 5.0
            limiter.pause(wait)
            self._retry(job, ids, attempt, wait, provider.scrub(exc.message), exc.kind)
        except NotSent as exc:
            self._retry(job, ids, attempt, float(min(300, 2 ** attempt)), provider.scrub(exc.message), exc.kind)
        except UnknownOutcome as exc:
            engine.jobs.finish_batch(job.id, ids, "unknown", error=provider.scrub(exc.message), error_kind=exc.kind)
        except ProviderError as exc:
            engine.jobs.finish_batch(job.id, ids, "failed", error=provider.scrub(exc.message), error_kind=exc.kind)
        except Exception as exc:
            log.error("bulk #%s batch failed unexpectedly: %s", job.id, type(exc).__name__)
            engine.jobs.finish_batch(job.id, ids, "unknown", error=f"Unexpected error ({type(exc).__name__}).",
                                     error_kind="unknown")
        else:
            engine.jobs.finish_batch(job.id, ids, "sent", provider_job_id=result.job_id)

    def _retry(self, job: BulkJob, ids: list[int], attempt: int, wait: float, error: str, kind: str) -> None:
        if attempt >= self.engine.max_attempts:
            self.engine.jobs.finish_batch(job.id, ids, "failed", error=f"{error} Gave up after {attempt} attempts.",
                                          error_kind=kind)
            return
        self.engine.jobs.requeue_batch(ids, time.time() + wait, error=error, error_kind=kind)

