"""Consent's Slack messages (pure): the quiet-hours question and the `/sms optouts` page."""

from __future__ import annotations

import json
from typing import Any

from bot.core.consent.book import FAMILY_WORDS
from bot.core.consent.quiet import NightPrompt
from bot.core.input.phone import display
from bot.slack.text import escape, shown
from storage.consent import ConsentState

QUIET_NOW = "quiet_send_now"
QUIET_LATER = "quiet_send_later"
PAGE_SIZE = 20
MAX_VALUE = 2000  # Slack's limit for a button's value


def quiet_prompt(prompt: NightPrompt, args: str) -> dict[str, Any]:
    """"It is 23:10 for this recipient: send now / send at 08:00", as two buttons carrying the command."""
    text = f":crescent_moon: {escape(prompt.words())} Nothing was sent yet."
    value = json.dumps({"a": args, "t": prompt.opens_at}, separators=(",", ":"))
    if len(value) > MAX_VALUE:  # too long to carry: say how to choose instead
        return {"response_type": "ephemeral",
                "text": f"{text} Send it again with `--at \"{prompt.opens_local}\"` to send when the window opens."}
    buttons = [
        {"type": "button", "action_id": QUIET_NOW, "text": {"type": "plain_text", "text": "Send now"},
         "value": value},
        {"type": "button", "action_id": QUIET_LATER, "style": "primary",
         "text": {"type": "plain_text", "text": f"Send at {prompt.opens_local}"}, "value": value},
    ]
    return {"response_type": "ephemeral", "text": text, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": "quiet_choice", "elements": buttons},
    ]}


def state_line(state: ConsentState) -> str:
    who = f" by <@{escape(state.actor)}>" if state.actor and state.source == "manual" else ""
    why = f": {shown(state.reason, 200)}" if state.reason else ""
    return (f"• {display(state.number)} ({FAMILY_WORDS.get(state.family, state.family)}) — "
            f"{escape(state.words())}{who}{why}")


def optouts_page(states: list[ConsentState], total: int, page: int) -> str:
    if not total:
        return "No number is opted out."
    pages = (total + PAGE_SIZE - 1) // PAGE_SIZE
    if page > pages:
        return (f"*Opted-out numbers* ({total:,}): there {'is' if pages == 1 else 'are'} only {pages} page"
                f"{'' if pages == 1 else 's'}; `/sms optouts {pages}` shows the last.")
    lines = [f"*Opted-out numbers* ({total:,}), newest first — page {page} of {pages}"]
    lines += [state_line(s) for s in states] or ["_No more on this page._"]
    if page < pages:
        lines.append(f"More: `/sms optouts {page + 1}`")
    return "\n".join(lines)
