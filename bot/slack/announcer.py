"""Everything the app says in Slack about a send: the visible message, its thread, fallbacks.

Slack errors never break a send: the outcome is in the store whatever Slack answers, and
a channel the bot cannot post in falls back to a DM with the person who asked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.input.phone import display
from bot.core.ports import Announcer
from bot.slack.blocks.schedules import CANCEL_ACTION, SEND_NOW_ACTION, row_buttons
from bot.slack.once import PostOnce, status_line_hooks
from bot.slack.text import MESSAGE_TEXT, cap, escape, fit_blocks, shown, truncate
from providers.base import redact
from storage.store import MessageRow, Store

log = logging.getLogger("smsbot.notify")

# Errors meaning "this channel is not for us": fall back to the person's DM.
UNREACHABLE = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action", "access_denied"}

STATUS_ICON = {
    "pending": ":hourglass_flowing_sand:",
    "claimed": ":hourglass_flowing_sand:",
    "sending": ":outbox_tray:",
    "sent": ":white_check_mark:",
    "failed": ":x:",
    "unknown": ":warning:",
    "canceled": ":no_entry_sign:",
    "missed": ":alarm_clock:",
}
# Provider error text is not ours: shown escaped and capped, a whole answer page is no help.
ERROR_SHOWN = 1000
DELIVERY_WORDS = {
    "accepted": "accepted by provider",
    "scheduled": "scheduled at the provider",
    "sent": "sent to the carrier",
    "delivered": "delivered",
    "read": "read",
    "failed": "delivery failed",
}


def when_text(ts: float, tz: str | None) -> str:
    zone = ZoneInfo(tz) if tz else UTC
    local = datetime.fromtimestamp(ts, zone)
    return local.strftime("%a %-d %b, %H:%M %Z")


def headline(row: MessageRow, label: str) -> str:
    # The summary and name are the customer-facing text as typed: escaped, so `<!channel>`
    # or `<https://evil|bank.com>` in an SMS cannot ping a channel or disguise a link here.
    who = f"<@{row.created_by}>" if row.created_by else escape(row.user_name or "smsbot")
    to = display(row.to_number)
    if row.name:
        to = f"{escape(row.name)} ({to})"
    return f"{who} → {to} via {label}: {shown(row.summary, 2500)}"


class Notifier(Announcer):
    """The Announcer port (bot.core.ports) in Slack: Slack errors are caught here."""

    def __init__(
        self,
        client: WebClient,
        store: Store,
        label_for: Callable[[str], str],
        secrets: list[str] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.label_for = label_for
        self.secrets = secrets or []
        self._lock = threading.Lock()
        # Claims each post across processes sharing the store (see bot/slack/once.py).
        self.once = PostOnce(client, store)

    def _clean(self, text: str) -> str:
        # Redact first (a secret must never be half-cut into view), then fit Slack's limit.
        return cap(redact(text, self.secrets), MESSAGE_TEXT)

    # -- low level

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None,
             thread_ts: str | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any] | None:
        try:
            resp = self.client.chat_postMessage(
                channel=channel, text=self._clean(text), blocks=fit_blocks(blocks), thread_ts=thread_ts,
                unfurl_links=False, metadata=metadata,
            )
            return resp.data if isinstance(resp.data, dict) else None
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else "unknown"
            if error in UNREACHABLE:
                raise
            log.warning("chat.postMessage failed: %s", error)
            return None
        except Exception as exc:  # network trouble: the store still holds the truth
            log.warning("chat.postMessage failed: %s", type(exc).__name__)
            return None

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None) -> bool:
        try:
            self.client.chat_update(channel=channel, ts=ts, text=self._clean(text), blocks=fit_blocks(blocks))
            return True
        except SlackApiError as exc:
            log.warning("chat.update failed: %s", exc.response.get("error") if exc.response is not None else "?")
        except Exception as exc:
            log.warning("chat.update failed: %s", type(exc).__name__)
        return False

    def ephemeral_or_dm(self, channel: str | None, user: str, text: str) -> None:
        """Tell one person something, wherever we can reach them."""
        if channel:
            try:
                self.client.chat_postEphemeral(channel=channel, user=user, text=self._clean(text))
                return
            except Exception:  # not in channel: DM instead
                pass
        try:
            self.client.chat_postMessage(channel=user, text=self._clean(text))
        except Exception as exc:
            log.warning("DM failed: %s", type(exc).__name__)

    # -- the visible message and its thread

    def announce_blocks(self, row: MessageRow, note: str | None = None) -> tuple[str, list[dict[str, Any]]]:
        label = self.label_for(row.sender)
        text = headline(row, label)
        if row.scheduled and row.status in ("pending", "missed"):
            text = f":alarm_clock: Scheduled for {when_text(row.due_at, row.user_tz)} (#{row.id}) — " + text
        elif row.status == "canceled":
            text = f":no_entry_sign: Canceled (#{row.id}) — " + text
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 2900)}}]
        if note:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(note, 2900)}]})
        if row.scheduled and row.status == "pending":
            blocks.append({"type": "actions", "block_id": f"schedule_{row.id}", "elements": row_buttons(row.id)})
        return text, blocks

    def announce(self, row: MessageRow) -> MessageRow:
        """Post the visible message for a send (once across processes) and remember its thread."""
        with self._lock:
            fresh = self.store.get(row.id) or row
            if fresh.thread_ts:
                return fresh
            target = fresh.channel_id or fresh.created_by
            if not target:
                self.store.set_announce_done(fresh.id)
                return fresh

            def announced() -> bool:
                now = self.store.get(fresh.id)
                return now is None or bool(now.thread_ts)

            def record(channel: str, ts: str) -> None:
                self.store.set_thread(fresh.id, channel, ts)

            data = self.once.post(f"announce:{fresh.id}", target, lambda meta: self._announce_post(fresh, meta),
                                  record, announced, message_id=fresh.id)
            if data is None and not announced():
                self.store.set_announce_done(fresh.id)  # Slack refused it: the thread goes to DMs
            return self.store.get(fresh.id) or fresh

    def _announce_post(self, row: MessageRow, meta: dict[str, Any]) -> dict[str, Any] | None:
        # Announced from the row as it is now (a cancel may have landed while we waited).
        fresh = self.store.get(row.id) or row
        text, blocks = self.announce_blocks(fresh)
        target = str(fresh.channel_id or fresh.created_by)
        try:
            return self.post(target, text, blocks, metadata=meta)
        except SlackApiError:
            # Not in that channel (or a DM we cannot use): reach the person directly.
            if not fresh.created_by:
                return None
            if (fresh.channel_id or "").startswith(("D", "G")) or not fresh.channel_id:
                # A DM or group DM between people: nobody can invite a bot there.
                note = "I can't post in that conversation, so this send's updates come here."
            else:
                note = (
                    f"I can't post in <#{fresh.channel_id}>, so this send's updates come here. "
                    "Invite me with `/invite @smsbot` to see them in the channel."
                )
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
            try:
                return self.post(fresh.created_by, text, blocks, metadata=meta)
            except SlackApiError as exc:
                log.warning("DM fallback failed: %s", exc.response.get("error"))
                return None

    def thread_reply(self, row: MessageRow, text: str, blocks: list[dict[str, Any]] | None = None,
                     broadcast: bool = False) -> str | None:
        if row.thread_channel and row.thread_ts:
            try:
                data = self.post(row.thread_channel, text, blocks, thread_ts=row.thread_ts)
                return str(data["ts"]) if data and data.get("ts") else None
            except SlackApiError:
                return None
        if row.created_by:
            self.ephemeral_or_dm(row.channel_id, row.created_by, text)
        return None

    def outcome_text(self, row: MessageRow) -> str:
        label = self.label_for(row.sender)
        icon = STATUS_ICON.get(row.status, "")
        if row.status == "sent":
            detail = row.payload.get("_detail") if isinstance(row.payload, dict) else None
            if row.sender == "sandbox":
                return f"{icon} sandbox: not sent. Recorded with id `{row.provider_message_id}` (no provider is configured)."
            pid = f" — message id `{row.provider_message_id}`" if row.provider_message_id else ""
            delivery = DELIVERY_WORDS.get(row.delivery or "accepted", row.delivery or "accepted")
            extra = f" ({detail})" if detail else ""
            return f"{icon} Accepted by {label}{pid}. Status: {delivery}.{extra}"
        if row.status == "failed" and row.error_kind == "opted_out":  # the claim's consent check stopped it
            return f":no_entry: Not sent: {shown(row.error or 'opted out', ERROR_SHOWN)}"
        if row.status == "failed":
            return f"{icon} Not sent by {label}: {shown(row.error or 'the provider refused it', ERROR_SHOWN)}"
        if row.status == "unknown":
            return (
                f"{icon} Outcome unknown: {shown(row.error or 'no answer from the provider', ERROR_SHOWN)} "
                "It was not retried, to avoid sending twice; check the provider before resending."
            )
        if row.status == "canceled":
            return f"{icon} Canceled; it will not be sent."
        if row.status == "missed":
            return f"{icon} Missed: it was due {when_text(row.due_at, row.user_tz)} while smsbot was down."
        return f"{icon} {row.status}"

    def report_outcome(self, row: MessageRow) -> None:
        """The outcome in the thread: one status line, updated in place later."""
        text = self.outcome_text(row)
        if row.status_ts and row.thread_channel:
            self.update(row.thread_channel, row.status_ts, text)
            return
        if row.thread_channel and row.thread_ts:
            self.post_status_line(row, text)
        else:
            self.thread_reply(row, text)  # no thread: the person hears it directly
        # A scheduled message's buttons make no sense once it went: redraw the visible message.
        if row.scheduled and row.thread_channel and row.thread_ts:
            text2, blocks = self.announce_blocks(row)
            self.update(row.thread_channel, row.thread_ts, text2, blocks)

    def post_status_line(self, row: MessageRow, text: str) -> None:
        """The thread's one status line, posted once across processes (an update if it exists)."""
        channel, thread = str(row.thread_channel), str(row.thread_ts)
        recorded, record = status_line_hooks(self.store, row)

        def post(meta: dict[str, Any]) -> dict[str, Any] | None:
            try:
                return self.post(channel, text, thread_ts=thread, metadata=meta)
            except SlackApiError:
                return None

        self.once.post(f"status:{row.id}", channel, post, record, recorded, thread_ts=thread, message_id=row.id)

    def report_missed(self, row: MessageRow) -> None:
        text = self.outcome_text(row) + " Send it now, or cancel it?"
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "actions",
                "block_id": f"missed_{row.id}",
                "elements": [
                    {"type": "button", "action_id": SEND_NOW_ACTION, "style": "primary",
                     "text": {"type": "plain_text", "text": "Send now"}, "value": str(row.id)},
                    {"type": "button", "action_id": CANCEL_ACTION,
                     "text": {"type": "plain_text", "text": "Cancel"}, "value": str(row.id)},
                ],
            },
        ]
        self.thread_reply(row, text, blocks)
