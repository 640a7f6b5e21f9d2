"""Delivery results: provider events -> the store -> the thread, the notify channel, alerts.

    webhook / sandbox / reconciler
        -> Delivery.ingest(event)          store.apply_delivery_event (dedupe, forward only)
        -> SlackOutbox.touch(message id)   coalesced: one chat.update per message, latest wins
        -> SlackOutbox.post(...)           failure replies and channel notices, in order

Slack calls never run on the webhook's request path: one background thread makes them,
honours 429 Retry-After, retries Slack's 5xx / internal errors and dropped connections with
a bounded backoff, and never drops the last state of a thread: a status line that Slack has
not taken yet is flagged in the store (`messages.status_dirty`) and redrawn at the next start.

The SQL for adopting early events, settling `unknown` rows and sender health lives in
storage/delivery.py (`DeliveryQueries`).
"""

from __future__ import annotations

import functools
import heapq
import http.client
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot.slack.blocks.history import channel_notice, delivery_failed, failure_reply, status_line
from bot.slack.text import MESSAGE_TEXT, cap, escape, fit_blocks, shown
from providers.base import ProviderError, redact
from providers.events import DeliveryEvent, EventStatus
from providers.sociocs import days_to_look_up
from storage.bulk import BulkStore
from storage.delivery import DeliveryQueries
from storage.store import MessageRow, Store

log = logging.getLogger("smsbot.delivery")

SOCIOCS_CODES = ("twlo", "twlowa", "gswa")
# The states a Sociocs status event names (provider-notes); a listed message's `status`, if any.
SOCIOCS_LISTED_STATES = frozenset({"sent", "delivered", "read", "failed"})
# What a person is told about a send whose outcome nobody can know (never "send it again").
UNKNOWN_ADVICE = "Outcome unknown: check with the provider before sending it again, or it may arrive twice."
# error kinds that say "this sender is broken", not "this one message was refused"
SENDER_LEVEL_KINDS = frozenset({"auth", "not_found", "config", "unknown", "not_sent"})
RECENT_SEND = 10.0  # seconds in which Notifier.report_outcome is expected to post the status line
SANDBOX_SENT_AFTER = 0.5
SANDBOX_DELIVERED_AFTER = 1.5

# Slack errors worth another try: its own trouble, not ours. 429s are handled apart (Retry-After).
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
# Errors that a redraw at the next start might get past (a fixed token): keep the dirty flag.
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"})
RETRY_ATTEMPTS = 6  # calls per post or update before giving up in memory
RETRY_BASE = 0.5  # seconds; doubled per attempt
RETRY_CAP = 30.0


def backoff(attempt: int) -> float:
    """Seconds to wait after the `attempt`-th failed call (1-based): 0.5, 1, 2, 4, 8, ... capped."""
    return min(RETRY_BASE * 2 ** (attempt - 1), RETRY_CAP)


