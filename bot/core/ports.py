"""Ports: what the core asks of the edges, typed without any Slack type.

Block Kit travels as plain data (`Blocks`); an implementation never lets an API error
out (it logs and answers None/False), so a Slack outage never breaks a send.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from bot.core.bulk.models import BulkSummary, Progress
from storage.bulk import BulkJob
from storage.store import MessageRow

Blocks = list[dict[str, Any]]


class Posted(NamedTuple):
    """Where a visible message landed (its thread is `ts` in `channel`)."""

    channel: str
    ts: str


class Announcer(Protocol):
    """Posts and updates what people see about single sends."""

    def announce(self, row: MessageRow) -> MessageRow:
        """Post the visible message of a send; the row as stored after (its thread known)."""
        ...

    def report_outcome(self, row: MessageRow) -> None:
        """The row's outcome in its thread (one status line, updated in place later)."""
        ...

    def report_missed(self, row: MessageRow) -> None:
        """A scheduled send found past its grace: ask to send it now or cancel it."""
        ...

    def update(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> bool:
        """Edit a message; False when that failed."""
        ...

    def ephemeral_or_dm(self, channel: str | None, user: str, text: str) -> None:
        """Tell one person something, wherever they can be reached."""
        ...


class BulkView(Protocol):
    """What people see of a bulk job: progress message, summary, failure file, prompts."""

    def post_progress(self, job: BulkJob, progress: Progress, state: str) -> Posted | None:
        """Post the progress message (the author's DM when the channel is out of reach)."""
        ...

    def redraw(self, job: BulkJob, progress: Progress, state: str) -> None:
        """Draw the progress message again (job.thread_channel / job.thread_ts)."""
        ...

    def post_summary(self, job: BulkJob, summary: BulkSummary, note: str = "") -> str | None:
        """The summary in the job's thread; its ts, or None."""
        ...

    def update_summary(self, job: BulkJob, ts: str, summary: BulkSummary, note: str = "") -> bool:
        ...

    def upload_failure_csv(self, job: BulkJob, content: str, comment: str) -> bool:
        """The failed and unknown recipients as a CSV file in the job's thread."""
        ...

    def missed_prompt(self, job: BulkJob, target: str, when: str) -> None:
        """One prompt: the job was missed while smsbot was down; Send now or Cancel."""
        ...

    def tell(self, channel: str | None, user: str, summary: BulkSummary) -> None:
        """The summary to its author alone (a job without a thread)."""
        ...
