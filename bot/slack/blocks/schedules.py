"""Block Kit for scheduled messages: the pending list and the edit modal (pure functions).

`schedule_list_blocks` is shared by `/sms list` (an ephemeral message) and the App Home,
so it never calls Slack or the store: give it rows, the viewer's zone and the time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from bot.core.input.phone import display
from bot.core.schedules import first_words, when_label
from bot.slack.blocks.meta import CarriedState
from bot.slack.blocks.send import input_block, text_input
from bot.slack.text import escape
from storage.store import MessageRow

EDIT_MODAL = "schedule_edit_modal"
CANCEL_ACTION = "schedule_cancel"
EDIT_ACTION = "schedule_edit"
SEND_NOW_ACTION = "missed_send_now"
BULK_CANCEL_ACTION = "schedule_bulk_cancel"
BULK_ROWS_SHOWN = 5
NAV_PREFIX = "schedule_list"  # -> schedule_list_prev / schedule_list_next
ROW_BLOCK_PREFIX = "schedrow"
DEFAULT_PAGE_SIZE = 10
# Messages take at most 50 blocks: 2 per row plus header, notice and navigation (4).
MAX_PAGE_SIZE = 20
MAX_BLOCKS = 50


class ListPage(CarriedState):
    """Which page of which list: carried in navigation buttons and row block ids."""

    page: int = Field(default=0, ge=0)
    all: bool = False

    def dump(self) -> str:
        return json.dumps({"page": self.page, "all": self.all}, separators=(",", ":"))


class ScheduledBulk(BaseModel):
    """A confirmed bulk job waiting for its time: one line of `/sms list`."""

    id: int
    due_at: float
    sender: str
    total: int
    text: str = ""
    created_by: str | None = None


class EditMeta(BaseModel):
    """The edit modal's private_metadata."""

    id: int
    tz: str = "UTC"
    when0: str = ""  # the time as first shown; unchanged text keeps the exact due_at
    response_url: str | None = None  # the ephemeral list the edit came from, to refresh it
    list_page: ListPage | None = None


def local_input(due_at: float, tz: str) -> str:
    """The due time as the person would type it in their zone: `2026-12-01 09:00`."""
    return datetime.fromtimestamp(due_at, ZoneInfo(tz or "UTC")).strftime("%Y-%m-%d %H:%M")


def plain(text: str, limit: int = 150) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit], "emoji": True}


def row_buttons(row_id: int) -> list[dict[str, Any]]:
    """Edit and Cancel, with the same action ids as the visible message's buttons."""
    return [
        {"type": "button", "action_id": EDIT_ACTION, "text": plain("Edit"), "value": str(row_id)},
        {"type": "button", "action_id": CANCEL_ACTION, "style": "danger", "text": plain("Cancel"),
         "value": str(row_id),
         "confirm": {"title": plain("Cancel this message?"), "text": plain(f"#{row_id} will not be sent."),
                     "confirm": plain("Cancel it"), "deny": plain("Keep it")}},
    ]


def row_block_id(row_id: int, page: ListPage) -> str:
    # The list a click came from travels in the block id, so it can be redrawn in place.
    return f"{ROW_BLOCK_PREFIX}_{row_id}_{page.page}_{int(page.all)}"


def page_from_block_id(block_id: str | None) -> ListPage | None:
    parts = (block_id or "").split("_")
    if len(parts) != 4 or parts[0] != ROW_BLOCK_PREFIX or not (parts[2].isdigit() and parts[3] in ("0", "1")):
        return None
    return ListPage(page=int(parts[2]), all=parts[3] == "1")


def row_text(row: MessageRow, viewer_tz: str, now: datetime | float, show_owner: bool,
             label_for: Callable[[str], str] | None = None) -> str:
    to = display(row.to_number)
    if row.name:
        to = f"{escape(row.name)} ({to})"
    via = label_for(row.sender) if label_for else row.sender
    owner = ""
    if show_owner:
        owner = f" · by <@{row.created_by}>" if row.created_by else f" · by {escape(row.user_name or row.source)}"
    words = escape(first_words(row.summary)) or "_(no text)_"
    return (f"*#{row.id}* · *{when_label(row.due_at, viewer_tz, now)}*\n"
            f"→ {to} via {escape(via)}{owner}\n> {words}")


