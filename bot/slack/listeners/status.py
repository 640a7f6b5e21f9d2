"""`/sms status <message id | phone number | provider message id>`: a number's send history."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.core.consent.book import FAMILY_WORDS
from bot.core.input.phone import InvalidNumber, display, normalize
from bot.core.visibility import viewer_for
from bot.slack.blocks.history import history_blocks
from bot.slack.blocks.inbox import inbound_section
from bot.slack.context import AppContext, SubCommand
from bot.slack.text import escape
from storage.conversations import ConversationQueries
from storage.store import MessageRow, Viewer

USAGE = "Usage: `/sms status +16175551212` or `/sms status 42` (a message id from a thread)."
HISTORY_LIMIT = 20


def find_number(ctx: AppContext, query: str, viewer: Viewer) -> tuple[str | None, str | None]:
    """(E.164 number, None) or (None, the reason it could not be found).

    A message the viewer may not see is answered exactly like one that does not exist.
    """
    text = query.strip()
    if not text:
        return None, USAGE
    bare = text.lstrip("#")
    row: MessageRow | None = None
    # Our ids are short; phone numbers are not: 7+ digits is a number, fewer an id.
    if bare.isdigit() and len(bare) < 7:
        row = ctx.store.visible(int(bare), viewer)
        if row is None:
            return None, f":mag: No message #{bare}."
        return row.to_number, None
    try:
        return normalize(text, ctx.settings.sms_default_region), None
    except InvalidNumber:
        pass
    row = ctx.store.by_provider_id(text, viewer)
    if row is not None:
        return row.to_number, None
    return None, f":mag: `{escape(text[:60])}` is neither a phone number nor a message id I know.\n{USAGE}"


def fast_status(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    viewer = viewer_for(ctx.settings, body.get("user_id"))
    number, problem = find_number(ctx, args, viewer)
    if number is None:
        return problem
    rows = ctx.store.history(number, viewer, limit=HISTORY_LIMIT)
    tz = ctx.user_tz(body.get("user_id"))
    text, blocks = history_blocks(rows, f"Messages to {display(number)}", tz, ctx.senders.label)
    blocks += inbound_section(ConversationQueries(ctx.store).inbound_from(number, viewer, HISTORY_LIMIT),
                              ctx.senders.label, tz)
    states = ctx.service.consent.queries.opted_out([number])
    if states:  # why nothing goes out to it any more, first
        lines = "\n".join(f":no_entry: {escape(s.words())} ({FAMILY_WORDS.get(s.family, s.family)})"
                          for s in states.values())
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": lines}}, *blocks][:50]
    return {"response_type": "ephemeral", "text": text, "blocks": blocks}


def register(app: App, ctx: AppContext) -> None:
    ctx.subcommands["status"] = SubCommand("status", fast_status, summary="History of messages to a number")
