"""People answering customers from a conversation's thread.

A reply in the thread of a conversation becomes an ordinary outbox row (SendService: every
check, the at-most-once outbox) to the contact through the conversation's sender. Its
idempotency key is the Slack message (`reply:<channel>:<ts>`), so an event Slack delivers
twice sends once. A reply starting with `//` is a note and stays in Slack. Edits and
deletions after the fact change nothing at the provider; the thread says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, NamedTuple

from bot.core.ports_conversations import ConversationView
from bot.core.sending import SendRequest, SendService, UserError
from storage.conversations import ConversationQueries
from storage.store import MessageRow, Store

log = logging.getLogger("smsbot.conversations")

NOTE_MARKER = "//"
REPLY_KEY = "reply:"
# The person's message in Slack is marked as its send moves on.
REACTIONS = {"sent": "outbox_tray", "failed": "x", "unknown": "warning", "delivered": "white_check_mark",
             "read": "eyes"}
EDITED_NOTE = (":information_source: Editing or deleting a reply in Slack changes nothing for the customer: "
               "the message went out as it was first sent.")

Allowed = Callable[[str | None, str | None], str | None]  # (user, channel) -> None or the refusal


class ThreadMessage(NamedTuple):
    channel: str
    thread_ts: str
    ts: str
    user: str
    text: str  # plain text: Slack markup already undone by the edge


class ReplyResult(NamedTuple):
    kind: Literal["not_ours", "note", "refused", "queued", "duplicate"]
    message: str | None = None  # what to tell the person (refused)
    row_id: int | None = None


def reply_key(channel: str, ts: str) -> str:
    return f"{REPLY_KEY}{channel}:{ts}"


def reply_origin(row: MessageRow) -> tuple[str, str] | None:
    """(channel, ts) of the Slack message a row was sent from, for replies."""
    if not row.idem_key.startswith(REPLY_KEY):
        return None
    channel, _, ts = row.idem_key[len(REPLY_KEY):].partition(":")
    return (channel, ts) if channel and ts else None


class Replies:
    def __init__(self, store: Store, service: SendService, allowed: Allowed, view: ConversationView | None) -> None:
        self.store = store
        self.queries = ConversationQueries(store)
        self.service = service
        self.allowed = allowed
        self.view = view

    def handle(self, msg: ThreadMessage, user_tz: str | None = None) -> ReplyResult:
        """A person's message in a thread: sent to the contact, kept as a note, or refused."""
        conv = self.queries.by_thread(msg.channel, msg.thread_ts)
        if conv is None:
            return ReplyResult("not_ours")
        if msg.text.lstrip().startswith(NOTE_MARKER):
            return ReplyResult("note")
        refusal = self.allowed(msg.user, msg.channel)
        if refusal is not None:
            return ReplyResult("refused", refusal)
        # TextUs answers on the channel the customer last wrote on (SMS or WhatsApp).
        whatsapp = conv.sender == "textus" and self.queries.last_channel(conv.id) == "whatsapp"
        channel: Literal["whatsapp"] | None = "whatsapp" if whatsapp else None
        req = SendRequest(sender=conv.sender, to=conv.number, text=msg.text, idem_key=reply_key(msg.channel, msg.ts),
                          user_id=msg.user, user_tz=user_tz, channel_id=msg.channel, source="slack-thread",
                          channel=channel, conversation_reply=True)  # answering: never held for quiet hours
        try:
            prepared = self.service.prepare(req)
        except UserError as exc:
            return ReplyResult("refused", f"Not sent: {exc.message}")
        # The reply's thread is the conversation's: no new visible message, its status line there.
        new = prepared.new.model_copy(update={"needs_announce": False, "thread_channel": msg.channel,
                                              "thread_ts": msg.thread_ts})
        row_id, created = self.store.enqueue(new)
        self.service.wake()
        return ReplyResult("queued" if created else "duplicate", row_id=row_id)

    def changed(self, channel: str, ts: str) -> None:
        """A reply was edited or deleted in Slack: say once that the customer's copy stays as sent."""
        row = self.store.conn.execute("SELECT id FROM messages WHERE idem_key = ?",
                                      (reply_key(channel, ts),)).fetchone()
        if row is None or self.view is None:
            return
        sent = self.store.get(int(row[0]))
        if sent is None or not sent.thread_ts or not self.store.first_time(f"reply-changed:{channel}:{ts}"):
            return
        self.view.note(channel, sent.thread_ts, EDITED_NOTE)

    def progressed(self, row: MessageRow) -> None:
        """A send reached a final state or a new delivery state: the contact was answered; mark the reply."""
        if row.status == "sent":
            self.queries.answered(row.to_number, row.sender, by=row.created_by)
        origin = reply_origin(row)
        state = row.delivery if row.delivery in ("delivered", "read", "failed") else row.status
        if origin is None or self.view is None or state not in REACTIONS:
            return
        self.view.react(origin[0], origin[1], REACTIONS[state])
