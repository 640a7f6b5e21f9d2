"""The dispatcher: claims due outbox rows, calls providers, records and reports outcomes.

It sleeps until the next due time (or a wake-up when something new arrives), never for
minutes. At-most-once: a row is marked `sending` before the provider call; anything that
may have reached the provider and has no answer is `unknown`, never retried.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from bot.core.conversations.window import row_refusal
from bot.core.group_commit import OutcomeWriter
from bot.core.meter import DispatchMeter
from bot.core.outcomes import Outcome, backoff, outcome_of
from bot.core.ports import Announcer
from bot.core.senders import Senders
from providers.base import OutboundMessage, Provider, ProviderError, SendResult
from storage.conversations import ConversationQueries
from storage.store import Limit, MessageRow, Store

log = logging.getLogger("smsbot.worker")


class RateLimiter:
    """Spaces calls to one sender at `rate` per second, honours a 429 pause, serves single
    sends before bulk rows.

    A slot is taken only when it is due, never reserved ahead: a pause that starts while a
    call waits is seen, and a waiting bulk row lets a single send that arrives later go first.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self.paused_until = 0.0
        self._urgent = 0  # single sends waiting: bulk rows hold back while there are any
        self._cond = threading.Condition()

    def pause(self, seconds: float) -> None:
        with self._cond:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)
            self._cond.notify_all()

    def paused(self) -> bool:
        return time.monotonic() < self.paused_until

    def acquire(self, stop: threading.Event | None = None, priority: int = 0,
                max_pause_wait: float | None = None) -> bool:
        """Wait for this sender's next slot; False when `stop` was set meanwhile, or when a
        429 pause would keep us longer than `max_pause_wait` (the caller gives the row back
        rather than hold a worker thread for the whole Retry-After)."""
        with self._cond:
            if priority == 0:
                self._urgent += 1
            try:
                while stop is None or not stop.is_set():
                    now = time.monotonic()
                    if max_pause_wait is not None and self.paused_until - now > max_pause_wait:
                        return False
                    slot = max(self._next, self.paused_until)
                    if priority != 0 and self._urgent:
                        slot = max(slot, now + 0.05)  # let the single sends through first
                    elif slot <= now:
                        self._next = now + self.interval
                        return True
                    # Woken early by pause() or a slot given back; capped so `stop` is seen.
                    self._cond.wait(min(slot - now, 0.25))
                return False
            finally:
                if priority == 0:
                    self._urgent -= 1
                    self._cond.notify_all()

    def refund(self) -> None:
        """Give back the slot just taken by a call that did not happen (canceled, paused)."""
        with self._cond:
            self._next = max(time.monotonic(), self._next - self.interval)
            self._cond.notify_all()


PAUSE_RECHECK = 0.01  # how stale this process's view of a fleet-wide 429 pause may be
REAP_EVERY = 0.5  # seconds between sweeps for leases dead workers left
ANNOUNCE_EVERY = 0.1  # seconds between looks for scheduled rows to announce while sends run
# A claim may reserve a limited sender's slots this far ahead (its rows wait in their thread
# for their slot): the fleet's claims then never leave the bucket idle between them, and no
# more than RESERVE_AHEAD x rate rows wait `sending` before their call.
RESERVE_AHEAD = 0.0  # 0.05 kept the bucket busier, but stalled workers then sent in bunches (windows to 114%)


def burst_for(rate: float) -> int:
    """The shared bucket's depth: about 2% of a second's sends (2 at least), so no one-second
    window goes more than ~2% over the limit, yet a worker takes a few rows per claim."""
    return max(2, math.ceil(rate * 0.02))


