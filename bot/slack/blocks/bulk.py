"""Block Kit for bulk sends, as pure functions: the form, the confirmation, progress, summary.

Limits that shape these (docs/slack-notes): 100 blocks a view, 50 a message, 3,000
characters a section, 24 a modal title. Long lists are cut to the first ~20 lines plus
"and N more"; the full failure list goes to the thread as a CSV file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.core.bulk import wording
from bot.core.bulk.models import PROBLEMS_SHOWN, BulkPlan, BulkSummary, ProblemLine, Progress
from bot.core.bulk.wording import consent_words, plural, when_words
from bot.slack.blocks.send import input_block, plain, send_later_blocks, sender_options, text_input
from bot.slack.text import cap, escape, shown

BULK_MODAL = "bulk_modal"
BULK_CONFIRM = "bulk_confirm"
BULK_WAIT = "bulk_wait"
CANCEL_ACTION = "bulk_cancel"
PAUSE_ACTION = "bulk_pause"
RESUME_ACTION = "bulk_resume"
MISSED_SEND_NOW_ACTION = "bulk_missed_send_now"
MISSED_CANCEL_ACTION = "bulk_missed_cancel"

PREVIEW_LIMIT = 1500
SECTION_LIMIT = 2900

# Input blocks of the form; errors are keyed on these.
B_SENDER, B_TEXT, B_PASTE, B_CSV, B_OPTIONS = "sender", "text", "recipients", "csv", "options"


def _cut(text: str, limit: int) -> str:
    return cap(text, limit)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_LIMIT)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, SECTION_LIMIT)}]}


def _code(text: str) -> str:
    # Typed text inside a code span: no backtick may end it early, and escaped like any mrkdwn.
    return escape(text.replace("`", "'"))


# --------------------------------------------------------------------------- the form


def bulk_modal(senders: list[tuple[str, str]], default_sender: str, metadata: dict[str, Any]) -> dict[str, Any]:
    options = sender_options(senders)
    chosen = next((o for o in options if o["value"] == default_sender), options[0])
    blocks: list[dict[str, Any]] = [
        input_block(B_SENDER, "Sender", {"type": "static_select", "action_id": "value", "options": options,
                                    "initial_option": chosen}, optional=False),
        input_block(B_TEXT, "Message", text_input("value", "Hi {name}, your order is ready", multiline=True,
                                            max_length=1600), optional=False,
               hint="{name} and any CSV column in braces are filled per recipient; {{ and }} for literal braces"),
        input_block(B_PASTE, "Recipients", text_input("value", "+16175551212, Jane Doe", multiline=True),
               hint="One per line: number, optional name. Or upload a CSV below."),
        input_block(B_CSV, "…or a CSV file", {"type": "file_input", "action_id": "value", "filetypes": ["csv", "txt"],
                                         "max_files": 1},
               hint="Columns: to (the number), name (or first_name / full_name), and any others for "
                    "placeholders. Up to 100,000 rows."),
        input_block(B_OPTIONS, "Options", {"type": "checkboxes", "action_id": "value", "options": [
            {"text": plain("Allow duplicates (send again to a repeated number)"), "value": "allow_duplicates"}]}),
        *send_later_blocks("Leave empty to send as soon as you confirm"),
    ]
    return {
        "type": "modal",
        "callback_id": BULK_MODAL,
        "title": plain("Bulk send"),
        "submit": plain("Review"),
        "close": plain("Cancel"),
        "private_metadata": json.dumps(metadata)[:3000],
        "blocks": blocks,
    }


def preparing_view(what: str) -> dict[str, Any]:
    """Shown at once for big files while we read them (Slack wants an answer in 3 s)."""
    return {
        "type": "modal",
        "callback_id": BULK_WAIT,
        "title": plain("Bulk send"),
        "close": plain("Close"),
        "blocks": [_section(f":hourglass_flowing_sand: Preparing… reading {what}. "
                            "The summary appears here in a moment; nothing is sent before you confirm.")],
    }


def message_view(text: str, title: str = "Bulk send") -> dict[str, Any]:
    return {"type": "modal", "callback_id": BULK_WAIT, "title": plain(title), "close": plain("Close"),
            "blocks": [_section(text)]}


# --------------------------------------------------------------------------- the confirmation


def problem_lines(problems: list[ProblemLine], invalid: int) -> list[str]:
    lines = [f"• Line {p.line}: `{cap(_code(p.raw), 60)}` — {shown(p.reason, 300)}" for p in problems[:PROBLEMS_SHOWN]]
    if invalid > len(lines):
        lines.append(f"…and {invalid - len(lines):,} more (they are skipped; the valid rows are kept).")
    return lines


def confirmation_view(plan: BulkPlan) -> dict[str, Any]:
    head = [
        f"*{plural(plan.valid, 'recipient')}* via {plan.sender_label} (`{plan.sender}`) from the {plan.source_label}.",
        f"Rows read: {plan.total_rows:,}. Invalid rows skipped: {plan.invalid:,}. "
        + (f"Duplicates removed: {plan.duplicates_removed:,} (each number gets one message)."
           if not plan.allow_duplicates else "Duplicates allowed: repeated numbers get the message again."),
    ]
    if plan.due_at is not None:
        head.append(f":alarm_clock: Scheduled for {when_words(plan.due_at, plan.user_tz)}.")
    else:
        head.append("Sends as soon as you confirm.")
    length = (f"Longest message: {plural(plan.segments, 'SMS segment')}, {plan.encoding} "
              f"({plan.characters:,} {'characters' if plan.encoding == 'GSM-7' else 'UTF-16 units'}).")
    if plan.encoding == "UCS-2":
        length += " A character outside GSM-7 (emoji, curly quotes…) makes each segment hold 70 instead of 160."
    blocks: list[dict[str, Any]] = [_section("\n".join(head)), _context(length)]
    if plan.native_bulk_sender:
        if plan.personalised:
            blocks.append(_context(":information_source: The text is personalised, so it goes as one message per "
                                   "recipient instead of a Sociocs bulk job."))
        else:
            blocks.append(_context(":information_source: Sent as Sociocs bulk jobs of up to 1,000 recipients each."))
    blocks.append({"type": "divider"})
    blocks.append(_section("*Preview (first recipient)*\n>" + shown(plan.preview, PREVIEW_LIMIT).replace("\n", "\n>")))
    if plan.problems or plan.invalid:
        lines = problem_lines(plan.problems, plan.invalid)
        blocks.append({"type": "divider"})
        blocks.append(_section(f"*{plural(plan.invalid, 'invalid row')}*"))
        # Ten lines a section keeps each well under 3,000 characters.
        for i in range(0, len(lines), 10):
            blocks.append(_section("\n".join(lines[i:i + 10])))
    for note in plan.notes[:3]:
        blocks.append(_context(f":warning: {escape(note)}"))
    return {
        "type": "modal",
        "callback_id": BULK_CONFIRM,
        "title": plain("Confirm bulk send"),
        "submit": plain(f"Send to {plan.valid:,}"[:24]),
        "close": plain("Cancel"),
        "private_metadata": json.dumps({"job_id": plan.job_id}),
        "blocks": blocks,
    }


# --------------------------------------------------------------------------- progress


def progress_line(p: Progress) -> str:
    rate = f" · {p.rate:,.1f}/s" if p.rate else ""
    return (f"sent {p.sent:,} · failed {p.failed:,} · unknown {p.unknown:,} · "
            f"remaining {p.remaining:,} of {p.total:,}{rate}{consent_words(p, None)}")


def progress_message(
    job_id: int, who: str | None, label: str, text: str, p: Progress, state: str,
    provider_job_ids: list[str] | None = None, due_at: float | None = None, tz: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The visible message: what is being sent, live counts, and the controls while it runs."""
    by = f"<@{who}>" if who else "smsbot"
    states = {
        "running": ":outbox_tray: Sending",
        "paused": ":double_vertical_bar: Paused",
        "canceling": ":no_entry_sign: Canceling",
        "done": ":white_check_mark: Finished",
        "canceled": ":no_entry_sign: Canceled",
        "missed": ":alarm_clock: Missed (smsbot was down at its time; see the thread)",
    }
    head = f"{states.get(state, state)} — bulk #{job_id} by {by} via {label} to {plural(p.total, 'recipient')}"
    if state == "running" and due_at and due_at > datetime.now(UTC).timestamp() + 1 and p.done == 0:
        head = f":alarm_clock: Scheduled for {when_words(due_at, tz)} — bulk #{job_id} by {by} via {label} " \
               f"to {plural(p.total, 'recipient')}"
    fallback = f"{head}: {progress_line(p)}"
    blocks: list[dict[str, Any]] = [
        _section(f"{head}\n>" + shown(text, 500).replace("\n", "\n>")),
        _context(progress_line(p)),
    ]
    if provider_job_ids:
        ids = ", ".join(f"`{_code(j)}`" for j in provider_job_ids[:10])
        more = f" and {len(provider_job_ids) - 10} more" if len(provider_job_ids) > 10 else ""
        blocks.append(_context(f"Sociocs bulk job ids: {ids}{more}"))
    if state in ("running", "paused"):
        toggle = (
            {"type": "button", "action_id": RESUME_ACTION, "text": plain("Resume"), "value": str(job_id),
             "style": "primary"}
            if state == "paused"
            else {"type": "button", "action_id": PAUSE_ACTION, "text": plain("Pause"), "value": str(job_id)}
        )
        blocks.append({
            "type": "actions",
            "block_id": f"bulk_{job_id}",
            "elements": [
                toggle,
                {"type": "button", "action_id": CANCEL_ACTION, "style": "danger", "text": plain("Cancel"),
                 "value": str(job_id),
                 "confirm": {"title": plain("Cancel this bulk send?"),
                             "text": plain("Recipients not yet sent to will not get it."),
                             "confirm": plain("Cancel the rest"), "deny": plain("Keep sending")}},
            ],
        })
    return fallback, blocks


