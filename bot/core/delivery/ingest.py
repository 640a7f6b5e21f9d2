"""Delivery events (webhooks, the sandbox, the reconciler) -> the store -> notices.

The store dedupes and only moves a row forward (`Store.apply_delivery_event`); an event for
a message we do not know may still settle an `unknown` send when Bird echoes our reference.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.core.delivery.notices import Notices
from bot.core.delivery.rules import family_of
from providers.events import DeliveryEvent
from storage.delivery import DeliveryQueries
from storage.store import MessageRow, Store

REFERENCE_PREFIX = "smsbot-"


class Ingest:
    def __init__(self, store: Store, queries: DeliveryQueries, label: Callable[[str], str],
                 notices: Notices) -> None:
        self.store = store
        self.queries = queries
        self.label = label
        self.notices = notices
        self.ingested = 0
        #: called with each row a delivery event changed (consent: a failure meaning "opted out")
        self.on_changed: list[Callable[[MessageRow], None]] = []

    def __call__(self, event: DeliveryEvent, reference: str | None = None) -> str:
        """Record one event; returns what happened: applied, duplicate or stale (a replay too),
        or ignored (not about a message of ours)."""
        occurred = event.occurred_at.timestamp() if event.occurred_at else None
        changed, row = self.store.apply_delivery_event(
            event.provider, event.provider_message_id, event.status, event.error, occurred
        )
        self.ingested += 1
        if row is None and reference and event.status != "unknown":
            row = self.adopt_by_reference(event, reference)
            changed = row is not None
        if row is None:
            # An exact replay of an event already recorded for one of our messages, or an
            # event for a message we never sent (recorded, not an error).
            if self.queries.event_is_ours(event.provider, event.provider_message_id, event.status):
                return "duplicate or stale"
            return "ignored"
        if not changed:
            return "duplicate or stale"
        self.notices.changed(row)
        for hook in self.on_changed:
            hook(row)
        return "applied"

    def adopt_by_reference(self, event: DeliveryEvent, reference: str) -> MessageRow | None:
        """Bird echoes our reference `smsbot-<row id>`: it settles a send recorded as unknown."""
        number = reference[len(REFERENCE_PREFIX):]
        if not reference.startswith(REFERENCE_PREFIX) or not number.isdigit():
            return None
        row = self.store.get(int(number))
        if row is None or row.status != "unknown" or family_of(row.sender) != event.provider:
            return None
        note = f"{self.label(row.sender)} reported this message (reference {reference}), so it was sent."
        if not self.queries.settle_unknown(row.id, "sent", provider_message_id=event.provider_message_id,
                                           error=note):
            return None
        fresh = self.store.get(row.id)
        if fresh is None:
            return None
        _, updated = self.queries.adopt_orphans(fresh)
        return updated if updated is not None else fresh