class SharedLimiter:
    """One sender's limit for the whole fleet: the store's token bucket (every process and
    thread draws from it) and its pause (a 429 seen by any worker stops all of them).

    rate 0 means no limit (a 429 pause still holds). `paused_until` (monotonic) is this
    process's own pause, seen without a read.
    """

    def __init__(self, store: Store, sender: str, rate: float,
                 on_pause: Callable[[str, bool], None] | None = None) -> None:
        self.store = store
        self.sender = sender
        self.rate = rate
        self.burst = burst_for(rate)
        self.paused_until = 0.0
        self.on_pause = on_pause  # (sender, a new pause?): the metrics' 429 and pause counts
        self._lock = threading.Lock()
        self._checked = -1e9
        self._shared_end = 0.0  # monotonic end of the fleet-wide pause, as last read

    def limit(self) -> Limit | None:
        """(rate/s, burst, reserve-ahead s) for the store's claim; None: unlimited."""
        return (self.rate, self.burst, RESERVE_AHEAD) if self.rate > 0 else None

    def pause(self, seconds: float) -> None:
        now = time.monotonic()
        if self.on_pause is not None:
            self.on_pause(self.sender, max(self.paused_until, self._shared_end) <= now)
        self.paused_until = max(self.paused_until, now + seconds)
        self.store.pause_sender(self.sender, self.store.clock() + seconds)
        with self._lock:
            self._shared_end, self._checked = max(self._shared_end, now + seconds), now

    def pause_left(self) -> float:
        """Seconds until this sender may send again (0: now); the store is read at most every 10 ms."""
        now = time.monotonic()
        with self._lock:
            fresh = now - self._checked < PAUSE_RECHECK
            shared = self._shared_end
        if not fresh:
            until = self.store.sender_paused_until(self.sender)
            shared = now + (0.0 if until is None else max(0.0, until - self.store.clock()))
            with self._lock:
                self._shared_end, self._checked = shared, now
        return max(0.0, self.paused_until - now, shared - now)

    def paused(self) -> bool:
        return self.pause_left() > 0

    def seen_unpaused(self, at: float) -> None:
        """A claim read this sender unpaused at `at` (monotonic, taken before it): pause_left
        needs no read of its own until PAUSE_RECHECK after that."""
        with self._lock:
            if at > self._checked:
                self._shared_end, self._checked = min(self._shared_end, at), at

    def acquire(self, stop: threading.Event | None = None, priority: int = 0,
                max_pause_wait: float | None = None) -> bool:
        """One slot from the shared bucket, waiting for it; False when `stop` was set meanwhile,
        or when a pause would keep us longer than `max_pause_wait` (the caller gives its
        row back rather than hold a thread for the whole Retry-After). (`priority` is kept
        for callers: rows are ordered by priority where they are claimed.)"""
        del priority
        while stop is None or not stop.is_set():
            left = self.pause_left()
            if left <= 0 and (self.rate <= 0 or self.store.take_send_slots(self.sender, 1, self.rate, self.burst)):
                return True
            if max_pause_wait is not None and left > max_pause_wait:
                return False
            wait = min(0.25, left if left > 0 else 1.0 / self.rate)
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)
        return False

    def refund(self) -> None:
        """A slot taken for a call that did not happen stays spent: the limit errs only on the safe side."""


__all__ = ["Dispatcher", "RateLimiter", "SharedLimiter", "backoff"]  # backoff: the one policy's (bot.core.outcomes)


class SlotClock:
    """Turns slots reserved on the database's clock into this process's clock (time.time()).

    Every claim bounds the offset (database - local) from below: its grant (`at`) came before
    the claim returned. The largest bound seen, lowered by DRIFT a second so that clock drift
    is followed, sends each row at its slot or a little after, never before: the fleet's
    sends keep the spacing the bucket gave them, whichever worker and however late its claim
    returned (anchoring on the return instead let one-second windows reach 108% of a limit).
    """

    DRIFT = 0.001

    def __init__(self) -> None:
        self._offset: float | None = None
        self._seen = 0.0

    def observe(self, granted_at: float, returned: float) -> None:
        sample = granted_at - returned
        if self._offset is None:
            self._offset = sample
        else:
            self._offset = max(sample, self._offset - self.DRIFT * max(0.0, returned - self._seen))
        self._seen = returned

    def starts(self, rows: list[MessageRow], returned: float) -> list[float]:
        """When each row of a claim that returned at `returned` (time.time()) may go (0: now)."""
        for row in rows[:1]:
            if row.slot_at:
                self.observe(row.slot_at - row.slot_delay, returned)
        return [row.slot_at - (self._offset or 0.0) if row.slot_at else 0.0 for row in rows]


