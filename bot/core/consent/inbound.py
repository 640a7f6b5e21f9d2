"""Customers' messages and provider facts into consent: the ConversationEngine's hooks.

Per newly stored message the engine runs `on_consent` (a fact it carries, a Sociocs blocked
contact) before `on_message` (its text: STOP, START, HELP), so a START in a blocked contact's
message lifts what the same payload re-asserts. A re-delivered message runs neither. A fact
without a message (TextUs contact.opted_out / opted_in) is applied once per provider id, and
never over a newer change (a late retry of an opt-out does not undo the opt-in after it).
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from bot.core.consent.book import ConsentBook, families_of
from bot.core.consent.replies import reply_request
from bot.core.conversations.engine import ConversationEngine
from bot.core.sending import SendService, UserError
from providers.inbound import ConsentEvent, InboundMessage
from storage.conversations import InboundRow

log = logging.getLogger("smsbot.consent")


class OptOutCounter(Protocol):
    def opt_out(self, provider: str) -> None: ...


class ConsentInbound:
    def __init__(self, book: ConsentBook, service: SendService, engine: ConversationEngine,
                 metrics: OptOutCounter | None = None) -> None:
        self.book = book
        self.service = service
        self.engine = engine
        self.metrics = metrics

    def attach(self) -> None:
        """Register the hooks, first in each list: consent is decided before anything else runs."""
        self.engine.on_consent.insert(0, self.on_consent)
        self.engine.on_message.insert(0, self.on_message)

    def on_consent(self, event: ConsentEvent, row: InboundRow | None) -> None:
        if row is None and not self._fresh(event):
            return
        note = self.book.apply_consent_event(event)
        if row is None and event.provider_ref:  # applied: a re-delivery of this event changes nothing
            self.book.store.first_time(self._seen_key(event))
        if note is None:
            return
        if event.action == "opted_out" and self.metrics is not None:
            self.metrics.opt_out(event.provider)
        if row is not None:
            self.engine.note_after(row.id, note)
        else:
            self.engine.note_contact(event.number, note, event.sender)

    @staticmethod
    def _seen_key(event: ConsentEvent) -> str:
        return f"consent-event:{event.provider}:{event.provider_ref}"

    def _fresh(self, event: ConsentEvent) -> bool:
        """A fact alone: not seen before (its provider id) and not older than the state it would change."""
        if event.provider_ref and self.book.store.seen(self._seen_key(event)):
            return False
        if event.occurred_at is None:
            return True
        when = event.occurred_at.timestamp()
        states = [self.book.queries.state(event.number, f) for f in families_of(event.sender, event.channel)]
        return not any(s is not None and s.changed_at > when for s in states)

    def on_message(self, row: InboundRow, msg: InboundMessage) -> None:
        action = self.book.on_inbound_text(msg.from_number, msg.sender, msg.text, msg.channel)
        if action.kind == "opt_out" and action.new and self.metrics is not None:
            self.metrics.opt_out(msg.provider)
        if action.thread_note:
            self.engine.note_after(row.id, action.thread_note)
        channel: Literal["sms", "whatsapp"] = msg.channel
        req = reply_request(action, msg.from_number, msg.sender, str(row.id), channel)
        if req is None:
            return
        try:
            # Keyed on the stored message's id: a retried webhook stores nothing, sends nothing.
            self.service.submit(req)
        except UserError as exc:
            log.warning("the automatic %s reply to inbound message #%s was not sent: %s", action.kind, row.id,
                        exc.message)