def schedule_list_blocks(
    rows: Sequence[MessageRow],
    viewer_tz: str,
    now: datetime | float,
    page: int = 0,
    page_size: int = DEFAULT_PAGE_SIZE,
    show_owner: bool = False,
    *,
    total: int | None = None,
    label_for: Callable[[str], str] | None = None,
    notice: str | None = None,
    nav_prefix: str = NAV_PREFIX,
    bulk_jobs: Sequence[ScheduledBulk] = (),
    bulk_total: int | None = None,
) -> list[dict[str, Any]]:
    """One page of pending schedules, soonest first, with Edit/Cancel per row and Previous/Next.

    `rows` is the whole list (sliced here), or, when `total` is given, just this page's
    rows as the store returned them (`store.pending(limit=page_size, offset=page*page_size)`).
    `show_owner` means the everyone view: it names who scheduled each message. Scheduled
    bulk jobs (`bulk_jobs`, `bulk_total` of them) come first, one line and a Cancel button
    each (at most `BULK_ROWS_SHOWN`). Always at most 50 blocks.
    """
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    page, pages, shown, total = _page_window(rows, page, page_size, total)
    title = "Everyone's scheduled messages" if show_owner else "Your scheduled messages"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}* ({total})"}}
    ]
    if notice:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": notice[:2900]}]})
    bulk_total = len(bulk_jobs) if bulk_total is None else bulk_total
    if bulk_jobs:
        blocks.extend(bulk_list_blocks(bulk_jobs, bulk_total, viewer_tz, now, show_owner, label_for,
                                       ListPage(page=page, all=show_owner)))
    if not shown and bulk_jobs:
        return blocks
    if not shown:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            "Nothing is scheduled. Schedule with `/sms send --at \"tomorrow 9am\" +16175551212 Text` "
            "or *Send later* in the `/sms` form.")}})
        return blocks
    where = ListPage(page=page, all=show_owner)
    for row in shown:
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": row_text(row, viewer_tz, now, show_owner, label_for)[:2900]}})
        blocks.append({"type": "actions", "block_id": row_block_id(row.id, where), "elements": row_buttons(row.id)})
    if pages > 1:
        first = page * page_size + 1
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"Page {page + 1} of {pages} · {first}–{first + len(shown) - 1} of {total} · times in {viewer_tz}")}]})
        blocks.append(_nav_block(page, pages, show_owner, nav_prefix))
    else:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Times in {viewer_tz}"}]})
    assert len(blocks) <= MAX_BLOCKS
    return blocks


