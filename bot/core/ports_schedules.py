"""What the schedule rules need from the edges (Slack implements it; the CLI is handed one)."""

from __future__ import annotations

from typing import Protocol

from storage.store import MessageRow


class ScheduleAnnouncer(Protocol):
    def schedule_changed(self, row: MessageRow, note: str) -> None:
        """Redraw the message people see for `row` and say `note` beside it (its thread)."""
