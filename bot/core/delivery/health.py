"""Sender health: a run of sender-level failures raises one alert, the next success another."""

from __future__ import annotations

from collections.abc import Callable

from bot.core.delivery.rules import SENDER_LEVEL_KINDS
from bot.core.ports_delivery import DeliveryView, SenderAlert
from storage.delivery import DeliveryQueries
from storage.store import MessageRow

# How the dispatcher words a row whose worker died mid-send (says nothing about the provider).
REAPED_PREFIX = "The worker stopped"


def alert_for(row: MessageRow, queries: DeliveryQueries, label: str) -> SenderAlert | None:
    """The alert this final row raises, if any (the store counts the run and says when to speak)."""
    if row.status == "sent":
        if queries.health_success(row.sender):
            return SenderAlert(row.sender, label, row.id, working=True)
        return None
    reaped = row.status == "unknown" and (row.error or "").startswith(REAPED_PREFIX)
    if row.status in ("failed", "unknown") and row.error_kind in SENDER_LEVEL_KINDS and not reaped:
        count = queries.health_failure(row.sender, row.error_kind, row.error)
        if count is not None:
            return SenderAlert(row.sender, label, row.id, working=False, count=count, error=row.error)
    return None


class SenderHealth:
    def __init__(self, queries: DeliveryQueries, label: Callable[[str], str], view: DeliveryView,
                 notify_channel: str | None) -> None:
        self.queries = queries
        self.label = label
        self.view = view
        self.notify_channel = notify_channel

    def observe(self, row: MessageRow) -> None:
        alert = alert_for(row, self.queries, self.label(row.sender))
        if alert is not None:
            self.view.sender_alert(self.notify_channel, alert)