def _page_window(rows: Sequence[MessageRow], page: int, page_size: int,
                 total: int | None) -> tuple[int, int, list[MessageRow], int]:
    """(page, pages, rows shown, total): `rows` is every row, or this page's when `total` is given."""
    if total is None:
        total = len(rows)
        pages = max(1, -(-total // page_size))
        page = max(0, min(page, pages - 1))
        return page, pages, list(rows[page * page_size : (page + 1) * page_size]), total
    pages = max(1, -(-total // page_size))
    page = max(0, min(page, pages - 1))
    return page, pages, list(rows[:page_size]), total


def _nav_block(page: int, pages: int, show_owner: bool, nav_prefix: str) -> dict[str, Any]:
    nav: list[dict[str, Any]] = []
    if page > 0:
        nav.append({"type": "button", "action_id": f"{nav_prefix}_prev", "text": plain("◀ Previous"),
                    "value": ListPage(page=page - 1, all=show_owner).dump()})
    if page < pages - 1:
        nav.append({"type": "button", "action_id": f"{nav_prefix}_next", "text": plain("Next ▶"),
                    "value": ListPage(page=page + 1, all=show_owner).dump()})
    return {"type": "actions", "block_id": f"{nav_prefix}_nav", "elements": nav}


def bulk_row_text(job: ScheduledBulk, viewer_tz: str, now: datetime | float, show_owner: bool,
                  label_for: Callable[[str], str] | None = None) -> str:
    via = label_for(job.sender) if label_for else job.sender
    owner = f" · by <@{job.created_by}>" if show_owner and job.created_by else ""
    who = f"{job.total:,} recipient{'' if job.total == 1 else 's'}"
    words = escape(first_words(job.text)) or "_(no text)_"
    return f"*Bulk #{job.id}* · *{when_label(job.due_at, viewer_tz, now)}* · {who} via {escape(via)}{owner}\n> {words}"


def bulk_list_blocks(jobs: Sequence[ScheduledBulk], total: int, viewer_tz: str, now: datetime | float,
                     show_owner: bool, label_for: Callable[[str], str] | None = None,
                     where: ListPage | None = None) -> list[dict[str, Any]]:
    """Scheduled bulk jobs: a heading, then one section a job with its Cancel button."""
    where = where or ListPage(all=show_owner)
    shown = list(jobs[:BULK_ROWS_SHOWN])
    more = f" — the first {len(shown)} shown" if total > len(shown) else ""
    blocks: list[dict[str, Any]] = [{"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"*Scheduled bulk sends* ({total}){more}")}]}]
    for job in shown:
        blocks.append({
            # The list's page travels in the block id (as for single rows) so a click redraws it.
            "type": "section", "block_id": f"{ROW_BLOCK_PREFIX}_b{job.id}_{where.page}_{int(where.all)}",
            "text": {"type": "mrkdwn", "text": bulk_row_text(job, viewer_tz, now, show_owner, label_for)[:2900]},
            "accessory": {"type": "button", "action_id": BULK_CANCEL_ACTION, "style": "danger",
                          "text": plain("Cancel"), "value": str(job.id),
                          "confirm": {"title": plain("Cancel this bulk send?"),
                                      "text": plain(f"Bulk #{job.id} will not be sent to its "
                                                    f"{job.total:,} recipients."),
                                      "confirm": plain("Cancel it"), "deny": plain("Keep it")}},
        })
    return blocks


def list_fallback_text(total: int, show_owner: bool) -> str:
    """The notification text that goes with the blocks."""
    whose = "Everyone's" if show_owner else "Your"
    return f"{whose} scheduled messages: {total} pending."


def _input(block_id: str, label: str, element: dict[str, Any], optional: bool = False,
           hint: str | None = None) -> dict[str, Any]:
    return input_block(block_id, label, element, optional=optional, hint=hint)


def _text(initial: str | None, *, multiline: bool = False, max_length: int = 3000,
          placeholder: str = "") -> dict[str, Any]:
    return text_input("value", placeholder, multiline=multiline, max_length=max_length, initial=initial)


def edit_modal(row: MessageRow, meta: EditMeta, now: datetime | float,
               label_for: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Change the time, the recipient or the text of a pending schedule."""
    payload = row.payload if isinstance(row.payload, dict) else {}
    via = label_for(row.sender) if label_for else row.sender
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            f"*#{row.id}* via {escape(via)}, now due *{when_label(row.due_at, meta.tz, now)}*.")}},
        _input("when", "When", _text(meta.when0, max_length=100, placeholder="tomorrow 9am"),
               hint=f"Your time zone: {meta.tz}. Also \"tomorrow 9am\", \"in 2 hours\", ISO 8601."),
        _input("to", "Phone number", _text(row.to_number, max_length=40, placeholder="+16175551212"),
               hint="E.164 (+16175551212) or a national number"),
        _input("name", "Recipient name", _text(row.name, max_length=100), optional=True),
    ]
    if payload.get("template"):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"{escape(row.summary)}: a template's values can't be edited here; cancel and send it again.")}]})
    else:
        has_media = bool(payload.get("image_urls") or payload.get("video_url") or payload.get("file_url"))
        blocks.append(_input("text", "Message", _text(payload.get("text"), multiline=True, max_length=1600),
                             optional=has_media))
    return {
        "type": "modal",
        "callback_id": EDIT_MODAL,
        "title": plain(f"Edit #{row.id}", 24),
        "submit": plain("Save"),
        "close": plain("Close"),
        "private_metadata": meta.model_dump_json(exclude_none=True)[:3000],
        "blocks": blocks,
    }


def notice_view(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (answer to a submission that changed nothing)."""
    return {"type": "modal", "title": plain(title, 24), "close": plain("Close"),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}]}
