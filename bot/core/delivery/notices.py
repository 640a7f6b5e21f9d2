"""Who hears about a changed row: its thread's status line, its sender, the notify channel."""

from __future__ import annotations

from collections.abc import Callable

from bot.core.delivery.rules import delivery_failed
from bot.core.ports_delivery import DeliveryView
from storage.store import MessageRow


class Notices:
    """The policy (SMS_NOTIFY_CHANNEL, SMS_NOTIFY_ON) over the view that shows things."""

    def __init__(self, view: DeliveryView, notify_channel: str | None, notify_on: str) -> None:
        self.view = view
        self.notify_channel = notify_channel
        self.notify_on = notify_on
        #: called with each row a delivery event moved forward (conversations mark replies)
        self.on_changed: list[Callable[[MessageRow], None]] = []

    def changed(self, row: MessageRow) -> None:
        """A delivery event moved the row forward."""
        if row.bulk_job_id is not None:
            return  # bulk progress and summaries are the bulk job's
        for hook in self.on_changed:
            hook(row)
        if row.thread_ts:
            # The store flagged the line (status_dirty) in the event's own transaction.
            self.view.line_changed(row.id)
        if row.delivery == "failed":
            self.view.tell_failure(row)
            self.result(row)
        elif row.delivery == "delivered":
            self.result(row)

    def settled(self, row: MessageRow) -> None:
        """Reconciliation settled a single (not bulk) send."""
        if row.thread_ts:
            self.view.line_changed(row.id)
        if delivery_failed(row):
            self.view.tell_failure(row)
        self.result(row)

    def result(self, row: MessageRow) -> None:
        """The notify channel's line about a final result, if the settings ask for it."""
        if not self.notify_channel or self.notify_on == "none":
            return
        if self.notify_on == "failures" and not (delivery_failed(row) or row.status == "unknown"):
            return
        self.view.result_notice(self.notify_channel, row)