def transient(exc: BaseException) -> bool:
    """A failure another try may get past: 5xx, Slack's internal errors, connection trouble."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code if exc.response is not None else 0
        error = exc.response.get("error") if exc.response is not None else None
        return status >= 500 or error in TRANSIENT_ERRORS
    # URLError, ConnectionError, socket timeouts are OSErrors; a truncated answer is an HTTPException.
    return isinstance(exc, OSError | http.client.HTTPException)


def family_of(sender: str) -> str:
    return "sociocs" if sender in SOCIOCS_CODES else sender


@dataclass
class _Post:
    channel: str
    text: str
    thread_ts: str | None = None
    blocks: list[dict[str, Any]] | None = None
    attempts: int = 0


class SlackOutbox:
    """One thread that makes delivery's Slack calls.

    Status-line updates are coalesced per message: `touch(id)` only marks the message dirty,
    and the update renders the row as it is when the call is made, so a burst of events
    costs one chat.update and the latest state wins. A 429 pauses the thread for
    Retry-After and the work is kept, never dropped. A 5xx, an internal error or a dropped
    connection is retried after a backoff (0.5 s, doubling) without holding up other work,
    at most RETRY_ATTEMPTS calls; an update given up on stays flagged in the store for the
    next start. Posts (failure replies, channel notices) are not coalesced: each is a
    separate notification.

    `forget(message id)` is called when an update failed for good (message deleted, channel
    gone): there is no point redrawing it at the next start.
    """

    def __init__(self, client: WebClient, secrets: list[str], render: Callable[[int], Any],
                 hold: float = 0.25, forget: Callable[[int], None] | None = None) -> None:
        self.client = client
        # Events for one message often come in bursts (sent, delivered within a second):
        # waiting this long before drawing folds them into one chat.update.
        self.hold = hold
        self._scheduled: set[int] = set()
        self.secrets = secrets
        self.render = render  # message id -> None (nothing to do) or a callable doing the Slack call
        self.forget = forget
        self._cond = threading.Condition()
        self._dirty: OrderedDict[int, None] = OrderedDict()
        self._later: list[tuple[float, int]] = []  # (due, message id): retried renders
        self._posts: deque[_Post] = deque()
        self._later_posts: list[tuple[float, int, _Post]] = []  # (due, seq, post): posts to retry
        self._seq = itertools.count()
        self._attempts: dict[int, int] = {}  # message id -> failed update calls in a row
        self._paused_until = 0.0  # monotonic: a 429's Retry-After
        self._busy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_text: OrderedDict[int, str] = OrderedDict()  # skip no-op updates (bounded)
        self.calls = 0  # Slack calls made, for the benchmark

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="smsbot-delivery-slack", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout)

    def touch(self, message_id: int, delay: float | None = None) -> None:
        """Mark a message's status line stale; it is redrawn after `delay` (default: the hold)."""
        with self._cond:
            if delay is None:
                if message_id in self._dirty or message_id in self._scheduled:
                    return  # already coming: this event rides along (coalescing)
                delay = self.hold
            if delay > 0:
                heapq.heappush(self._later, (time.monotonic() + delay, message_id))
                self._scheduled.add(message_id)
            else:
                self._dirty[message_id] = None
            self._cond.notify()

    def post(self, channel: str, text: str, thread_ts: str | None = None,
             blocks: list[dict[str, Any]] | None = None) -> None:
        with self._cond:
            self._posts.append(_Post(channel, text, thread_ts, blocks))
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not (self._dirty or self._posts or self._later or self._later_posts or self._busy)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until there is nothing left to do; False if that did not happen in time.

        Returns at once when waiting cannot help: the thread is stopped, or Slack asked us
        to wait past the deadline (the store's dirty flags carry updates over a restart).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            if self._stop.is_set() or self._paused_until > deadline:
                break
            time.sleep(0.01)
        return self.idle()

    def clean(self, text: str) -> str:
        return redact(text, self.secrets)

    # -- the thread

    def _next(self) -> tuple[str, Any] | None:
        with self._cond:
            while not self._stop.is_set():
                now = time.monotonic()
                while self._later and self._later[0][0] <= now:
                    ready = heapq.heappop(self._later)[1]
                    self._scheduled.discard(ready)
                    self._dirty[ready] = None
                while self._later_posts and self._later_posts[0][0] <= now:
                    self._posts.appendleft(heapq.heappop(self._later_posts)[2])
                if self._posts:
                    self._busy = True
                    return "post", self._posts.popleft()
                if self._dirty:
                    self._busy = True
                    return "update", self._dirty.popitem(last=False)[0]
                self._busy = False
                dues = [q[0][0] for q in (self._later, self._later_posts) if q]
                self._cond.wait(min(dues) - now if dues else None)
        return None

    def _loop(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            kind, item = job
            try:
                if kind == "post":
                    self._post(item)
                else:
                    action = self.render(item)
                    if action is not None:
                        action()
                    self._attempts.pop(item, None)
            except Exception as exc:
                self._failed(kind, item, exc)
            finally:
                with self._cond:
                    self._busy = False

    def _failed(self, kind: str, item: Any, exc: Exception) -> None:
        response = exc.response if isinstance(exc, SlackApiError) else None
        error = (response.get("error") if response is not None else None) or type(exc).__name__
        if response is not None and response.status_code == 429:
            headers = response.headers or {}
            wait = float(headers.get("Retry-After", headers.get("retry-after", 1)))
            log.info("Slack rate limited delivery updates; waiting %.0f s", wait)
            with self._cond:  # keep the work: the post at the front, the update re-marked
                if kind == "post":
                    self._posts.appendleft(item)
                else:
                    self._dirty[item] = None
                    self._dirty.move_to_end(item, last=False)
                self._paused_until = time.monotonic() + max(wait, 0.0)
            self._stop.wait(max(wait, 0.0))
            self._paused_until = 0.0
            return
        if transient(exc):
            attempts = (item.attempts if kind == "post" else self._attempts.get(item, 0)) + 1
            if attempts < RETRY_ATTEMPTS:
                delay = backoff(attempts)
                log.info("delivery %s failed (%s); trying again in %.1f s", kind, error, delay)
                with self._cond:
                    if kind == "post":
                        item.attempts = attempts
                        heapq.heappush(self._later_posts, (time.monotonic() + delay, next(self._seq), item))
                    else:
                        self._attempts[item] = attempts
                        if item not in self._scheduled and item not in self._dirty:
                            heapq.heappush(self._later, (time.monotonic() + delay, item))
                            self._scheduled.add(item)
                    self._cond.notify()
                return
            if kind == "post":
                log.warning("delivery post failed %d times (%s); giving up", attempts, error)
            else:
                self._attempts.pop(item, None)
                log.warning("status line of #%s failed %d times (%s); it is redrawn at the next start",
                            item, attempts, error)
            return
        log.warning("delivery %s failed: %s", kind, error)
        if kind == "update":
            self._attempts.pop(item, None)
            if isinstance(exc, SlackApiError) and error not in AUTH_ERRORS and self.forget is not None:
                try:  # the message or channel is gone: nothing to redraw, ever
                    self.forget(item)
                except Exception:
                    log.exception("forgetting the status line of #%s failed", item)

    def _post(self, post: _Post) -> dict[str, Any]:
        self.calls += 1
        resp = self.client.chat_postMessage(channel=post.channel, text=cap(self.clean(post.text), MESSAGE_TEXT),
                                            blocks=fit_blocks(post.blocks),
                                            thread_ts=post.thread_ts, unfurl_links=False)
        return resp.data if isinstance(resp.data, dict) else {}

    def update_line(self, message_id: int, channel: str, ts: str, text: str) -> None:
        if self.last_text.get(message_id) == text:
            return
        self.calls += 1
        self.client.chat_update(channel=channel, ts=ts, text=cap(self.clean(text), MESSAGE_TEXT))
        self.last_text[message_id] = text
        self.last_text.move_to_end(message_id)
        while len(self.last_text) > 10_000:
            self.last_text.popitem(last=False)

    def post_now(self, channel: str, text: str, thread_ts: str | None = None) -> str | None:
        """A post made from the thread itself (e.g. a status line that must exist before updates)."""
        data = self._post(_Post(channel, text, thread_ts))
        return str(data["ts"]) if data.get("ts") else None


# --------------------------------------------------------------------------- timers (sandbox events)


class Timers:
    """One thread running callbacks at given times (no thread per timer under bulk load)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="smsbot-delivery-timers", daemon=True)
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._stop:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("timer callback failed")


# --------------------------------------------------------------------------- the service


class Delivery:
    def __init__(self, ctx: Any, client: WebClient | None = None) -> None:
        from bot.slack.context import AppContext

        self.ctx: AppContext = ctx
        self.store: Store = ctx.store
        self.queries = DeliveryQueries(ctx.store)
        settings = ctx.settings
        self.notify_on: str = settings.sms_notify_on
        self.notify_channel: str | None = settings.sms_notify_channel
        self.reconcile_interval = float(getattr(settings, "sms_reconcile_interval", 60.0))
        self.reconcile_window = float(getattr(settings, "sms_reconcile_window", 900.0))
        if client is None:
            # Our own client: no built-in 429 retries, so a rate limit re-renders the latest state
            # instead of replaying a stale update.
            client = WebClient(token=ctx.client.token, base_url=ctx.client.base_url, timeout=10,
                               retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=2)])
        self.outbox = SlackOutbox(client, list(ctx.notifier.secrets), self._render, forget=self.queries.clear_dirty)
        self.timers = Timers()
        self._reconciler: threading.Thread | None = None
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._jobs_touched: set[int] = set()  # bulk jobs whose rows this reconciliation pass settled
        self.ingested = 0

    # -- lifecycle

    def start(self) -> None:
        self.outbox.start()
        self.redraw_dirty()
        dispatcher = self.ctx.extras.get("dispatcher")
        if dispatcher is not None:
            dispatcher.on_final.append(self.on_final)
            if self.reconcile_interval > 0:
                self._reconciler = threading.Thread(target=self._reconcile_loop, name="smsbot-reconciler",
                                                    daemon=True)
                self._reconciler.start()
        sandbox = self.ctx.senders.providers.get("sandbox")
        if sandbox is not None and hasattr(sandbox, "on_accepted"):
            sandbox.on_accepted = self.sandbox_accepted

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.timers.stop()
        self.outbox.stop(timeout)
        if self._reconciler is not None:
            self._reconciler.join(timeout)

    def redraw_dirty(self) -> int:
        """Redraw every status line the store says Slack has not taken (e.g. before a restart)."""
        ids = self.queries.dirty_ids()
        for message_id in ids:
            self.outbox.touch(message_id, delay=0)
        if ids:
            log.info("redrawing %d out-of-date status line(s)", len(ids))
        return len(ids)

    def warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    # -- what is configured

    def reports_on(self, sender: str) -> bool:
        s = self.ctx.settings
        if sender == "sandbox":
            return True
        if sender in SOCIOCS_CODES:
            return bool(s.sociocs_webhook_secret and s.sociocs_webhook_secret.get_secret_value())
        if sender == "bird":
            return bool(s.bird_webhook_signing_key and s.bird_webhook_signing_key.get_secret_value())
        if sender == "textus":
            return bool(s.textus_webhook_secret and s.textus_webhook_secret.get_secret_value())
        return False

    def label(self, sender: str) -> str:
        return self.ctx.senders.label(sender)

    # -- ingestion (webhooks, sandbox, reconciler all come through here)

    def ingest(self, event: DeliveryEvent, reference: str | None = None) -> str:
        """Record one event; returns what happened: applied, duplicate or stale, unknown message."""
        occurred = event.occurred_at.timestamp() if event.occurred_at else None
        changed, row = self.store.apply_delivery_event(
            event.provider, event.provider_message_id, event.status, event.error, occurred
        )
        self.ingested += 1
        if row is None and reference and event.status != "unknown":
            row = self._adopt_by_reference(event, reference)
            changed = row is not None
        if row is None:
            return "ignored"  # a duplicate, or a message we never sent (recorded, not an error)
        if not changed:
            return "duplicate or stale"
        self._changed(row)
        return "applied"

    def _adopt_by_reference(self, event: DeliveryEvent, reference: str) -> MessageRow | None:
        """Bird echoes our reference `smsbot-<row id>`: it settles a send recorded as unknown."""
        if not reference.startswith("smsbot-") or not reference[7:].isdigit():
            return None
        row = self.store.get(int(reference[7:]))
        if row is None or row.status != "unknown" or family_of(row.sender) != event.provider:
            return None
        note = f"{self.label(row.sender)} reported this message (reference {reference}), so it was sent."
        if not self.queries.settle_unknown(row.id, "sent", provider_message_id=event.provider_message_id,
                                           error=note):
            return None
        fresh = self.store.get(row.id)
        if fresh is None:
            return None
        changed, updated = self.queries.adopt_orphans(fresh)
        return updated if updated is not None else fresh

    def _changed(self, row: MessageRow) -> None:
        if row.bulk_job_id is not None:
            return  # bulk progress and summaries are the bulk job's
        if row.thread_ts:
            # The store flagged the line (status_dirty) in the event's own transaction.
            self.outbox.touch(row.id)
        if row.delivery == "failed":
            self._tell_failure(row)
            self._notify_result(row)
        elif row.delivery == "delivered":
            self._notify_result(row)

    def _tell_failure(self, row: MessageRow) -> None:
        if row.thread_channel and row.thread_ts:
            self.outbox.post(row.thread_channel, failure_reply(row, self.label(row.sender)), row.thread_ts)
        elif row.created_by:
            self.outbox.post(row.created_by, failure_reply(row, self.label(row.sender)))

    def _notify_result(self, row: MessageRow) -> None:
        if not self.notify_channel or self.notify_on == "none":
            return
        from bot.slack.blocks.history import delivery_failed

        if self.notify_on == "failures" and not (delivery_failed(row) or row.status == "unknown"):
            return
        self.outbox.post(self.notify_channel, channel_notice(row, self.label(row.sender)))

    # -- the thread's status line

    def _line_stale(self, message_id: int, delay: float | None = None) -> None:
        """The status line no longer shows the row: flag it in the store, then redraw it."""
        self.queries.mark_dirty(message_id)
        self.outbox.touch(message_id, delay)

    def _render(self, message_id: int) -> Callable[[], None] | None:
        row = self.store.get(message_id)
        if row is None:
            return None
        if not row.thread_channel or not row.thread_ts:
            self.queries.clear_dirty(message_id, row.updated_at)  # no thread: nothing to draw
            return None
        if row.status == "sent":
            text = status_line(row, self.label(row.sender), self.reports_on(row.sender))
            if row.error_kind == "reconciled" and row.error:
                text += f" {shown(row.error, 1000)}"
        elif row.status == "failed":
            # outcome_text escapes and caps the provider text itself.
            text = self.ctx.notifier.outcome_text(row)
        else:
            self.queries.clear_dirty(message_id, row.updated_at)
            return None
        drawn_at = row.updated_at
        if row.status_ts:
            channel, ts = row.thread_channel, row.status_ts

            def update_line() -> None:
                self.outbox.update_line(message_id, channel, ts, text)
                self.queries.clear_dirty(message_id, drawn_at)

            return update_line
        if time.time() - (row.sent_at or row.updated_at) < RECENT_SEND:
            # The dispatcher is about to post the status line: update it then, not a second line.
            self.outbox.touch(message_id, delay=0.5)
            return None

        def post_line() -> None:
            ts = self.outbox.post_now(str(row.thread_channel), text, row.thread_ts)
            if ts:
                self.store.set_thread(row.id, str(row.thread_channel), str(row.thread_ts), status_ts=ts)
                self.outbox.last_text[message_id] = text
                self.queries.clear_dirty(message_id, drawn_at)

        return post_line

    # -- outcomes from the dispatcher

    def on_final(self, row: MessageRow) -> None:
        """Called by the dispatcher for each row reaching a final state (any thread)."""
        self._health(row)
        if row.status == "sent":
            if row.provider_message_id:
                changed, adopted = self.queries.adopt_orphans(row)
                if changed and adopted is not None:
                    self._changed(adopted)
                    return
            if row.bulk_job_id is None and not self.reports_on(row.sender):
                # Say in the thread that this is the last state we will know of.
                if row.thread_ts:
                    self._line_stale(row.id, delay=0.2)
                else:
                    self.outbox.touch(row.id, delay=0.2)
                if self.notify_on == "all":
                    self._notify_result(row)
        elif row.status in ("failed", "unknown") and row.bulk_job_id is None:
            self._notify_result(row)

    def _health(self, row: MessageRow) -> None:
        label = self.label(row.sender)
        if row.status == "sent":
            if self.queries.health_success(row.sender):
                self._alert(f":white_check_mark: {label} works again: message #{row.id} went through.")
            return
        # A worker that died mid-send says nothing about the provider.
        reaped = row.status == "unknown" and (row.error or "").startswith("The worker stopped")
        if row.status in ("failed", "unknown") and row.error_kind in SENDER_LEVEL_KINDS and not reaped:
            count = self.queries.health_failure(row.sender, row.error_kind, row.error)
            if count is not None:
                self._alert(
                    f":rotating_light: {label} keeps failing ({count} sends in a row): {shown(row.error, 1000)} "
                    f"Sends through `{row.sender}` fail until this is fixed; I'll say here when it works again."
                )

    def _alert(self, text: str) -> None:
        if self.notify_channel:
            self.outbox.post(self.notify_channel, text)
        else:
            log.warning("%s (set SMS_NOTIFY_CHANNEL to get this in Slack)", redact(text, self.outbox.secrets))

    # -- the sandbox: fake events, through the same path as webhooks

    def sandbox_accepted(self, message_id: str) -> None:
        steps: tuple[tuple[float, EventStatus], ...] = ((SANDBOX_SENT_AFTER, "sent"), (SANDBOX_DELIVERED_AFTER, "delivered"))
        for delay, status in steps:
            event = DeliveryEvent(provider="sandbox", provider_message_id=message_id, status=status,
                                  occurred_at=datetime.now(UTC))
            self.timers.call_later(delay, functools.partial(self._ingest_quietly, event))

    def _ingest_quietly(self, event: DeliveryEvent) -> None:
        try:
            self.ingest(event)
        except Exception:
            log.exception("sandbox event failed")

    # -- reconciling unknown outcomes

    def _reconcile_loop(self) -> None:
        while not self._stop.wait(self.reconcile_interval):
            try:
                self.reconcile_once()
            except Exception:
                log.exception("reconciliation pass failed")

    def reconcile_once(self, now: float | None = None) -> dict[int, str]:
        """Settle `unknown` sends where the provider can tell. Returns {row id: what happened}.

        The rule: a row becomes `sent` on the provider's record of it and `failed` only
        when the provider says it refused it. Not finding a message is never proof that
        it was not sent, so such rows stay `unknown` with a note saying what to check.
        """
        now = time.time() if now is None else now
        rows = self.queries.unknown_rows(since=now - 30 * 86400)
        out: dict[int, str] = {}
        self._jobs_touched = set()
        sociocs = [r for r in rows if r.sender in SOCIOCS_CODES]
        if sociocs:
            out.update(self._reconcile_sociocs(sociocs, now))
        for row in rows:
            if row.sender == "bird":
                out[row.id] = self._reconcile_bird(row, now)
            elif row.sender not in SOCIOCS_CODES:
                out[row.id] = self._no_lookup(row)
        self._bulk_settled(self._jobs_touched)
        return out

    def _reconcile_sociocs(self, rows: list[MessageRow], now: float) -> dict[int, str]:
        provider = next((self.ctx.senders.get(r.sender) for r in rows if self.ctx.senders.get(r.sender)), None)
        if provider is None or not hasattr(provider, "list_messages"):
            return {r.id: "sender not configured" for r in rows}
        # A send happened between its claim and the moment it was recorded unknown; Sociocs
        # may date it a little later (a bulk job works through its list), hence the margins.
        days = days_to_look_up([(r.updated_at - 3600, min(now, r.updated_at + 86400)) for r in rows])
        left = {r.id: r for r in rows}
        out: dict[int, str] = {}
        taken: set[str] = set()
        for day in days:  # no documented paging: one day per call is the finest the API allows
            if not left:
                break
            try:
                listed = provider.list_messages(day, day)
            except (ProviderError, ValueError) as exc:
                log.warning("Sociocs reconciliation failed: %s", getattr(exc, "message", type(exc).__name__))
                out.update({i: "lookup failed" for i in left})
                return out
            for row in list(left.values()):
                match = self._sociocs_match(row, listed, taken)
                if match is not None:
                    del left[row.id]
                    out[row.id] = self._settle_found(row, match, now)
        for row in left.values():
            out[row.id] = self._still_unknown(row, now)
        return out

    def _sociocs_match(self, row: MessageRow, listed: list[dict[str, Any]],
                       taken: set[str]) -> dict[str, Any] | None:
        """The listed message that is this row's send: same number, text and sender, not before it."""
        text = row.payload.get("text") if isinstance(row.payload, dict) else None
        for m in listed:
            mid = str(m.get("message_id") or m.get("id") or "")
            if (not mid or mid in taken or m.get("to") != row.to_number or (m.get("text") or None) != text
                    or m.get("provider", row.sender) != row.sender):
                continue
            when = _listed_time(m)
            if when is not None and when < row.created_at - 60:
                continue  # an older message with the same text: not this send
            if self.queries.is_known_provider_id(mid):
                continue  # another of our rows already owns it
            taken.add(mid)
            return {**m, "message_id": mid}
        return None

    def _settle_found(self, row: MessageRow, match: dict[str, Any], now: float) -> str:
        reported = str(match.get("status") or "").lower()
        delivery = reported if reported in SOCIOCS_LISTED_STATES else "accepted"
        note = "Found at Sociocs after the unknown outcome: it was sent."
        if self.queries.settle_unknown(row.id, "sent", provider_message_id=str(match["message_id"]),
                                       delivery=delivery, error=note, now=now):
            self._settled(row.id)
        return "sent"

    def _still_unknown(self, row: MessageRow, now: float) -> str:
        """Not listed (yet): keep looking; past the window, say once what a person should check."""
        if now - row.updated_at <= self.reconcile_window:
            return "waiting"
        minutes = self.reconcile_window / 60
        if row.bulk_job_id is not None:
            note = ("It was part of a Sociocs bulk call that got no answer, so smsbot never learned the job id "
                    f"and Sociocs does not list it {minutes:g} minutes later either. " + UNKNOWN_ADVICE
                    + " (Sociocs -> Bulk messaging -> History)")
        else:
            note = (f"Sociocs does not list it {minutes:g} minutes after the attempt, but its list is not "
                    "proof either way. " + UNKNOWN_ADVICE)
        if self.store.first_time(f"reconcile-note:{row.id}"):
            self.queries.note_unknown(row.id, f"{row.error or 'No answer from Sociocs.'} {note}")
            self._tell_unknown(row, note)
        return "unknown"

    def _tell_unknown(self, row: MessageRow, note: str) -> None:
        """The honest note, once: in the message's thread, or once per bulk job in the job's thread."""
        if row.bulk_job_id is None:
            if row.thread_channel and row.thread_ts:
                self.outbox.post(row.thread_channel, f":mag: #{row.id}: {escape(note)}", row.thread_ts)
            return
        job = BulkStore(self.store).get(row.bulk_job_id)
        if job is not None and job.thread_channel and job.thread_ts and \
                self.store.first_time(f"reconcile-note:bulk:{job.id}"):
            self.outbox.post(job.thread_channel, f":mag: Bulk #{job.id}: the unknown recipients stay unknown. "
                             f"{escape(note)}", job.thread_ts)

    def _reconcile_bird(self, row: MessageRow, now: float) -> str:
        provider = self.ctx.senders.get("bird")
        if row.provider_message_id and provider is not None and hasattr(provider, "get_message"):
            try:
                result = provider.get_message(row.provider_message_id)
            except ProviderError as exc:
                # A 404 is also what a changed workspace or channel setting answers: no proof.
                if exc.kind == "not_found" and now - row.updated_at > self.reconcile_window:
                    return self._no_lookup(row, "Bird answers 404 for its message id, which does not prove "
                                                "it was not sent. " + UNKNOWN_ADVICE)
                return "lookup failed"
            if result.status == "unknown":
                return "waiting"  # a state we cannot read (e.g. deleted): no evidence either way
            # Refused before sending is proof nothing went out; delivery_failed means it was sent.
            refused = result.provider_status in ("rejected", "sending_failed")
            status = "failed" if refused else "sent"
            if refused:
                error = f"Bird refused it: {result.detail or result.provider_status}"
            elif result.status == "failed":
                error = f"Found at Bird: it was sent but not delivered ({result.detail or result.provider_status})."
            else:
                error = "Found at Bird after the unknown outcome: it was sent."
            if self.queries.settle_unknown(row.id, status, delivery=None if refused else result.status,
                                           error=error, now=now):
                self._settled(row.id)
            return status
        return self._no_lookup(row)

    def _no_lookup(self, row: MessageRow, how: str | None = None) -> str:
        """Bird without an id, TextUs: no lookup exists. Say so once; a webhook may still settle it."""
        if self.store.first_time(f"reconcile-note:{row.id}") and row.thread_channel and row.thread_ts:
            label = self.label(row.sender)
            if how is None and row.sender == "bird":
                how = (f"Bird has no lookup by our reference, so I can't check it: search Bird's message log for "
                       f"reference `smsbot-{row.id}`. A Bird delivery report naming it will settle this thread.")
            elif how is None:
                how = f"{label} offers no way to look a message up. " + UNKNOWN_ADVICE
            self.outbox.post(row.thread_channel, f":mag: #{row.id}: {how}", row.thread_ts)
        return "no lookup"

    def _bulk_settled(self, job_ids: set[int]) -> None:
        """Jobs whose rows reconciliation settled: their progress message and summary show it."""
        engine = self.ctx.extras.get("bulk")
        if engine is None or not hasattr(engine, "reconciled"):
            return
        for job_id in sorted(job_ids):
            try:
                engine.reconciled(job_id)
            except Exception:
                log.exception("correcting the summary of bulk #%s failed", job_id)

    def _settled(self, message_id: int) -> None:
        row = self.store.get(message_id)
        if row is None:
            return
        if row.bulk_job_id is None:
            if row.thread_ts:
                self.outbox.touch(row.id)
            if delivery_failed(row):
                self._tell_failure(row)
            self._notify_result(row)
        else:
            self._jobs_touched.add(row.bulk_job_id)
        for callback in getattr(self.ctx.extras.get("dispatcher"), "on_final", []):
            if callback != self.on_final:  # bulk progress etc. hear about the settled row
                try:
                    callback(row)
                except Exception:
                    log.exception("on_final callback failed")


def _listed_time(message: dict[str, Any]) -> float | None:
    """When Sociocs says a listed message was made, if a field says so (not documented: inferred)."""
    for key in ("created_at", "timestamp", "date"):
        value = message.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) / (1000 if value > 1e11 else 1)  # webhook timestamps are in ms
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


# --------------------------------------------------------------------------- public helpers


def get_delivery(ctx: Any) -> Delivery:
    """The one Delivery of this app context, started on first use."""
    delivery = ctx.extras.get("delivery")
    if delivery is None:
        delivery = Delivery(ctx)
        ctx.extras["delivery"] = delivery
        delivery.start()
        ctx.extras.setdefault("on_stop", []).append(delivery.stop)
    return delivery


def notify_channel(ctx: Any, text: str, blocks: list[dict[str, Any]] | None = None) -> bool:
    """Post to SMS_NOTIFY_CHANNEL (e.g. a bulk job's summary), off the caller's thread.

    Returns False when no channel is configured. Rate limits are waited out, not dropped.
    """
    channel = ctx.settings.sms_notify_channel
    if not channel:
        return False
    delivery = ctx.extras.get("delivery")
    if delivery is not None:
        delivery.outbox.post(channel, text, blocks=blocks)
        return True
    return ctx.notifier.post(channel, text, blocks) is not None
