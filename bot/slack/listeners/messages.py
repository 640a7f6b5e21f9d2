"""`message` events: people answering customers from a conversation's thread.

Slack delivers these only from channels the bot is in (message.channels / .groups / .im).
Only a person's reply in a conversation's thread is a candidate; the app's own and other
bots' messages, and messages outside such threads, are ignored. `message_changed` and
`message_deleted` never reach the provider: the thread says so once for a sent reply.
Duplicates: the event id (bot/slack/app.py) and the message ts (the outbox key) each
send at most once. Everything runs after the ack (a lazy listener).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core.conversations.replies import ThreadMessage
from bot.slack.commands import slack_unescape
from bot.slack.context import AppContext
from bot.slack.listeners._bind import bind

log = logging.getLogger("smsbot.listeners.messages")

CHANGES = ("message_changed", "message_deleted")
REPLY_SUBTYPES = (None, "thread_broadcast", "file_share")
FILES_NOTE = (":paperclip: Files shared in the thread are not sent to the customer; nothing was sent. "
              "Send a public link with `/sms send --image URL` (or the form) instead.")


def ack_event(ack: Ack) -> None:
    ack()


def thread_message(event: dict[str, Any]) -> ThreadMessage | None:
    """A person's reply in a thread, or None for everything else."""
    if event.get("bot_id") or event.get("subtype") not in REPLY_SUBTYPES:
        return None
    channel, user, ts, thread_ts = (event.get(k) for k in ("channel", "user", "ts", "thread_ts"))
    if not all(isinstance(v, str) and v for v in (channel, user, ts, thread_ts)) or thread_ts == ts:
        return None
    text = event.get("text")
    return ThreadMessage(str(channel), str(thread_ts), str(ts), str(user),
                         slack_unescape(text if isinstance(text, str) else "").strip())


def changed_ts(event: dict[str, Any]) -> str | None:
    """The ts of the message an edit or deletion is about (only replies in threads matter)."""
    if event.get("subtype") == "message_changed":
        inner = event.get("message")
    else:
        inner = event.get("previous_message")
    if not isinstance(inner, dict) or inner.get("bot_id") or inner.get("thread_ts") in (None, inner.get("ts")):
        return None
    ts = inner.get("ts") or event.get("deleted_ts")
    return ts if isinstance(ts, str) else None


def on_message(ctx: AppContext, event: dict[str, Any], client: WebClient) -> None:
    conversations = ctx.conversations
    replies = conversations.replies if conversations is not None else None
    if replies is None or not isinstance(event.get("channel"), str):
        return
    if event.get("subtype") in CHANGES:
        ts = changed_ts(event)
        if ts:
            replies.changed(str(event["channel"]), ts)
        return
    msg = thread_message(event)
    if msg is None:
        return
    if not msg.text:  # a file alone: files do not go to the customer, say so rather than drop it
        if event.get("files") and replies.queries.by_thread(msg.channel, msg.thread_ts) is not None:
            _tell(client, msg, FILES_NOTE)
        return
    result = replies.handle(msg, user_tz=None)
    if result.kind == "refused" and result.message:
        _tell(client, msg, result.message)
    elif result.kind == "queued" and event.get("files"):
        _tell(client, msg, "The text goes to the customer; the files shared with it do not.")


def _tell(client: WebClient, msg: ThreadMessage, text: str) -> None:
    try:
        client.chat_postEphemeral(channel=msg.channel, user=msg.user, thread_ts=msg.thread_ts, text=text)
    except Exception as exc:  # the person is not reachable there: nothing was sent anyway
        log.warning("refusal not shown: %s", type(exc).__name__)


def register(app: App, ctx: AppContext) -> None:
    app.event("message")(ack=ack_event, lazy=[bind(on_message, ctx)])