class Limiters:
    """One SharedLimiter per sender, made on first use (the rates come from the settings)."""

    def __init__(self, store: Store, rates: dict[str, float]) -> None:
        self.store = store
        self.rates = dict(rates)
        self._made: dict[str, SharedLimiter] = {}
        self._lock = threading.Lock()
        self.meter = DispatchMeter()  # counts 429s and pauses once given a sink

    def get(self, sender: str) -> SharedLimiter:
        with self._lock:
            if sender not in self._made:
                self._made[sender] = SharedLimiter(self.store, sender, self.rates.get(sender, 10.0),
                                                   on_pause=self.meter.paused)
            return self._made[sender]

    def limit_of(self, sender: str) -> Limit | None:
        return self.get(sender).limit()

    def seen_unpaused(self, rows: list[MessageRow], at: float) -> None:
        """A claim that began at `at` (monotonic) took these rows: it skipped paused senders."""
        for sender in {r.sender for r in rows}:
            self.get(sender).seen_unpaused(at)


def listen_for_due(store: Store, wake: threading.Event, stop: threading.Event) -> None:
    """A due row written by any process (LISTEN/NOTIFY on PostgreSQL) wakes the loop at once;
    polling (`poll_interval`) stays the fallback."""
    while not stop.is_set():
        try:
            if store.wait_for_due(0.25):
                wake.set()
        except Exception:
            log.exception("waiting for due rows failed; polling meanwhile")
            stop.wait(1.0)


ABANDONED = ("smsbot was shutting down and the provider had not answered within the grace period "
             "(SMS_SHUTDOWN_GRACE); the message may or may not have gone out.")


def hand_back(store: Store, row: MessageRow, owner: str) -> MessageRow | None:
    """A claimed row whose call certainly never started goes back to pending (None: not sent)."""
    if row.status == "claimed":
        store.unclaim([row.id], owner)
    else:
        store.unsend([row.id], owner)
    return None


def commit_sending(store: Store, row: MessageRow, owner: str, lease: float) -> MessageRow | None:
    """A row whose reserved slot came is committed `sending` before its call (None: not ours
    any more); a row the claim made `sending` already is returned as it is."""
    if row.status != "claimed":
        return row
    if not store.mark_sending(row.id, owner, lease=lease):
        return None
    return row.model_copy(update={"status": "sending", "attempts": row.attempts + 1})


def abandon(store: Store, owner: str, report: Callable[[MessageRow], object]) -> int:
    """Rows whose call outlived the grace period: unknown now, reported, never resent."""
    count = 0
    for message_id in store.sending_ids(owner):
        final = store.record_outcome(message_id, "unknown", error=ABANDONED, error_kind="unknown")
        if final is not None and final.status == "unknown":
            count += 1
            report(final)
    return count


