"""The `/sms` router: one slash command, many subcommands, each with a fast and a slow part."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.slack.commands import help_text, slack_unescape, split_subcommand
from bot.slack.context import AppContext, SubCommand
from bot.slack.listeners._bind import bind
from bot.slack.text import escape, fit

log = logging.getLogger("smsbot.listeners.command")

# Subcommands anyone may run: they send nothing and show no messages.
OPEN_TO_ALL = ("help", "senders")


def fast_help(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    return help_text()


def fast_senders(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    lines = ["*Configured senders*"]
    for name in ctx.senders.names():
        mark = " (default)" if name == ctx.senders.default else ""
        lines.append(f"• `{name}` {ctx.senders.label(name)}{mark}")
    if not ctx.senders.real():
        lines.append("_No provider is configured: sends go to the sandbox and are not delivered._")
    return "\n".join(lines)


def _reply(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if isinstance(result, str):
        result = {"response_type": "ephemeral", "text": result}
    return fit(result)


def route(ctx: AppContext, body: dict[str, Any]) -> tuple[SubCommand | None, str]:
    sub, args = split_subcommand(slack_unescape(body.get("text", "")))
    return ctx.subcommands.get(sub), args


def ack_command(ctx: AppContext, ack: Ack, body: dict[str, Any]) -> None:
    handler, args = route(ctx, body)
    if handler is None:
        sub = split_subcommand(body.get("text", ""))[0]
        ack(**_reply(f":thinking_face: I don't know `/sms {escape(sub[:40])}`.\n\n{help_text()}"))
        return
    if handler.name not in OPEN_TO_ALL:
        refusal = ctx.allowed(body.get("user_id"), body.get("channel_id"))
        if refusal:
            ack(**_reply(refusal))
            return
    try:
        result = handler.fast(ctx, body, args)
    except Exception:
        log.exception("/sms %s failed", handler.name)
        result = ":boom: Something went wrong on our side; nothing was sent. Try again, or tell an admin."
    ack(**_reply(result))


def run_slow(ctx: AppContext, body: dict[str, Any], client: WebClient) -> None:
    handler, args = route(ctx, body)
    if handler is None or handler.slow is None:
        return
    if handler.name not in OPEN_TO_ALL and ctx.allowed(body.get("user_id"), body.get("channel_id")):
        return
    handler.slow(ctx, body, args, client)


def register(app: App, ctx: AppContext) -> None:
    ctx.subcommands["help"] = SubCommand("help", fast_help)
    ctx.subcommands["senders"] = SubCommand("senders", fast_senders)
    app.command("/sms")(ack=bind(ack_command, ctx), lazy=[bind(run_slow, ctx)])
