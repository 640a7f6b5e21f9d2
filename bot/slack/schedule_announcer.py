"""The Slack side of bot.core.ports_schedules: a changed schedule redrawn in its channel."""

from __future__ import annotations

from bot.slack.announcer import Notifier
from storage.store import MessageRow


class SlackScheduleAnnouncer:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def schedule_changed(self, row: MessageRow, note: str) -> None:
        """Redraw the visible message (no buttons once canceled) and say what happened in its thread."""
        if row.thread_channel and row.thread_ts:
            text, blocks = self.notifier.announce_blocks(row)
            self.notifier.update(row.thread_channel, row.thread_ts, text, blocks)
            self.notifier.thread_reply(row, note)