def missed_prompt(job_id: int, total: int, when: str) -> tuple[str, list[dict[str, Any]]]:
    """The one thread prompt of a scheduled job found past its grace: Send now or Cancel."""
    text = (f":alarm_clock: Bulk #{job_id} was due {when} while smsbot was down, so nothing was sent to its "
            f"{plural(total, 'recipient')}. Send it now, or cancel it?")
    blocks: list[dict[str, Any]] = [
        _section(text),
        {"type": "actions", "block_id": f"bulk_missed_{job_id}", "elements": [
            {"type": "button", "action_id": MISSED_SEND_NOW_ACTION, "style": "primary", "text": plain("Send now"),
             "value": str(job_id)},
            {"type": "button", "action_id": MISSED_CANCEL_ACTION, "text": plain("Cancel"), "value": str(job_id)},
        ]},
    ]
    return text, blocks


def summary_text(job_id: int, p: Progress, label: str, seconds: float | None, canceled: bool,
                 provider_job_ids: list[str] | None = None) -> str:
    return bulk_summary_text(BulkSummary(job_id=job_id, progress=p, label=label, seconds=seconds,
                                         canceled=canceled, provider_job_ids=provider_job_ids or []))


def bulk_summary_text(summary: BulkSummary) -> str:
    """The summary in mrkdwn: provider job ids are not ours, so they are escaped."""
    return wording.summary_text(summary, quote=escape)
