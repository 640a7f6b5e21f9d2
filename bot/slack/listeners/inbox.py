"""`/sms inbox`: conversations waiting for an answer (last message, age, thread link)."""

from __future__ import annotations

import time
from typing import Any

from slack_bolt import App

from bot.core.visibility import viewer_for
from bot.slack.blocks.inbox import INBOX_SHOWN, inbox_blocks, inbox_text
from bot.slack.context import AppContext, SubCommand
from storage.conversations import ConversationQueries


def fast_inbox(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    refusal = ctx.allowed(body.get("user_id"), None)
    if refusal is not None:
        return refusal
    viewer = viewer_for(ctx.settings, body.get("user_id"))
    convs = ConversationQueries(ctx.store).waiting(viewer, INBOX_SHOWN)
    now = time.time()
    return {"response_type": "ephemeral", "text": inbox_text(convs, ctx.senders.label, now),
            "blocks": inbox_blocks(convs, ctx.senders.label, now)}


def register(app: App, ctx: AppContext) -> None:
    ctx.subcommands["inbox"] = SubCommand("inbox", fast_inbox, summary="Customers waiting for an answer")
