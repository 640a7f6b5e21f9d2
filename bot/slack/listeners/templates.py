"""WhatsApp templates: `/sms template` (the modal), `/sms templates` (the catalog),
`/sms send --template NAME ...`, the "Send WhatsApp template" shortcut.

The catalog is loaded once, when the app is built: a broken catalog raises CatalogError
(every problem as `file:line: problem`) so start-up stops instead of failing on a send.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.sending import SendRequest, UserError
from bot.core.templates import (
    ENV_VAR,
    Catalog,
    TemplateDef,
    catalog_from_env,
    parse_command_values,
    to_template_send,
    validate_values,
)
from bot.slack.blocks.send import WHEN_BLOCKS, picked, state_value, when_from_state
from bot.slack.blocks.templates import (
    CHOOSE_ACTION,
    CHOOSE_BLOCK,
    MEDIA_KEY,
    TEMPLATE_MODAL,
    TO_BLOCK,
    VAR_ACTION,
    ModalMeta,
    SenderInfo,
    catalog_listing,
    chosen_in_state,
    errors_for_blocks,
    map_keys,
    recipient_from_state,
    template_for_recipient,
    template_modal,
    template_options,
    values_from_state,
)
from bot.slack.commands import SendCommand
from bot.slack.context import AppContext, SubCommand
from bot.slack.listeners._bind import bind
from bot.slack.text import escape, fit
from providers.base import TemplateSend

log = logging.getLogger("smsbot.listeners.templates")

# template_for_recipient is re-exported for the bulk sender (CSV columns -> TemplateSend).
__all__ = ["register", "request_from_template_view", "template_for_recipient", "template_from_command"]

MAX_NAMES_SHOWN = 30
NO_TEMPLATES = ("No WhatsApp templates are set up: an admin lists them in the catalog file "
                "(SMS_TEMPLATES_FILE, see templates.example.yml).")


class ModalErrors(Exception):
    """Field errors for a view_submission answer: {block_id: message}."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = {block: message[:2000] for block, message in errors.items()}


def load_catalog_for(ctx: AppContext) -> Catalog:
    """The catalog Settings name (SMS_TEMPLATES_FILE); a named file must exist."""
    return catalog_from_env({ENV_VAR: ctx.settings.sms_templates_file or ""})


def sender_info(ctx: AppContext) -> SenderInfo:
    return SenderInfo(configured=frozenset(ctx.senders.names()), label=ctx.senders.label)


def available(catalog: Catalog) -> str:
    names = catalog.names()
    shown = ", ".join(f"`{n}`" for n in names[:MAX_NAMES_SHOWN])
    more = f" and {len(names) - MAX_NAMES_SHOWN} more" if len(names) > MAX_NAMES_SHOWN else ""
    return f"Available templates: {shown}{more} (see `/sms templates`)."


def find_template(catalog: Catalog, name: str) -> TemplateDef:
    if not catalog.templates:
        raise UserError(NO_TEMPLATES)
    tpl = catalog.get(name)
    if tpl is None:
        raise UserError(f"Unknown template '{name[:60]}'. {available(catalog)}")
    return tpl


def require_sender(tpl: TemplateDef, senders: SenderInfo) -> None:
    if tpl.sender not in senders.configured:
        raise UserError(
            f"Template '{tpl.name}' is sent by {senders.describe(tpl.sender)}, which is not configured here, "
            f"so it cannot be sent. Configured senders: {', '.join(sorted(senders.configured))}.",
            field="sender",
        )


# --------------------------------------------------------------------------- /sms send --template


def _example(tpl: TemplateDef) -> str:
    parts = [f"{MEDIA_KEY}=https://example.com/photo.jpg"] if tpl.media else []
    for var in tpl.variables:
        value = var.example or var.label
        parts.append(f'"{var.ref}={value}"' if " " in value else f"{var.ref}={value}")
    return f"`/sms send --template {tpl.name} +16175551212 {' '.join(parts)}`".replace("  ", " ")


