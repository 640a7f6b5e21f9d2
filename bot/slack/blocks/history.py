"""What delivery results look like in Slack: status lines, notices, history, App Home.

Pure functions of rows and figures (no Slack calls, no SQL), so they are cheap to test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.delivery.rules import delivery_failed
from bot.core.input.phone import display
from bot.slack.announcer import DELIVERY_WORDS, STATUS_ICON, truncate, when_text
from bot.slack.text import escape, shown
from storage.store import MessageRow

DELIVERY_ICON = {
    "accepted": ":white_check_mark:",
    "scheduled": ":white_check_mark:",
    "sent": ":white_check_mark:",
    "delivered": ":white_check_mark:",
    "read": ":eyes:",
    "failed": ":x:",
}
# Slack: at most 100 blocks in a view, 50 in a message.
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_BLOCKS = 50


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 2900)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 2900)}]}


def _sections(lines: list[str], empty: str) -> list[dict[str, Any]]:
    """One section per line, or one saying `empty` when there are none."""
    return [_section(line) for line in lines] or [_section(empty)]


def recipient(row: MessageRow) -> str:
    to = display(row.to_number)
    return f"{escape(row.name)} ({to})" if row.name else to


def who(row: MessageRow) -> str:
    if row.created_by:
        return f"<@{row.created_by}>"
    return escape(row.user_name or row.source)


def state_words(row: MessageRow) -> str:
    """One short phrase for a row's state: "delivered", "not sent: <reason>", ..."""
    if row.status == "sent":
        word = DELIVERY_WORDS.get(row.delivery or "accepted", row.delivery or "accepted")
        if row.delivery == "failed" and row.delivery_error:
            word += f": {shown(row.delivery_error, 1000)}"
        return word
    if row.status == "failed":
        return f"not sent: {shown(row.error or 'refused by the provider', 1000)}"
    if row.status == "unknown":
        return "outcome unknown"
    if row.status == "pending" and row.scheduled:
        return "scheduled"
    return escape(row.status)


def state_icon(row: MessageRow) -> str:
    if row.status == "sent":
        return DELIVERY_ICON.get(row.delivery or "accepted", ":white_check_mark:")
    return STATUS_ICON.get(row.status, "")


def status_line(row: MessageRow, label: str, reports_on: bool) -> str:
    """The thread's status line once a send was accepted: its latest delivery state."""
    delivery = row.delivery or "accepted"
    words = escape(DELIVERY_WORDS.get(delivery, delivery))
    icon = DELIVERY_ICON.get(delivery, ":white_check_mark:")
    provider_id = escape(row.provider_message_id or "")
    if row.sender == "sandbox":
        head = f"{icon} sandbox: not sent. Recorded with id `{provider_id}` (no provider is configured)."
        return f"{head} Simulated status: {words}."
    pid = f" — message id `{provider_id}`" if provider_id else ""
    line = f"{icon} Accepted by {label}{pid}. Status: {words}"
    if delivery == "failed":
        line += f": {shown(row.delivery_error or 'the carrier gave no reason', 1000)}"
    line += "."
    if not reports_on and delivery in ("accepted", "scheduled"):
        line += f" Delivery reports are off for {label}, so this is the last known state."
    return line


def failure_reply(row: MessageRow, label: str) -> str:
    """The new thread reply that tells the sender their message did not arrive."""
    mention = f"<@{row.created_by}> " if row.created_by else ""
    reason = shown(row.delivery_error or row.error or "the provider gave no reason", 1000)
    return f":x: {mention}your message to {recipient(row)} via {label} was not delivered: {reason}"


def channel_notice(row: MessageRow, label: str) -> str:
    """One line for SMS_NOTIFY_CHANNEL about a final result."""
    return (
        f"{state_icon(row)} #{row.id} to {recipient(row)} via {label} by {who(row)}: {state_words(row)}"
        f" — {shown(row.summary, 200)}"
    )


# --------------------------------------------------------------------------- /sms status


