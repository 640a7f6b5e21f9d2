"""Delivery results in Slack: the DeliveryView port (bot/core/ports_delivery.py) over SlackOutbox.

Status lines are rendered when the outbox's thread gets to them, from the row as it is then
(coalescing: the latest state wins); every other result is a post, queued in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot.core.ports_delivery import SenderAlert
from bot.slack.blocks.history import channel_notice, failure_reply, status_line
from bot.slack.context import AppContext
from bot.slack.metered import MeteredWebClient, counting
from bot.slack.once import PostOnce, status_line_hooks
from bot.slack.outbox import SlackOutbox
from bot.slack.text import escape, shown
from providers.base import redact
from storage.delivery import DeliveryQueries
from storage.store import MessageRow, Store

log = logging.getLogger("smsbot.delivery")

RECENT_SEND = 10.0  # seconds in which Notifier.report_outcome is expected to post the status line


def delivery_client(client: WebClient) -> WebClient:
    """A client like the app's, without built-in 429 retries: a rate limit re-renders the latest
    state instead of replaying a stale update."""
    on_retry = getattr(client, "on_retry", None)  # the app's metrics hooks, when it has them
    return MeteredWebClient(token=client.token, base_url=client.base_url, timeout=10,
                            retry_handlers=[counting(ConnectionErrorRetryHandler(max_retry_count=2), on_retry)],
                            on_error=getattr(client, "on_error", None), on_retry=on_retry)


def alert_text(alert: SenderAlert) -> str:
    if alert.working:
        return f":white_check_mark: {alert.label} works again: message #{alert.message_id} went through."
    return (
        f":rotating_light: {alert.label} keeps failing ({alert.count} sends in a row): {shown(alert.error, 1000)} "
        f"Sends through `{alert.sender}` fail until this is fixed; I'll say here when it works again."
    )


class SlackDeliveryView:
    """DeliveryView for Slack. `outcome_text` words a failed send's line (the Notifier's)."""

    def __init__(self, client: WebClient, store: Store, secrets: list[str], *, label: Callable[[str], str],
                 reports_on: Callable[[str], bool], outcome_text: Callable[[MessageRow], str],
                 hold: float = 0.25) -> None:
        self.store = store
        self.queries = DeliveryQueries(store)
        self.label = label
        self.reports_on = reports_on
        self.outcome_text = outcome_text
        self.outbox = SlackOutbox(client, secrets, self._render, hold=hold, forget=self.queries.clear_dirty)
        # The status line is the Notifier's too: both claim it under one key (bot/slack/once.py).
        self.once = PostOnce(client, store)

    @property
    def calls(self) -> int:
        """Slack calls made, for the benchmark."""
        return self.outbox.calls

    # -- lifecycle

    def start(self) -> None:
        self.outbox.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.outbox.stop(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        return self.outbox.flush(timeout)

    # -- the port

    def line_changed(self, message_id: int, delay: float | None = None) -> None:
        self.outbox.touch(message_id, delay)

    def tell_failure(self, row: MessageRow) -> None:
        if row.thread_channel and row.thread_ts:
            self.outbox.post(row.thread_channel, failure_reply(row, self.label(row.sender)), row.thread_ts)
        elif row.created_by:
            self.outbox.post(row.created_by, failure_reply(row, self.label(row.sender)))

    def result_notice(self, channel: str, row: MessageRow) -> None:
        self.outbox.post(channel, channel_notice(row, self.label(row.sender)))

    def sender_alert(self, channel: str | None, alert: SenderAlert) -> None:
        text = alert_text(alert)
        if channel:
            self.outbox.post(channel, text)
        else:
            log.warning("%s (set SMS_NOTIFY_CHANNEL to get this in Slack)", redact(text, self.outbox.secrets))

    def note_unknown(self, row: MessageRow, note: str) -> None:
        if row.thread_channel and row.thread_ts:
            self.outbox.post(row.thread_channel, f":mag: #{row.id}: {escape(note)}", row.thread_ts)

    def note_bulk_unknown(self, job_id: int, channel: str, thread_ts: str, note: str) -> None:
        self.outbox.post(channel, f":mag: Bulk #{job_id}: the unknown recipients stay unknown. {escape(note)}",
                         thread_ts)

    def note_no_lookup(self, row: MessageRow, how: str) -> None:
        if row.thread_channel and row.thread_ts:
            self.outbox.post(row.thread_channel, f":mag: #{row.id}: {how}", row.thread_ts)

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """Any other post that must not run on the caller's thread (e.g. a bulk summary)."""
        self.outbox.post(channel, text, blocks=blocks)

    # -- the status line, drawn on the outbox's thread

    def _line_text(self, row: MessageRow) -> str | None:
        if row.status == "sent":
            text = status_line(row, self.label(row.sender), self.reports_on(row.sender))
            if row.error_kind == "reconciled" and row.error:
                text += f" {shown(row.error, 1000)}"
            return text
        if row.status == "failed":
            return self.outcome_text(row)  # escapes and caps the provider text itself
        return None

    def _render(self, message_id: int) -> Callable[[], None] | None:
        row = self.store.get(message_id)
        if row is None:
            return None
        text = self._line_text(row) if row.thread_channel and row.thread_ts else None
        if text is None:  # no thread, or nothing a line shows: nothing to draw
            self.queries.clear_dirty(message_id, row.updated_at)
            return None
        if row.status_ts:
            return self._updater(row, str(row.thread_channel), row.status_ts, text)
        if time.time() - (row.sent_at or row.updated_at) < RECENT_SEND:
            # The dispatcher is about to post the status line: update it then, not a second line.
            self.outbox.touch(message_id, delay=0.5)
            return None
        return self._poster(row, text)

    def _updater(self, row: MessageRow, channel: str, ts: str, text: str) -> Callable[[], None]:
        message_id, drawn_at = row.id, row.updated_at

        def update_line() -> None:
            self.outbox.update_line(message_id, channel, ts, text)
            self.queries.clear_dirty(message_id, drawn_at)

        return update_line

    def _poster(self, row: MessageRow, text: str) -> Callable[[], None]:
        drawn_at = row.updated_at
        channel, thread = str(row.thread_channel), str(row.thread_ts)
        recorded, record_ts = status_line_hooks(self.store, row)

        def record(channel_: str, ts: str) -> None:
            record_ts(channel_, ts)
            self.outbox.last_text[row.id] = text

        def post(meta: dict[str, Any]) -> dict[str, Any] | None:
            ts = self.outbox.post_now(channel, text, thread, metadata=meta)
            return {"channel": channel, "ts": ts} if ts else None

        def post_line() -> None:
            if self.once.post(f"status:{row.id}", channel, post, record, recorded, thread_ts=thread,
                              message_id=row.id):
                self.queries.clear_dirty(row.id, drawn_at)
            else:  # posted elsewhere (or found in Slack): our text goes in as an update
                self.outbox.touch(row.id, delay=0.5)

        return post_line


def notify_channel(ctx: AppContext, text: str, blocks: list[dict[str, Any]] | None = None) -> bool:
    """Post to SMS_NOTIFY_CHANNEL (e.g. a bulk job's summary), off the caller's thread.

    Returns False when no channel is configured. Rate limits are waited out, not dropped.
    """
    channel = ctx.settings.sms_notify_channel
    if not channel:
        return False
    view = ctx.delivery.view if ctx.delivery is not None else None
    if isinstance(view, SlackDeliveryView):
        view.post(channel, text, blocks=blocks)
        return True
    return ctx.notifier.post(channel, text, blocks) is not None
