"""Customers' messages in: stored once, attached to their contact's conversation, shown in Slack.

`ConversationEngine.ingest` is what the webhooks, the sandbox echo and `smsbot simulate
inbound` call. The answer goes back once the message is stored; showing it in Slack runs on
one background thread (`IdWorker`), and messages stored but never shown (a crash, Slack
down) are shown at the next start. A message is never dropped: with no thread and no
channel to open one in, it stays listed by `/sms inbox` and the App Home.

Two seams for other features (consent, issue 14): for each newly stored message, the
`on_consent` hooks run first with the fact it carries (a Sociocs blocked contact), then the
`on_message` hooks; a fact alone (TextUs opt-out events) runs `on_consent` with no row. A
re-delivered message runs no hook. Hooks may leave a note for the message's thread
(`note_after`: posted right after the message) or for a contact's thread (`note_contact`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import NamedTuple

from bot.core.conversations.replies import Replies
from bot.core.conversations.window import window_until
from bot.core.conversations.worker import IdWorker
from bot.core.ports import Posted
from bot.core.ports_conversations import ConversationView
from providers.inbound import ConsentEvent, InboundMessage, InboundResult
from storage.conversations import Conversation, ConversationQueries, InboundRow, NewInbound, ThreadUpdate
from storage.store import MessageRow, Store

log = logging.getLogger("smsbot.conversations")

ECHO_SUFFIX = "0000"  # sandbox sends to such numbers get an answer back (sandbox_echo)
MessageHook = Callable[[InboundRow, InboundMessage], None]
ConsentHook = Callable[[ConsentEvent, "InboundRow | None"], None]


class HooksFailed(RuntimeError):
    """A hook failed on a stored message or fact: answer so that the provider retries."""


class Target(NamedTuple):
    channel: str
    thread_ts: str | None  # None: open a new thread
    mention: str | None
    adopted_at: float | None = None  # a send's thread newer than the conversation's: when it was made


def log_consent(event: ConsentEvent, _row: InboundRow | None = None) -> None:
    """The default consent hook: record the fact in the log (acting on it is issue 14's)."""
    log.info("consent event from %s: %s (%s, number ending %s)", event.provider, event.action, event.source,
             event.number[-4:])


def new_inbound(msg: InboundMessage) -> NewInbound:
    return NewInbound(
        provider=msg.provider, provider_message_id=msg.provider_message_id, sender=msg.sender,
        channel=msg.channel, from_number=msg.from_number, to_number=msg.to_number,
        contact_name=msg.contact_name,
        # A kind of message we do not render (a Bird location...) still says that it came.
        text=msg.text or (f"[a {msg.unsupported_type} message: see it at the provider]" if msg.unsupported_type else ""),
        media=[m.model_dump(exclude_none=True) for m in msg.media],
        received_at=msg.received_at.timestamp() if msg.received_at else time.time(),
    )


def summary(msg: InboundMessage) -> str:
    media = f"[{len(msg.media)} attachment{'s' if len(msg.media) > 1 else ''}]" if msg.media else ""
    return " ".join(p for p in (msg.text.strip(), media) if p) or f"[{msg.unsupported_type or 'empty'} message]"


class ConversationEngine:
    def __init__(self, store: Store, view: ConversationView | None, *, inbox_channel: str | None = None,
                 notify_channel: str | None = None) -> None:
        self.store = store
        self.queries = ConversationQueries(store)
        self.view = view
        self.inbox_channel = inbox_channel
        self.notify_channel = notify_channel
        self.on_message: list[MessageHook] = []
        self.on_consent: list[ConsentHook] = [log_consent]
        self.worker = IdWorker(self.show, poll=self._unposted_settled)
        self._unposted_seen: set[int] = set()
        #: answering from threads (set by the composition root, which has the SendService)
        self.replies: Replies | None = None
        self.ingested = 0

    # -- lifecycle

    def start(self) -> None:
        for row in self.queries.unposted():
            self.worker.put(row.id)
        self.worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.worker.stop(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        return self.worker.flush(timeout)

    def _unposted_settled(self) -> list[int]:
        """Messages another process stored and nobody showed, seen on two polls in a row: the
        storing process's hooks have left their notes by then (this one's are put at once)."""
        ids = [r.id for r in self.queries.unposted(100)]
        ready = [i for i in ids if i in self._unposted_seen]
        self._unposted_seen = set(ids) - set(ready)
        return ready

    # -- in

    def ingest(self, result: InboundResult) -> str:
        """Store what a webhook carried; returns what happened (stored, duplicate, consent)."""
        if result.message is not None:
            # A fact riding on a message (Sociocs is_blocked) counts once, with the message.
            return self.ingest_message(result.message, result.consent)
        if result.consent is not None:  # TextUs opt-out events: the hooks dedupe on provider_ref
            if self._run_hooks(self.on_consent, result.consent, None):
                raise HooksFailed("a consent hook failed: the provider's retry applies the event again")
            return "consent"
        return "ignored"

    def ingest_message(self, msg: InboundMessage, consent: ConsentEvent | None = None) -> str:
        """Store it, run its hooks, queue it to be shown. HooksFailed (the webhook answers 503)
        when a hook failed: the message is kept and shown, and the provider's retry runs its
        hooks again (a STOP is never lost to a passing database error)."""
        row, conv = self.queries.ingest(new_inbound(msg), msg.sender or msg.provider, summary=summary(msg))
        self.ingested += 1
        if conv is None:
            return "duplicate"  # the provider re-delivered it: nothing changes
        # The fact before the text: a START in a blocked contact's message lifts what it re-asserts.
        failed = self._run_hooks(self.on_consent, consent, row) if consent is not None else 0
        failed += self._run_hooks(self.on_message, row, msg)
        self.worker.put(row.id)
        if failed:
            raise HooksFailed(f"{failed} hook(s) failed for inbound message #{row.id}")
        self.queries.hooks_done(row.id)
        return "stored"

    # -- notes the hooks leave

    def note_after(self, inbound_id: int, text: str) -> None:
        """A note for the thread a stored message is shown in, posted right after it (stored
        with the message: `smsbot simulate inbound` leaves it for the running smsbot)."""
        self.queries.add_note(inbound_id, text)

    def note_contact(self, number: str, text: str, sender: str | None = None) -> int:
        """A note in the thread of the contact's conversation (with `sender`; every sender's
        when None), or of the last send to them when they never wrote; how many were posted."""
        if self.view is None:
            return 0
        convs = self.queries.with_number(number)
        convs = [c for c in convs if sender is None or c.sender == sender]
        threads = {(t.channel, t.thread_ts) for c in convs if (t := self.place(c)) is not None and t.thread_ts}
        if not convs and sender is not None and (sent := self.queries.latest_send_thread(number, sender)):
            threads.add((sent.channel, sent.ts))
        for channel, ts in sorted(threads):
            self.view.note(channel, ts, text)
        return len(threads)

    @staticmethod
    def _run_hooks(hooks: list[Callable[..., None]], *args: object) -> int:
        """Run every hook (one failing does not stop the next); how many failed."""
        failed = 0
        for hook in hooks:
            try:
                hook(*args)
            except Exception:
                log.exception("an inbound hook failed")
                failed += 1
        return failed

    def sandbox_echo(self, row: MessageRow) -> None:
        """The sandbox answers sends to numbers ending in 0000, through the same path as a webhook,
        so demos and tests see two-way traffic without a provider account."""
        if row.sender != "sandbox" or row.status != "sent" or not row.to_number.endswith(ECHO_SUFFIX):
            return
        text = str(row.payload.get("text") or "") if isinstance(row.payload, dict) else ""
        # The sandbox has no provider family of its own; its echoes are keyed apart by id.
        with contextlib.suppress(HooksFailed):  # logged; the echo itself is stored and shown
            self.ingest_message(InboundMessage(
                provider="sociocs", sender="sandbox", channel="sms", from_number=row.to_number,
                text=f"Echo: {text}"[:1600], provider_message_id=f"sandbox-echo-{row.id}"))

    # -- out to people

    def place(self, conv: Conversation) -> Target | None:
        """Where the contact's messages go: the most recent thread used with them, else a new one."""
        latest = self.queries.latest_send_thread(conv.number, conv.sender)
        if latest is not None and (conv.thread_at is None or latest.created_at > conv.thread_at):
            return Target(latest.channel, latest.ts, latest.created_by or conv.mention, latest.created_at)
        if conv.thread_channel and conv.thread_ts:
            return Target(conv.thread_channel, conv.thread_ts, conv.mention)
        return self._new_thread_target(conv)

    def _new_thread_target(self, conv: Conversation) -> Target | None:
        channel = self.inbox_channel or self.notify_channel
        return Target(channel, None, conv.mention) if channel else None

    def show(self, inbound_id: int) -> None:
        """Post one stored message where its conversation lives (runs on the worker thread)."""
        row = self.queries.inbound(inbound_id)
        conv = self.queries.get(row.conversation_id) if row is not None and row.conversation_id is not None else None
        if row is None or row.posted or conv is None:
            return
        where = self._show(conv, row)
        if where is not None and self.view is not None:
            for text in row.notes:
                self.view.note(where.channel, where.ts, text)

    def _show(self, conv: Conversation, row: InboundRow) -> Posted | None:
        """Post the message; the thread it is in now (None: not in Slack, or posted elsewhere)."""
        target = self.place(conv)
        posted = self._post(conv, row, target) if target is not None else None
        if posted is None and self._posted_elsewhere(row.id):
            return None  # another process posted it (the post is claimed once across the fleet)
        if posted is None and target is not None and target.thread_ts is not None:
            # The thread is out of reach (deleted, archived channel): a new one in the inbox.
            target = self._new_thread_target(conv)
            posted = self._post(conv, row, target) if target is not None else None
        if posted is None or target is None:
            log.warning("inbound message #%s is not in Slack: listed by /sms inbox and the App Home", row.id)
            self.queries.mark_posted(row.id, None, None)
            return None
        # The conversation's thread from now on: the one just opened, or the send's it adopted.
        thread = None
        if target.thread_ts is None:
            thread = ThreadUpdate(conv.id, posted.channel, posted.ts, time.time(), None)
        elif target.adopted_at is not None:
            thread = ThreadUpdate(conv.id, target.channel, target.thread_ts, target.adopted_at, target.mention)
        self.queries.mark_posted(row.id, posted.channel, posted.ts, thread)
        return Posted(target.channel, target.thread_ts) if target.thread_ts is not None else posted

    def _posted_elsewhere(self, inbound_id: int) -> bool:
        """Posted, or being posted by another process (a refused post releases its claim)."""
        fresh = self.queries.inbound(inbound_id)
        return fresh is None or fresh.posted or (fresh.posting_until or 0.0) > time.time()

    def _post(self, conv: Conversation, row: InboundRow, target: Target) -> Posted | None:
        if self.view is None:
            return None
        return self.view.post_inbound(conv, row, channel=target.channel, thread_ts=target.thread_ts,
                                      mention=target.mention, window_until=window_until(conv.last_whatsapp_at))
