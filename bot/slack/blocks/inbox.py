"""`/sms inbox` and the App Home's "Waiting for an answer": conversations nobody answered yet (pure)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.core.input.phone import display
from bot.slack.announcer import when_text
from bot.slack.text import escape, shown, truncate
from storage.conversations import Conversation, InboundRow

INBOX_SHOWN = 15


def age(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{round(seconds / 60)} min ago"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def thread_link(conv: Conversation) -> str:
    if not conv.thread_channel or not conv.thread_ts:
        return "no thread yet (set SMS_INBOX_CHANNEL to open one)"
    ts = conv.thread_ts.replace(".", "")
    return f"<https://slack.com/archives/{conv.thread_channel}/p{ts}|open the thread>"


def inbox_line(conv: Conversation, label: Callable[[str], str], now: float) -> str:
    who = display(conv.number)
    if conv.contact_name:
        who = f"{escape(conv.contact_name)} ({who})"
    when = age(now - conv.last_inbound_at) if conv.last_inbound_at else "?"
    return f"*{who}* via {escape(label(conv.sender))}, {when}: {shown(conv.last_text or '', 200)} · {thread_link(conv)}"


def inbox_blocks(convs: Sequence[Conversation], label: Callable[[str], str], now: float) -> list[dict[str, Any]]:
    """A header and one section per waiting conversation (newest first)."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text",
                                                                  "text": "Waiting for an answer"}}]
    if not convs:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "Nobody is waiting. :tada:"}})
    for conv in convs[:INBOX_SHOWN]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": inbox_line(conv, label, now)}})
    return blocks


def inbox_text(convs: Sequence[Conversation], label: Callable[[str], str], now: float) -> str:
    if not convs:
        return "Nobody is waiting for an answer."
    return f"{len(convs)} conversation(s) waiting for an answer:\n" + "\n".join(
        inbox_line(c, label, now) for c in convs[:INBOX_SHOWN])


def inbound_section(rows: Sequence[InboundRow], label: Callable[[str], str], tz: str) -> list[dict[str, Any]]:
    """`/sms status <number>`: what the customer wrote (newest first), beside what was sent."""
    if not rows:
        return []
    lines = [f"• {when_text(r.received_at, tz)} via {escape(label(r.sender or r.provider))}: "
             f"{shown(r.text, 300) if r.text else ''}{f' [{len(r.media)} attachment(s)]' if r.media else ''}"
             for r in rows]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": truncate("*Their messages*\n" + "\n".join(lines),
                                                                           2900)}}]
