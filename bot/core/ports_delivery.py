"""What delivery needs from the outside world: the port its Slack side implements.

The core decides *what* happened and *who* should hear of it (from settings and the store);
the view decides how that looks and makes the calls, off the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from storage.store import MessageRow


@dataclass(frozen=True)
class SenderAlert:
    """A sender started failing at the sender level, or works again."""

    sender: str
    label: str
    message_id: int
    working: bool
    count: int = 0  # failed sends in a row (when not working)
    error: str | None = None


class DeliveryView(Protocol):
    """Where delivery results are shown. Every method returns at once; the work is queued."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queued work is done; False if that did not happen in time."""
        ...

    def line_changed(self, message_id: int, delay: float | None = None) -> None:
        """The message's status line may no longer show its row: redraw it (coalesced)."""
        ...

    def tell_failure(self, row: MessageRow) -> None:
        """Tell the sender their message was not delivered (its thread, else a DM)."""
        ...

    def result_notice(self, channel: str, row: MessageRow) -> None:
        """One line about a final result in the notify channel."""
        ...

    def sender_alert(self, channel: str | None, alert: SenderAlert) -> None:
        """A sender-health alert; with no channel it can only be logged."""
        ...

    def note_unknown(self, row: MessageRow, note: str) -> None:
        """Why the row's outcome stays unknown, in its thread (plain text, escaped by the view)."""
        ...

    def note_bulk_unknown(self, job_id: int, channel: str, thread_ts: str, note: str) -> None:
        """The same, once for a bulk job, in the job's thread."""
        ...

    def note_no_lookup(self, row: MessageRow, how: str) -> None:
        """No lookup exists for the row's sender: `how` (already formatted) says what to check."""
        ...


class FinalHooks(Protocol):
    """The dispatcher's list of callbacks for rows reaching a final state."""

    on_final: list[Callable[[MessageRow], None]]


class BulkFollower(Protocol):
    """The bulk engine: corrects a job's progress and summary after reconciliation."""

    def reconciled(self, job_id: int) -> None: ...
