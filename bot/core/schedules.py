"""The rules for scheduled messages: who may change one, and cancel, edit, send now.

Used by the Slack listeners and the CLI alike; results are plain (an outcome and plain
words), each edge says them its own way. Cancel and edit are `UPDATE ... WHERE status =
'pending'` in the store: once a worker has claimed a row they change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.core.config import Settings
from bot.core.input.phone import display
from bot.core.input.timeparse import WhenError, describe_when, parse_when
from bot.core.sending import Prepared, SendRequest, SendService, UserError
from bot.core.visibility import is_manager
from storage.store import MessageRow, Store

# The edit form's inputs, by the field a send rule names.
FIELD_BLOCKS = {"to": "to", "when": "when", "when_date": "when", "text": "text", "sender": "when", "name": "name"}


def first_words(text: str, limit: int = 60) -> str:
    """The opening of a message, cut on a word boundary."""
    flat = " ".join((text or "").split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut + "…"


def _aware(now: datetime | float) -> datetime:
    if isinstance(now, int | float):
        return datetime.fromtimestamp(now, UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def when_label(due_at: float, tz: str, now: datetime | float) -> str:
    """`Tue 1 Dec, 09:00 EST, in 3 days` for a stored due time."""
    return describe_when(datetime.fromtimestamp(due_at, UTC), tz or "UTC", _aware(now))


class Outcome(StrEnum):
    DONE = "done"
    NOT_FOUND = "not_found"  # no such message
    NOT_YOURS = "not_yours"  # scheduled by someone else, and the person does not manage all
    TOO_LATE = "too_late"  # not pending any more (`status` says what it is)
    ALREADY_PENDING = "already_pending"  # send now: it is already waiting to be sent
    UNCHANGED = "unchanged"  # edit: the form changes nothing
    INVALID = "invalid"  # edit: the form breaks a send rule (`errors`)


class Change(BaseModel):
    """One edited field and its new value, in plain words."""

    field: str  # time, to, name, text
    value: str


class ScheduleResult(BaseModel):
    outcome: Outcome
    message_id: int
    row: MessageRow | None = None
    #: the row's status when it was too late
    status: str | None = None
    #: edit: problems by form field; what changed
    errors: dict[str, str] = {}
    changes: list[Change] = []

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.DONE, Outcome.UNCHANGED)


class EditForm(BaseModel):
    """What an edit asks for: the inputs as typed, and the zone the time was typed in."""

    when: str = ""
    to: str = ""
    name: str | None = None
    text: str | None = None


@dataclass
class EditTarget:
    message_id: int
    tz: str
    when0: str  # the time as first shown: unchanged text keeps the exact due_at


@dataclass
class ScheduleRules:
    store: Store
    settings: Settings
    service: SendService | None = None  # edits validate with the rules of a new send
    wake: Callable[[], None] = field(default=lambda: None)  # a changed row may be due now

    def may_manage_all(self, user_id: str | None) -> bool:
        """May this person see and change everyone's schedules? The one rule: bot/core/visibility.py."""
        return is_manager(self.settings, user_id)

    def may_change(self, row: MessageRow, user_id: str | None) -> bool:
        return bool(row.created_by and row.created_by == user_id) or self.may_manage_all(user_id)

    def _load(self, message_id: int, user_id: str | None, operator: bool) -> MessageRow | ScheduleResult:
        """The row, or the refusal when there is none or it is not this person's to change."""
        row = self.store.get(message_id)
        if row is None:
            return ScheduleResult(outcome=Outcome.NOT_FOUND, message_id=message_id)
        if not operator and not self.may_change(row, user_id):
            return ScheduleResult(outcome=Outcome.NOT_YOURS, message_id=message_id, row=row)
        return row

    def cancel(self, message_id: int, user_id: str | None, *, operator: bool = False,
               now: float | None = None) -> ScheduleResult:
        """Cancel a pending message; `operator` (the CLI, which has the database) may cancel anyone's."""
        found = self._load(message_id, user_id, operator)
        if isinstance(found, ScheduleResult):
            return found
        tr = self.store.cancel(message_id, now=now)
        if not tr.ok:
            outcome = Outcome.NOT_FOUND if tr.status is None else Outcome.TOO_LATE
            return ScheduleResult(outcome=outcome, message_id=message_id, row=tr.row, status=tr.status)
        return ScheduleResult(outcome=Outcome.DONE, message_id=message_id, row=tr.row)

    def send_now(self, message_id: int, user_id: str | None, now: float | None = None) -> ScheduleResult:
        """Send a missed message now."""
        found = self._load(message_id, user_id, operator=False)
        if isinstance(found, ScheduleResult):
            return found
        tr = self.store.send_missed_now(message_id, now=now)
        if not tr.ok:
            if tr.status is None:
                return ScheduleResult(outcome=Outcome.NOT_FOUND, message_id=message_id, row=tr.row)
            outcome = Outcome.ALREADY_PENDING if tr.status == "pending" else Outcome.TOO_LATE
            return ScheduleResult(outcome=outcome, message_id=message_id, row=tr.row, status=tr.status)
        self.wake()
        return ScheduleResult(outcome=Outcome.DONE, message_id=message_id, row=tr.row)

    def edit(self, target: EditTarget, form: EditForm, user_id: str | None,
             now: float | None = None) -> ScheduleResult:
        """Validate an edit with the rules of a new send, then change the row if still pending."""
        now_ts = time.time() if now is None else now
        mid = target.message_id
        row = self._load(mid, user_id, operator=False)
        if isinstance(row, ScheduleResult):
            return row
        if row.status != "pending":
            return ScheduleResult(outcome=Outcome.TOO_LATE, message_id=mid, row=row, status=row.status)
        errors: dict[str, str] = {}
        prepared = self._prepare(row, target, form, now_ts, errors)
        if errors or prepared is None:
            return ScheduleResult(outcome=Outcome.INVALID, message_id=mid, row=row, errors=errors)
        new = prepared.new
        summary = row.summary if _is_template(row) else new.summary
        changes = _changes(row, new.due_at, new.to_number, new.name, summary, target.tz, now_ts)
        if not changes:
            return ScheduleResult(outcome=Outcome.UNCHANGED, message_id=mid, row=row)
        tr = self.store.edit(row.id, due_at=new.due_at, to_number=new.to_number, payload=new.payload,
                             summary=summary, name=new.name, now=now_ts)
        if not tr.ok:
            # The worker claimed it between our read and the update.
            return ScheduleResult(outcome=Outcome.TOO_LATE, message_id=mid, row=tr.row, status=tr.status)
        self.wake()
        return ScheduleResult(outcome=Outcome.DONE, message_id=mid, row=tr.row, changes=changes)

    def _prepare(self, row: MessageRow, target: EditTarget, form: EditForm, now_ts: float,
                 errors: dict[str, str]) -> Prepared | None:
        """The edited send, checked like a new one; problems go into `errors` by form field."""
        assert self.service is not None, "edits need the send service"
        typed = " ".join(form.when.split())
        due: float | None = row.due_at
        if typed != " ".join(target.when0.split()):
            # Changed text: read it like `--at`, in the editor's zone, with the same limits.
            try:
                due = parse_when(typed, target.tz, datetime.fromtimestamp(now_ts, UTC),
                                 self.service.max_days).timestamp()
            except WhenError as exc:
                errors["when"] = str(exc)
                due = None
        payload: dict[str, Any] = row.payload if isinstance(row.payload, dict) else {}
        try:
            req = SendRequest(
                sender=row.sender, to=form.to, name=form.name,
                text=payload.get("text") if _is_template(row) else form.text,
                image_urls=payload.get("image_urls") or [], video_url=payload.get("video_url"),
                file_url=payload.get("file_url"), file_content_type=payload.get("file_content_type"),
                subject=payload.get("subject"), template=payload.get("template"), channel=payload.get("channel"),
                contact_saving=payload.get("contact_saving"),
                when=datetime.fromtimestamp(due if due is not None else now_ts + 60, UTC),
                idem_key=row.idem_key, user_id=row.created_by,
            )
            return self.service.prepare(req, now=now_ts)
        except UserError as exc:
            errors.setdefault(FIELD_BLOCKS.get(exc.field or "text", "text"), exc.message[:2000])
        except ValidationError:
            errors.setdefault("text", "This message can't be edited here; cancel it and send it again.")
        return None


def _is_template(row: MessageRow) -> bool:
    return isinstance(row.payload, dict) and bool(row.payload.get("template"))


def _changes(row: MessageRow, due_at: float, to_number: str, name: str | None, summary: str, tz: str,
             now_ts: float) -> list[Change]:
    changes: list[Change] = []
    if abs(due_at - row.due_at) >= 0.5:
        changes.append(Change(field="time", value=when_label(due_at, tz, now_ts)))
    if to_number != row.to_number:
        changes.append(Change(field="to", value=display(to_number)))
    if (name or None) != (row.name or None):
        changes.append(Change(field="name", value=name or "(none)"))
    if summary != row.summary:
        changes.append(Change(field="text", value=first_words(summary)))
    return changes