class Dispatcher:
    def __init__(
        self,
        store: Store,
        senders: Senders,
        notifier: Announcer | None,
        *,
        concurrency: int = 16,
        misfire_grace: float = 900.0,
        max_attempts: int = 5,
        rates: dict[str, float] | None = None,
        poll_interval: float = 0.5,
        lease: float = 60.0,
        sending_lease: float = 30.0,
    ) -> None:
        self.store = store
        self.senders = senders
        self.notifier = notifier
        self.concurrency = concurrency
        self.misfire_grace = misfire_grace
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self.lease = lease
        # A provider call is bounded by its client timeout (10 s): a `sending` row still
        # held after this long belongs to a dead worker and becomes unknown.
        self.sending_lease = sending_lease
        self.owner_prefix = f"{socket.gethostname()}:"
        self.owner = f"{self.owner_prefix}{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.limiters = Limiters(store, rates or {})
        self.meter = self.limiters.meter  # metrics (bot/core/meter.py): silent until given a sink
        self._writer = OutcomeWriter(store)  # outcomes that finish together share a commit
        self._queued: set[int] = set()  # claimed into `sending`, call not started yet
        self._retry_in: float | None = None  # a limit held rows back: claim again then
        self._next_reap = 0.0
        self._announce_at = 0.0
        self._slots = SlotClock()
        self._refill = max(1, concurrency // 2)  # free threads worth a claim (a quarter: -10% msg/s)
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Set from a signal handler (no locks there): claim nothing more, start no call.
        self._closing = False
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._idle = threading.Condition(self._inflight_lock)
        self._passes = 0  # finished loop passes: `wait_idle` synchronises on them
        self._passed = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="smsbot-send")
        self._thread: threading.Thread | None = None
        #: called with each row that reached a final state (bulk progress, notifications)
        self.on_final: list[Callable[[MessageRow], None]] = []

    # -- control

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        # Leases a dead worker left behind and that already ran out: claimed rows go back
        # to pending, rows it was sending become unknown (the rest when their lease ends).
        for row in self.store.reap_expired():
            self._report(row)
        self.store.listen()  # before the first pass: a row written meanwhile is never missed
        threading.Thread(target=listen_for_due, args=(self.store, self._wake, self._stop),
                         name="smsbot-dispatch-listen", daemon=True).start()
        self._thread = threading.Thread(target=self._loop, name="smsbot-dispatcher", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Claim nothing more and start no provider call; safe to call from a signal handler."""
        self._closing = True

    def stopping(self) -> bool:
        return self._closing or self._stop.is_set()

    def in_flight(self) -> int:
        with self._inflight_lock:
            return self._inflight

    def stop(self, timeout: float = 10.0, *, deadline: float | None = None) -> int:
        """Stop gracefully: calls in flight get until `deadline` (monotonic; default `timeout` from now)
        to answer; rows claimed but not started go back to pending. Returns how many calls were still
        running at the deadline: those rows are recorded unknown (and reported), as after a crash."""
        self.request_stop()
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout if deadline is None else deadline
        if self._thread is not None and self._thread.ident is not None:  # a stop signal can land inside start()
            self._thread.join(max(0.0, deadline - time.monotonic()))
        # Queued futures never start; rows claimed into `sending` whose call did not start
        # go back to pending (their thread finds them gone), as do claimed (CLI) rows.
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._inflight_lock:
            back, self._queued = list(self._queued), set()
        self.store.unsend(back, self.owner)
        self.store.unclaim_owner(self.owner)
        with self._idle:
            while self._inflight > 0 and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(min(left, 0.5))
            running = self._inflight
        abandoned = abandon(self.store, self.owner, self._report) if running else 0
        self.store.unclaim_owner(self.owner)
        return abandoned

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait for a whole pass begun after this call with nothing in flight (False on timeout):
        "nothing was sent" then means the loop looked and chose not to send."""
        deadline = time.monotonic() + timeout
        with self._passed:
            target = self._passes + 2  # the pass under way may have begun before the call
        while time.monotonic() < deadline:
            self._wake.set()
            with self._passed:
                with self._inflight_lock:
                    idle = self._inflight == 0
                if self._passes >= target and idle:
                    return True
                self._passed.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return False

    def limiter(self, sender: str) -> SharedLimiter:
        return self.limiters.get(sender)

    # -- the loop

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("dispatcher pass failed")
                self._stop.wait(1.0)
            with self._inflight_lock:
                busy = self._inflight > self.concurrency - self._refill
            if busy:  # wait for half the pool (or a new row, or a stop): no 1-row claims
                timeout = self.poll_interval
            elif self._retry_in is not None:  # due rows a limit held back: no spinning on them
                timeout = min(self.poll_interval, self._retry_in)
            else:
                timeout = self.poll_interval
                nxt = self.store.next_due_at()
                if nxt is not None:
                    timeout = min(timeout, max(0.0, nxt - time.time()))
            with self._passed:
                self._passes += 1
                self._passed.notify_all()
            if timeout > 0:
                self._wake.wait(timeout)
            self._wake.clear()

    def run_once(self) -> int:
        """One pass: reap, announce scheduled rows, claim what is due. Returns rows claimed.

        Rows are claimed straight into `sending`, only as many as the shared limits let go
        now and the pool has threads for: a crash leaves unknown no more than were in flight.
        """
        sweep = time.monotonic() >= self._next_reap  # past-grace schedules marked missed then too
        if sweep:
            self._next_reap = time.monotonic() + REAP_EVERY
            for row in self.store.reap_expired():
                self._report(row)
        with self._inflight_lock:
            free = self.concurrency - self._inflight
        # While sends run, passes come every few outcomes: announcements are looked for at
        # most every ANNOUNCE_EVERY then (one query less per claim); when idle, every pass.
        if self.notifier is not None and (free == self.concurrency or time.monotonic() >= self._announce_at):
            self._announce_at = time.monotonic() + ANNOUNCE_EVERY
            for row in self.store.needing_announcement(limit=20):
                if row.scheduled:
                    self.notifier.announce(row)
        if free <= 0 or self.stopping():
            return 0
        began = time.monotonic()
        claimed, missed, self._retry_in = self.store.claim_sending(
            self.owner, limit=free, lease=self.sending_lease, misfire_grace=self.misfire_grace,
            limit_of=self.limiters.limit_of, sweep_missed=sweep,
        )
        starts = self._slots.starts(claimed, time.time())
        self.limiters.seen_unpaused(claimed, began)
        report_missed(self, missed)
        with self._inflight_lock:
            self._inflight += len(claimed)
            self._queued.update(r.id for r in claimed)
        for row, start in zip(claimed, starts, strict=True):
            future = self._pool.submit(self._run, row, start)
            future.add_done_callback(self._cancelled)
        return len(claimed)

    def _cancelled(self, future: Future[None]) -> None:
        if future.cancelled():  # stop() cancelled it before it ran: _run's finally never comes
            self._done_one()

    def _run(self, row: MessageRow, slot_at: float = 0.0) -> None:
        try:
            self._send_claimed(row, slot_at)
        except Exception:
            log.exception("processing message %s failed", row.id)
        finally:
            self._done_one()

    def _done_one(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()
            # Claim again once half the pool is free, not for each thread that frees:
            # a claim then takes several rows in its one transaction.
            refill = self._inflight <= self.concurrency - self._refill
        if refill:
            self._wake.set()

    # -- one message

    def _send_claimed(self, row: MessageRow, slot_at: float = 0.0) -> MessageRow | None:
        """A row claim_sending took (`sending`, or `claimed` until its slot at `slot_at`): the call,
        unless we stop or the sender was paused meanwhile (then it goes back to pending, unsent)."""
        if row.slot_delay > 0:  # bounded, whatever the clocks say (tests freeze time)
            self._stop.wait(max(0.0, min(row.slot_delay + RESERVE_AHEAD, slot_at - time.time())))
        if self.notifier is not None and row.needs_announce and not row.thread_ts and row.bulk_job_id is None:
            row = self.notifier.announce(row)
        provider = self.senders.get(row.sender)
        with self._inflight_lock:
            mine = row.id in self._queued  # stop() may have given it back already
            self._queued.discard(row.id)
            give_back = mine and self.stopping()
        if not mine:
            return None
        if give_back or (provider is not None and self.limiter(row.sender).paused()):
            return hand_back(self.store, row, self.owner)
        if (sending := commit_sending(self.store, row, self.owner, self.sending_lease)) is None:
            return None
        row = sending
        if provider is None:
            return self._report(self._writer.record(
                row.id, "failed", error=f"Sender '{row.sender}' is no longer configured.", error_kind="config"))
        return self._call(provider, row)

    def process(self, row: MessageRow) -> MessageRow | None:
        """Send one row claimed with claim_one (the CLI sends its own message)."""
        if self.notifier is not None and row.needs_announce and not row.thread_ts and row.bulk_job_id is None:
            row = self.notifier.announce(row)
        provider = self.senders.get(row.sender)
        if provider is None:
            if not self.store.mark_sending(row.id, self.owner, lease=self.lease):
                return None
            final = self.store.record_outcome(
                row.id, "failed", error=f"Sender '{row.sender}' is no longer configured.", error_kind="config"
            )
            return self._report(final)
        # No row sits out a long 429 pause (its claim could expire while it waits).
        if not self.limiter(row.sender).acquire(self._stop, max_pause_wait=2.0) or self.stopping():
            self.store.unclaim([row.id], self.owner)  # goes back unsent, never `unknown`
            return None
        if not self.store.mark_sending(row.id, self.owner, lease=self.sending_lease):
            return report_stopped(self, self.store.get(row.id))  # consent stopped it, or not ours
        fresh = self.store.get(row.id)  # send exactly what is stored now
        return self._call(provider, fresh or row.model_copy(update={"attempts": row.attempts + 1}))

    def _call(self, provider: Provider, row: MessageRow) -> MessageRow | None:
        """The provider call for a row committed `sending` (row.attempts counts this one)."""
        if refusal := row_refusal(ConversationQueries(self.store), row.sender, row.to_number, row.payload):
            return self._report(self._writer.record(row.id, "failed", error=refusal, error_kind="window"))
        msg = OutboundMessage.model_validate(row.payload)
        msg.reference = f"smsbot-{row.id}"
        try:
            result: SendResult = self.meter.send(provider, msg, row)
        except Exception as exc:
            if not isinstance(exc, ProviderError):
                log.error("unexpected error sending message %s: %s", row.id, type(exc).__name__)
            return self._record(row, outcome_of(exc, provider, row.attempts, self.max_attempts))
        final = self._writer.record(row.id, "sent", provider_message_id=result.provider_message_id,
                                    delivery=result.status)
        return self._report(final)

    def _record(self, row: MessageRow, outcome: Outcome) -> MessageRow | None:
        """A failed call's outcome (the policy of bot.core.outcomes): a final state, or a retry."""
        if outcome.pause is not None:
            self.limiter(row.sender).pause(outcome.pause)
        if outcome.state == "retry":
            self.store.release(row.id, time.time() + outcome.wait, error=outcome.error, error_kind=outcome.kind)
            self.wake()
            return self.store.get(row.id)
        return self._report(self._writer.record(row.id, outcome.state, error=outcome.error,
                                                error_kind=outcome.kind))

    def _report(self, row: MessageRow | None) -> MessageRow | None:
        if row is None:
            return None
        if self.notifier is not None and row.bulk_job_id is None:
            try:
                self.notifier.report_outcome(row)
            except Exception:
                log.exception("reporting message %s failed", row.id)
        for callback in self.on_final:
            try:
                callback(row)
            except Exception:
                log.exception("on_final callback failed")
        return row


def report_missed(d: Dispatcher, missed: list[MessageRow]) -> None:
    """A claim's missed schedules ("Send now / Cancel?") and the rows its consent check stopped."""
    d.meter.missed([r for r in missed if r.status == "missed"])  # the others: consent stopped them
    for row in missed:
        if report_stopped(d, row) is None and d.notifier is not None and row.bulk_job_id is None:
            if not row.thread_ts:
                row = d.notifier.announce(row)
            d.notifier.report_missed(row)


def report_stopped(d: Dispatcher, row: MessageRow | None) -> MessageRow | None:
    """A row the claim's consent check stopped ("not sent: opted out on ..."): told like a failure.
    None for any other row (a missed schedule)."""
    if row is None or row.error_kind != "opted_out":
        return None
    if d.notifier is not None and row.needs_announce and not row.thread_ts and row.bulk_job_id is None:
        row = d.notifier.announce(row)
    return d._report(row)
