"""`/sms optout`, `/sms optin` (managers), `/sms optouts`, and the quiet-hours buttons
("send now / send at 08:00") a one-off send at night answers with."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App

from bot.core.consent.book import ConsentDenied
from bot.core.visibility import is_manager
from bot.slack.blocks.consent import PAGE_SIZE, QUIET_LATER, QUIET_NOW, optouts_page
from bot.slack.commands import CommandError, leading_number
from bot.slack.context import AppContext, SubCommand
from bot.slack.listeners._bind import bind
from bot.slack.listeners.schedules import respond_to
from bot.slack.listeners.send import command_request, submit_command
from bot.slack.text import escape

log = logging.getLogger("smsbot.listeners.consent")

OPTOUT_USAGE = "Usage: `/sms optout +16175551212 [reason]`"
OPTIN_USAGE = "Usage: `/sms optin +16175551212`"


def _number(ctx: AppContext, args: str, usage: str) -> tuple[str | None, str]:
    """(E.164 number, the rest of the text), or (None, what to fix): the number as `/sms send`
    reads it (in pieces too: `617 555 1212`)."""
    if not args.strip():
        return None, usage
    try:
        return leading_number(args, ctx.settings.sms_default_region)
    except CommandError as exc:
        return None, f":warning: {escape(str(exc))}\n{usage}"


def fast_optout(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    number, rest = _number(ctx, args, OPTOUT_USAGE)
    if number is None:
        return rest
    try:
        return f":no_entry: {escape(ctx.service.consent.manual_opt_out(body.get('user_id'), number, rest))}"
    except ConsentDenied as exc:
        return f":no_entry: {escape(exc.message)}"


def fast_optin(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    number, _ = _number(ctx, args, OPTIN_USAGE)
    if number is None:
        return _
    try:
        return f":white_check_mark: {escape(ctx.service.consent.manual_opt_in(body.get('user_id'), number))}"
    except ConsentDenied as exc:
        return f":no_entry: {escape(exc.message)}"


def fast_optouts(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    if not is_manager(ctx.settings, body.get("user_id")):
        return ":no_entry: Only managers (SMS_BULK_USERS) may list opted-out numbers."
    raw = args.strip() or "1"
    if not raw.isdigit() or int(raw) < 1:
        return "Usage: `/sms optouts [page]`, e.g. `/sms optouts 2`."
    page = min(int(raw), 10**6)
    states, total = ctx.service.consent.queries.page(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return optouts_page(states, total, page)


def ack_only(ack: Ack) -> None:
    ack()


def on_quiet_choice(ctx: AppContext, body: dict[str, Any]) -> None:
    """Send now, or at the window's opening: the command runs again with that choice."""
    action = (body.get("actions") or [{}])[0]
    user = body.get("user") or {}
    url = body.get("response_url")
    try:
        data = json.loads(action.get("value") or "{}")
        args, opens = str(data["a"]), float(data["t"])
    except (ValueError, KeyError, TypeError):
        respond_to(url, {"replace_original": True, "text": ":warning: That choice has expired; send it again."})
        return
    cmd = {"user_id": user.get("id"), "user_name": user.get("username"), "team_id": (body.get("team") or {}).get("id"),
           "channel_id": (body.get("channel") or {}).get("id"), "response_url": url,
           "trigger_id": f"quiet:{(body.get('container') or {}).get('message_ts')}:{action.get('action_id')}"}
    refusal = ctx.allowed(cmd["user_id"], cmd["channel_id"])
    req = refusal or command_request(ctx, cmd, args)
    if isinstance(req, str):
        respond_to(url, {"replace_original": True, "text": req})
        return
    if action.get("action_id") == QUIET_LATER:
        req.when, req.user_tz = datetime.fromtimestamp(opens, UTC), req.user_tz or ctx.user_tz(cmd["user_id"])
    else:
        req.quiet_ok = True
    answer = submit_command(ctx, req, args)
    text = answer if isinstance(answer, str) else ":outbox_tray: Sending now."
    respond_to(url, {"replace_original": True, "text": text})


def register(app: App, ctx: AppContext) -> None:
    ctx.subcommands["optout"] = SubCommand("optout", fast_optout, summary="Opt a number out (managers)")
    ctx.subcommands["optin"] = SubCommand("optin", fast_optin, summary="Lift a manual opt-out (managers)")
    ctx.subcommands["optouts"] = SubCommand("optouts", fast_optouts, summary="Opted-out numbers, with source and date")
    for action_id in (QUIET_NOW, QUIET_LATER):
        app.action(action_id)(ack=ack_only, lazy=[bind(on_quiet_choice, ctx)])
