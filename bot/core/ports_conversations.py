"""The port conversations speak to people through (implemented by bot/slack/conversation_view.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.core.ports import Posted
from storage.conversations import Conversation, InboundRow


class ConversationView(Protocol):
    """Shows customers' messages; like every port, never lets an API error out."""

    def post_inbound(self, conversation: Conversation, message: InboundRow, *, channel: str,
                     thread_ts: str | None, mention: str | None, window_until: datetime | None) -> Posted | None:
        """Post one customer message: in `thread_ts`, or as a new thread's first message when None.

        Posted once across processes (keyed on the message's id); None when Slack refused it."""
        ...

    def note(self, channel: str, thread_ts: str, text: str) -> None:
        """A short plain note in a conversation's thread (queued, not waited for)."""
        ...

    def react(self, channel: str, ts: str, name: str) -> None:
        """Mark a person's message with an emoji reaction (queued)."""
        ...