def history_blocks(
    rows: Sequence[MessageRow], title: str, viewer_tz: str, label_for: Callable[[str], str]
) -> tuple[str, list[dict[str, Any]]]:
    """The history of messages to one number, newest first, times in the viewer's zone."""
    if not rows:
        text = f"{title}: no messages yet."
        return text, [_section(text)]
    blocks: list[dict[str, Any]] = [_section(f"*{title}*")]
    for row in rows:
        if len(blocks) + 2 > MAX_MESSAGE_BLOCKS:
            break
        when = when_text(row.sent_at or row.created_at, viewer_tz)
        pid = f" · id `{escape(row.provider_message_id)}`" if row.provider_message_id else ""
        blocks.append(_section(
            f"{state_icon(row)} *#{row.id}* {when} · {who(row)} via {label_for(row.sender)}"
            f" · {state_words(row)}{pid}"
        ))
        blocks.append(_context(shown(row.summary or "(no text)", 300)))
    return f"{title}: {len(rows)} message(s)", blocks


# --------------------------------------------------------------------------- App Home


@dataclass
class SenderFigures:
    sender: str
    label: str
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    reports_on: bool = True

    @property
    def rate(self) -> str:
        if not self.reports_on:
            return "n/a (delivery reports off)"
        if not self.sent:
            return "–"
        return f"{100 * self.delivered / self.sent:.0f}%"


def figures_by_sender(
    rows: Sequence[MessageRow], label_for: Callable[[str], str], reports_on: Callable[[str], bool]
) -> list[SenderFigures]:
    """Sent (accepted by the provider), delivered (or read) and failed per sender."""
    out: dict[str, SenderFigures] = {}
    for row in rows:
        fig = out.get(row.sender)
        if fig is None:
            fig = out[row.sender] = SenderFigures(row.sender, label_for(row.sender),
                                                  reports_on=reports_on(row.sender))
        if row.status == "sent":
            fig.sent += 1
            if row.delivery in ("delivered", "read"):
                fig.delivered += 1
        if delivery_failed(row):
            fig.failed += 1
    return sorted(out.values(), key=lambda f: f.sender)


def _figure_line(fig: SenderFigures) -> str:
    return (
        f"*{fig.label}* (`{fig.sender}`)\nSent {fig.sent} · Delivered {fig.delivered} · "
        f"Failed {fig.failed} · Delivery rate {fig.rate}"
    )


def _failure_line(row: MessageRow, viewer_tz: str, label_for: Callable[[str], str]) -> str:
    return (
        f":x: *#{row.id}* {when_text(row.updated_at, viewer_tz)} to {recipient(row)} via "
        f"{label_for(row.sender)} by {who(row)}: {state_words(row)}"
    )


def home_view(
    figures: Sequence[SenderFigures],
    failures: Sequence[MessageRow],
    schedule_blocks: Sequence[dict[str, Any]],
    viewer_tz: str,
    now: float,
    label_for: Callable[[str], str],
    inbox: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "smsbot today"}},
        _context(f"As of {when_text(now, viewer_tz)}"),
    ]
    if inbox:  # customers waiting for an answer first: that is what someone has to act on
        blocks.extend([*inbox, {"type": "divider"}])
    blocks.extend(_sections([_figure_line(fig) for fig in figures], "Nothing sent today yet."))
    blocks.append({"type": "divider"})
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Latest failures"}})
    failed = [_failure_line(row, viewer_tz, label_for) for row in failures]
    blocks.extend(_sections(failed, "No failures. :tada:"))
    blocks.append({"type": "divider"})
    blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Your upcoming schedules"}})
    room = MAX_VIEW_BLOCKS - len(blocks)
    if not schedule_blocks:
        blocks.append(_section("You have no scheduled messages."))
    elif len(schedule_blocks) > room:
        blocks.extend(schedule_blocks[: room - 1])
        blocks.append(_context("More schedules: see `/sms list`."))
    else:
        blocks.extend(schedule_blocks)
    return {"type": "home", "blocks": blocks[:MAX_VIEW_BLOCKS]}
