"""Delivery results: provider events -> the store -> the thread, the notify channel, alerts.

    webhook / sandbox / reconciler
        -> DeliveryEngine.ingest(event)     store.apply_delivery_event (dedupe, forward only)
        -> DeliveryView.line_changed(id)    coalesced on the Slack side: latest state wins
        -> DeliveryView.tell_failure / result_notice / sender_alert / note_*

This module wires the Slack-free parts (ingest.py, notices.py, health.py, reconcile.py,
timers.py) and runs their threads: the reconciler loop and the sandbox's timers. The view
(the port in bot/core/ports_delivery.py) is built by the composition root; its Slack
implementation is bot/slack/delivery_view.py. The SQL for adopting early events, settling
`unknown` rows and sender health lives in storage/delivery.py (`DeliveryQueries`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.core.config import Settings
from bot.core.delivery import rules
from bot.core.delivery.health import SenderHealth
from bot.core.delivery.ingest import Ingest
from bot.core.delivery.notices import Notices
from bot.core.delivery.reconcile import Reconciler
from bot.core.delivery.timers import Timers
from bot.core.ports_delivery import BulkFollower, DeliveryView, FinalHooks
from bot.core.senders import Senders
from providers.events import DeliveryEvent, EventStatus
from providers.sandbox import SandboxProvider
from storage.delivery import DeliveryQueries
from storage.store import MessageRow, Store

log = logging.getLogger("smsbot.delivery")

SANDBOX_SENT_AFTER = 0.5
SANDBOX_DELIVERED_AFTER = 1.5


class DeliveryEngine:
    """The delivery service: one per process, started once, stopped after the dispatcher."""

    def __init__(self, store: Store, settings: Settings, senders: Senders, view: DeliveryView, *,
                 dispatcher: FinalHooks | None = None,
                 bulk: Callable[[], BulkFollower | None] | None = None,
                 lead: Callable[[], bool] | None = None) -> None:
        self.store = store
        # Once per fleet (bot/core/fleet.py): reconciliation and the redraw of dirty lines.
        self.lead = lead or (lambda: True)
        self.settings = settings
        self.senders = senders
        self.view = view
        self.dispatcher = dispatcher
        self.queries = DeliveryQueries(store)
        self.reconcile_interval = float(settings.sms_reconcile_interval)
        self.notices = Notices(view, settings.sms_notify_channel, settings.sms_notify_on)
        self.health = SenderHealth(self.queries, self.label, view, settings.sms_notify_channel)
        self._ingest = Ingest(store, self.queries, self.label, self.notices)
        self.reconciler = Reconciler(store, self.queries, senders, view, self.notices,
                                     float(settings.sms_reconcile_window), hooks=dispatcher, bulk=bulk,
                                     skip=self.on_final)
        self.timers = Timers()
        self._reconcile_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._warned: set[str] = set()

    @property
    def on_changed(self) -> list[Callable[[MessageRow], None]]:
        """Hooks for rows a delivery event changed (the consent book records opt-out errors)."""
        return self._ingest.on_changed

    @property
    def outbox(self) -> DeliveryView:
        """The view under its old name (tests and the benchmark flush it)."""
        return self.view

    @property
    def ingested(self) -> int:
        return self._ingest.ingested

    # -- lifecycle

    def start(self) -> None:
        self.view.start()
        if self.lead():
            self.redraw_dirty()
        if self.dispatcher is not None:
            self.dispatcher.on_final.append(self.on_final)
            if self.reconcile_interval > 0:
                self._reconcile_thread = threading.Thread(target=self._reconcile_loop, name="smsbot-reconciler",
                                                          daemon=True)
                self._reconcile_thread.start()
        sandbox = self.senders.providers.get("sandbox")
        if isinstance(sandbox, SandboxProvider):
            sandbox.on_accepted = self.sandbox_accepted

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.timers.stop()
        self.view.stop(timeout)
        if self._reconcile_thread is not None:
            self._reconcile_thread.join(timeout)

    def redraw_dirty(self) -> int:
        """Redraw every status line the store says Slack has not taken (e.g. before a restart)."""
        ids = self.queries.dirty_ids()
        for message_id in ids:
            self.view.line_changed(message_id, delay=0)
        if ids:
            log.info("redrawing %d out-of-date status line(s)", len(ids))
        return len(ids)

    def warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    # -- what is configured

    def reports_on(self, sender: str) -> bool:
        return rules.reports_on(self.settings, sender)

    def label(self, sender: str) -> str:
        return self.senders.label(sender)

    # -- ingestion (webhooks, sandbox, reconciler all come through here)

    def ingest(self, event: DeliveryEvent, reference: str | None = None) -> str:
        """Record one event; returns what happened: applied, duplicate or stale, unknown message."""
        return self._ingest(event, reference)

    # -- outcomes from the dispatcher

    def on_final(self, row: MessageRow) -> None:
        """Called by the dispatcher for each row reaching a final state (any thread)."""
        self.health.observe(row)
        if row.status == "sent":
            if row.provider_message_id:
                changed, adopted = self.queries.adopt_orphans(row)
                if changed and adopted is not None:
                    self.notices.changed(adopted)
                    return
            if row.bulk_job_id is None and not self.reports_on(row.sender):
                # Say in the thread that this is the last state we will know of.
                if row.thread_ts:
                    self.queries.mark_dirty(row.id)  # flagged before the redraw, for a restart
                self.view.line_changed(row.id, delay=0.2)
                if self.notices.notify_on == "all":
                    self.notices.result(row)
        elif row.status in ("failed", "unknown") and row.bulk_job_id is None:
            self.notices.result(row)

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
            if not self.lead():
                continue
            try:
                self.reconcile_once()
            except Exception:
                log.exception("reconciliation pass failed")

    def reconcile_once(self, now: float | None = None) -> dict[int, str]:
        """Settle `unknown` sends where the provider can tell. Returns {row id: what happened}."""
        return self.reconciler.reconcile_once(now)
