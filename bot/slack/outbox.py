"""The Slack side of delivery: one thread that makes delivery's Slack calls (see SlackOutbox).

Slack calls never run on the webhook's request path: this thread makes them, honours 429
Retry-After, retries Slack's 5xx / internal errors and dropped connections with a bounded
backoff, and never drops the last state of a thread (the store's `messages.status_dirty`
flag carries it over a restart).
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.text import MESSAGE_TEXT, cap, fit_blocks
from providers.base import redact

log = logging.getLogger("smsbot.delivery")

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


@dataclass
class _Post:
    channel: str
    text: str
    thread_ts: str | None = None
    blocks: list[dict[str, Any]] | None = None
    attempts: int = 0
    metadata: dict[str, Any] | None = None  # Slack message metadata (bot/slack/once.py)


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
        self.on_retry: Callable[[str], None] | None = getattr(client, "on_retry", None)  # metrics (metered.py)

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
            self._count_retry(kind)
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
                self._count_retry(kind)
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

    def _count_retry(self, kind: str) -> None:
        if self.on_retry is not None:
            self.on_retry("chat.postMessage" if kind == "post" else "chat.update")

    def _post(self, post: _Post) -> dict[str, Any]:
        self.calls += 1
        resp = self.client.chat_postMessage(channel=post.channel, text=cap(self.clean(post.text), MESSAGE_TEXT),
                                            blocks=fit_blocks(post.blocks),
                                            thread_ts=post.thread_ts, unfurl_links=False,
                                            metadata=post.metadata)
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

    def post_now(self, channel: str, text: str, thread_ts: str | None = None,
                 metadata: dict[str, Any] | None = None) -> str | None:
        """A post made from the thread itself (e.g. a status line that must exist before updates)."""
        data = self._post(_Post(channel, text, thread_ts, metadata=metadata))
        return str(data["ts"]) if data.get("ts") else None