def template_from_command(catalog: Catalog, senders: SenderInfo, cmd: SendCommand) -> tuple[TemplateSend, None]:
    """`/sms send --template NAME +1... key=value ...` -> the template to send.

    Sets `cmd.via` to the template's sender; raises UserError naming every problem.
    """
    tpl = find_template(catalog, cmd.template or "")
    if cmd.via and cmd.via.strip().lower() != tpl.sender:
        raise UserError(f"Template '{tpl.name}' is sent by `{tpl.sender}`; drop `--via {cmd.via}` "
                        f"or use `--via {tpl.sender}`.")
    require_sender(tpl, senders)
    try:
        # cmd.text comes from the /sms router, which already ran slack_unescape on the whole
        # command: the values are taken exactly as they stand, never unescaped a second time.
        raw = parse_command_values(cmd.text or "")
    except ValueError as exc:
        raise UserError(f"{exc}\nExample: {_example(tpl)}") from None
    values, media, unknown, twice = map_keys(tpl, raw)
    if tpl.media and not media and len(cmd.image_urls) == 1:
        media = cmd.image_urls[0]  # `--image URL` is a natural way to give the media header
        cmd.image_urls = []
    if cmd.image_urls or cmd.video_url or cmd.file_url:
        hint = f" For its media header write {MEDIA_KEY}=https://..." if tpl.media else ""
        raise UserError(f"Template '{tpl.name}' carries its own content: remove --image/--video/--file.{hint}")
    problems: list[str] = []
    if unknown:
        takes = ", ".join(f"`{v.ref}` ({v.label})" for v in tpl.variables) or "no variables"
        problems.append(f"Unknown variable{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(f'`{k}`' for k in unknown)}: '{tpl.name}' takes {takes}.")
    for ref, keys in twice.items():
        var = tpl.variable(ref)
        what = "The media URL" if var is None else f"Variable `{ref}` ({var.label})"
        given = ", ".join(f"`{k}=`" for k in keys[:-1]) + f" and `{keys[-1]}=`"
        problems.append(f"{what} is given twice (as {given}); give it once.")
    errors = validate_values(tpl, values, media)
    missing = [v for v in tpl.variables if v.required and not values.get(v.ref)]
    if missing:
        problems.append("Missing required variable" + ("s" if len(missing) > 1 else "") + ": "
                        + ", ".join(f"{v.label} (`{v.ref}=`)" for v in missing) + ".")
    for key, message in errors.items():
        if key in {v.ref for v in missing}:
            continue
        what = "Media URL" if key == MEDIA_KEY else f"`{key}`"
        problems.append(f"{what}: {message}.")
    if problems:
        raise UserError(f"Template '{tpl.name}': " + " ".join(problems) + f"\nExample: {_example(tpl)}")
    cmd.via = tpl.sender
    return to_template_send(tpl, values, media), None


# --------------------------------------------------------------------------- the modal's submission

FIELD_BLOCKS = {"to": TO_BLOCK, "sender": CHOOSE_BLOCK, "text": CHOOSE_BLOCK, "when": "when_dt",
                "when_date": "when_date"}


def request_from_template_view(ctx: AppContext, catalog: Catalog, body: dict[str, Any]) -> SendRequest:
    """The send the modal describes; raises ModalErrors with field errors."""
    view = body["view"]
    values = view.get("state", {}).get("values", {})
    meta = ModalMeta.load(view.get("private_metadata"))
    user = body.get("user") or {}
    name = chosen_in_state(values) or meta.template
    if not name:
        raise ModalErrors({CHOOSE_BLOCK: "Choose a template."})
    tpl = catalog.get(name)
    if tpl is None:
        raise ModalErrors({CHOOSE_BLOCK: f"Unknown template '{name[:60]}'; choose another."})
    if meta.template != tpl.name:
        # The inputs on screen belong to another template (the redraw has not landed yet).
        raise ModalErrors({CHOOSE_BLOCK: f"The form is still switching to '{tpl.name}'; check its fields and "
                                         "press Send again."})
    try:
        require_sender(tpl, sender_info(ctx))
    except UserError as exc:
        raise ModalErrors({CHOOSE_BLOCK: exc.message}) from None
    typed, media = values_from_state(tpl, values)
    errors = validate_values(tpl, typed, media)
    if errors:
        raise ModalErrors(errors_for_blocks(tpl, errors))
    to, recipient_name = recipient_from_state(values)
    tz = None
    when = None
    if any(picked(state_value(values, b)) for b in WHEN_BLOCKS):
        tz = ctx.user_tz(user.get("id"))
        try:
            when = when_from_state(values, tz)
        except ValueError as exc:
            raise ModalErrors({"when_date": str(exc)}) from None
    return SendRequest(
        sender=tpl.sender,
        to=to,
        name=recipient_name,
        template=to_template_send(tpl, typed, media),
        template_name=tpl.name,
        channel="whatsapp" if tpl.sender == "textus" else None,
        when=when,
        idem_key=f"view:{view.get('id')}",
        user_id=user.get("id"),
        user_name=user.get("username") or user.get("name"),
        user_tz=tz,
        channel_id=meta.channel_id,
        response_url=meta.response_url,
    )


# --------------------------------------------------------------------------- the /sms subcommands


def chosen_from_args(catalog: Catalog, args: str) -> TemplateDef | None:
    """The template `/sms template NAME` names (None: no name given); UserError if unknown."""
    name = args.split()[0] if args.strip() else ""
    return find_template(catalog, name) if name else None


