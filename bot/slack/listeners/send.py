"""`/sms send`, `/sms` (the modal), the "Send SMS" shortcut and the modal's submission."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core.sending import QuietPrompt, SendRequest, UserError
from bot.slack.blocks.consent import quiet_prompt
from bot.slack.blocks.send import (
    SEND_MODAL,
    parse_key_values,
    picked,
    send_modal,
    state_value,
    when_from_state,
)
from bot.slack.commands import CommandError, parse_send
from bot.slack.context import AppContext, SubCommand
from bot.slack.listeners._bind import bind
from bot.slack.text import escape, fit
from providers.base import ContactSaving

log = logging.getLogger("smsbot.listeners.send")


def command_idem_key(body: dict[str, Any]) -> str:
    # trigger_id is unique per invocation and identical in Slack's retries of it.
    return f"cmd:{body.get('team_id', '')}:{body.get('trigger_id') or body.get('response_url', '')}"


def fast_send(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    req = command_request(ctx, body, args)
    return req if isinstance(req, str) else submit_command(ctx, req, args)


def command_request(ctx: AppContext, body: dict[str, Any], args: str) -> SendRequest | str:
    """`/sms send ...` as a SendRequest, or what to tell the person."""
    try:
        cmd = parse_send(args, ctx.settings.sms_default_region)
    except CommandError as exc:
        return f":warning: {escape(str(exc))}\nExample: `/sms send +16175551212 Your order has shipped`"
    when = None
    tz = None
    if cmd.at is not None:
        from bot.core.input.timeparse import WhenError, is_immediate, parse_when

        tz = ctx.user_tz(body.get("user_id"))
        try:
            when = parse_when(cmd.at, tz)
        except WhenError as exc:
            return f":warning: {escape(str(exc))}"
        if is_immediate(when):
            when = None  # `--at now`: sent at once, announced in the channel like any send
    template = None
    if cmd.template:
        handler = ctx.template_command
        if handler is None:
            return ":warning: No template catalog is configured (SMS_TEMPLATES_FILE)."
        try:
            template, cmd.text = handler(cmd)
        except UserError as exc:
            return f":warning: {escape(exc.message)}"
    req = SendRequest(
        sender=cmd.via,
        to=cmd.to,
        name=cmd.name,
        text=cmd.text if template is None else None,
        image_urls=cmd.image_urls,
        video_url=cmd.video_url,
        file_url=cmd.file_url,
        file_content_type=cmd.file_content_type,
        subject=cmd.subject,
        template=template,
        template_name=cmd.template,
        when=when,
        idem_key=command_idem_key(body),
        user_id=body.get("user_id"),
        user_name=body.get("user_name"),
        user_tz=tz,
        channel_id=body.get("channel_id"),
        response_url=body.get("response_url"),
    )
    return req


def submit_command(ctx: AppContext, req: SendRequest, args: str) -> Any:
    try:
        message_id, created = ctx.service.submit(req)
    except QuietPrompt as exc:  # a one-off send at night: ask "send now / send at 08:00"
        return quiet_prompt(exc.prompt, args)
    except UserError as exc:
        return f":warning: {escape(exc.message)}"
    if not created:
        return None  # Slack retried a request we already took: say nothing twice.
    if req.when is not None:
        from bot.core.input.timeparse import describe_when

        row = ctx.store.get(message_id)
        when = datetime.fromtimestamp(row.due_at, UTC) if row is not None else req.when
        moved = " (moved out of the recipient's quiet hours)" if when.timestamp() > req.when.timestamp() + 1 else ""
        return f":alarm_clock: Scheduled #{message_id} for {describe_when(when, req.user_tz or 'UTC')}{moved}."
    return None


def open_send_modal(ctx: AppContext, body: dict[str, Any], client: WebClient, initial: dict[str, str] | None = None) -> None:
    senders = [(n, ctx.senders.label(n)) for n in ctx.senders.names()]
    meta = {"channel_id": body.get("channel_id") or (body.get("channel") or {}).get("id"),
            "response_url": body.get("response_url")}
    view = send_modal(senders, ctx.senders.default, meta, initial)
    try:
        client.views_open(trigger_id=body["trigger_id"], view=fit(view))
    except Exception as exc:
        log.warning("views.open failed: %s", type(exc).__name__)


def fast_modal(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    return None


def slow_modal(ctx: AppContext, body: dict[str, Any], args: str, client: WebClient) -> None:
    open_send_modal(ctx, body, client)


def request_from_view(ctx: AppContext, body: dict[str, Any]) -> SendRequest:
    view = body["view"]
    values = view["state"]["values"]
    meta = json.loads(view.get("private_metadata") or "{}")
    user = body.get("user") or {}
    user_id = user.get("id")
    tz = None
    when = None
    if any(picked(state_value(values, b)) for b in ("when_dt", "when_date", "when_time")):
        tz = ctx.user_tz(user_id)
        try:
            when = when_from_state(values, tz)
        except ValueError as exc:
            raise UserError(str(exc), field="when_date") from None
    try:
        extra = parse_key_values(state_value(values, "extra_fields"))
    except ValueError as exc:
        raise UserError(f"{exc}. Write one key=value per line.", field="extra_fields") from None
    list_raw = (state_value(values, "list_id") or "").strip()
    if list_raw and not list_raw.isdigit():
        raise UserError("The contact list id is a number (0 for All Contacts).", field="list_id")
    save = "save" in (state_value(values, "save_contact") or [])
    contact = None
    if save or list_raw or extra:
        contact = ContactSaving(save=save, list_id=int(list_raw or 0), extra_fields=extra)
    images = [u for u in (state_value(values, "images") or "").splitlines() if u.strip()]
    return SendRequest(
        sender=state_value(values, "sender"),
        to=state_value(values, "to") or "",
        name=state_value(values, "name"),
        text=state_value(values, "text"),
        image_urls=images,
        video_url=state_value(values, "video"),
        file_url=state_value(values, "file"),
        file_content_type=(state_value(values, "file_type") or None),
        contact_saving=contact,
        when=when,
        idem_key=f"view:{view.get('id')}",
        user_id=user_id,
        user_name=user.get("username") or user.get("name"),
        user_tz=tz,
        channel_id=meta.get("channel_id") or None,
        response_url=meta.get("response_url") or None,
    )


FIELD_BLOCKS = {"to": "to", "sender": "sender", "text": "text", "when": "when_dt", "when_date": "when_date",
                "extra_fields": "extra_fields", "list_id": "list_id"}


def ack_shortcut(ack: Ack) -> None:
    ack()


def open_from_shortcut(ctx: AppContext, body: dict[str, Any], client: WebClient) -> None:
    open_send_modal(ctx, body, client)


def on_submit(ctx: AppContext, ack: Ack, body: dict[str, Any]) -> None:
    user_id = (body.get("user") or {}).get("id")
    try:
        req = request_from_view(ctx, body)
        refusal = ctx.allowed(user_id, req.channel_id)
        if refusal:
            ack(response_action="errors", errors={"to": refusal[:150]})
            return
        submit_form(ctx, req)
    except UserError as exc:
        block = FIELD_BLOCKS.get(exc.field or "text", "text")
        ack(response_action="errors", errors={block: exc.message[:2000]})
        return
    ack()


_QUIET_ASKED: dict[str, float] = {}  # forms asked "it is night there" once: a second submit sends


def submit_form(ctx: AppContext, req: SendRequest) -> None:
    """The form's send; at night the first submit asks, the same form submitted again sends now."""
    try:
        ctx.service.submit(req)
    except QuietPrompt as exc:
        now = time.monotonic()
        for key in [k for k, t in _QUIET_ASKED.items() if now - t > 900]:
            _QUIET_ASKED.pop(key, None)
        if _QUIET_ASKED.pop(req.idem_key, None) is None:
            _QUIET_ASKED[req.idem_key] = now
            raise UserError(f"It is {exc.prompt.local_time} for this recipient (quiet hours). Submit again to send "
                            f"now, or set When to {exc.prompt.opens_local} or later.", field="to") from None
        ctx.service.submit(req.model_copy(update={"quiet_ok": True}))


def register(app: App, ctx: AppContext) -> None:
    ctx.subcommands["send"] = SubCommand("send", fast_send, summary="Send a message")
    ctx.subcommands[""] = SubCommand("", fast_modal, slow_modal, summary="Open the send form")
    app.shortcut("send_sms")(ack=ack_shortcut, lazy=[bind(open_from_shortcut, ctx)])
    app.view(SEND_MODAL)(bind(on_submit, ctx))