def fast_template(catalog: Catalog, ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    if not catalog.templates:
        return f":warning: {NO_TEMPLATES}"
    try:
        chosen_from_args(catalog, args)
    except UserError as exc:
        return f":warning: {escape(exc.message)}"
    return None  # the modal opens after the ack


def slow_template(catalog: Catalog, ctx: AppContext, body: dict[str, Any], args: str, client: WebClient) -> None:
    if not catalog.templates:
        return
    try:
        chosen = chosen_from_args(catalog, args)
    except UserError:
        return  # the fast part already said why
    open_modal(ctx, catalog, body, client, chosen)


def fast_templates(catalog: Catalog, ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    return catalog_listing(catalog, sender_info(ctx))


# --------------------------------------------------------------------------- the Bolt listeners


def open_modal(ctx: AppContext, catalog: Catalog, body: dict[str, Any], client: WebClient,
               chosen: TemplateDef | None) -> None:
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    meta = ModalMeta(channel_id=channel, response_url=body.get("response_url"))
    view = template_modal(catalog, sender_info(ctx), meta, chosen)
    try:
        client.views_open(trigger_id=body["trigger_id"], view=fit(view))
    except Exception as exc:
        log.warning("views.open failed: %s", type(exc).__name__)


def ack_only(ack: Ack) -> None:
    ack()


def open_from_shortcut(ctx: AppContext, catalog: Catalog, body: dict[str, Any], client: WebClient) -> None:
    user_id = (body.get("user") or {}).get("id")
    refusal = ctx.allowed(user_id, None)
    if refusal or not catalog.templates:
        if user_id:
            ctx.notifier.ephemeral_or_dm(None, user_id, refusal or NO_TEMPLATES)
        return
    open_modal(ctx, catalog, body, client, None)


def redraw(ctx: AppContext, catalog: Catalog, body: dict[str, Any], client: WebClient) -> None:
    """A template was chosen or a value typed: show that template's inputs and preview."""
    view = body.get("view") or {}
    values = (view.get("state") or {}).get("values") or {}
    meta = ModalMeta.load(view.get("private_metadata"))
    action = (body.get("actions") or [{}])[0]
    if action.get("action_id") == CHOOSE_ACTION:
        name = (action.get("selected_option") or {}).get("value")
    else:
        name = chosen_in_state(values) or meta.template
    tpl = catalog.get(name) if name else None
    typed = values_from_state(tpl, values)[0] if tpl else {}
    new_view = template_modal(catalog, sender_info(ctx), meta, tpl, typed)
    try:
        # The hash makes Slack refuse this update if a newer one already landed.
        client.views_update(view_id=view.get("id"), hash=view.get("hash"), view=fit(new_view))
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else "?"
        if error != "hash_conflict":
            log.warning("views.update failed: %s", error)
    except Exception as exc:
        log.warning("views.update failed: %s", type(exc).__name__)


def search_templates(ctx: AppContext, catalog: Catalog, ack: Ack, body: dict[str, Any]) -> None:
    ack(options=template_options(catalog, sender_info(ctx), str(body.get("value") or "")))


def on_submit(ctx: AppContext, catalog: Catalog, ack: Ack, body: dict[str, Any]) -> None:
    user_id = (body.get("user") or {}).get("id")
    try:
        req = request_from_template_view(ctx, catalog, body)
        refusal = ctx.allowed(user_id, req.channel_id)
        if refusal:
            ack(response_action="errors", errors={TO_BLOCK: refusal[:150]})
            return
        ctx.service.submit(req)
    except ModalErrors as exc:
        ack(response_action="errors", errors=exc.errors)
        return
    except UserError as exc:
        block = FIELD_BLOCKS.get(exc.field or "text", CHOOSE_BLOCK)
        ack(response_action="errors", errors={block: exc.message[:2000]})
        return
    ack()


# --------------------------------------------------------------------------- wiring


def register(app: App, ctx: AppContext) -> None:
    catalog = load_catalog_for(ctx)  # CatalogError propagates: start-up stops with file:line
    ctx.template_catalog = catalog
    ctx.template_command = lambda cmd: template_from_command(catalog, sender_info(ctx), cmd)
    ctx.subcommands["template"] = SubCommand("template", bind(fast_template, catalog), bind(slow_template, catalog),
                                             summary="Send a WhatsApp template (form)")
    ctx.subcommands["templates"] = SubCommand("templates", bind(fast_templates, catalog), summary="List the templates")
    app.shortcut("send_template")(ack=ack_only, lazy=[bind(open_from_shortcut, ctx, catalog)])
    app.action(CHOOSE_ACTION)(ack=ack_only, lazy=[bind(redraw, ctx, catalog)])
    app.action(VAR_ACTION)(ack=ack_only, lazy=[bind(redraw, ctx, catalog)])
    app.options(CHOOSE_ACTION)(bind(search_templates, ctx, catalog))
    app.view(TEMPLATE_MODAL)(bind(on_submit, ctx, catalog))
