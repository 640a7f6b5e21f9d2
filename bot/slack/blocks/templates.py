"""The WhatsApp template modal as pure functions: Block Kit builders and reading what came back.

The modal is rebuilt (views.update) whenever the person picks a template or types a value,
so every builder here is a pure function of (catalog, chosen template, typed values). Block
ids and action ids never depend on anything but the template and the variable, so Slack
keeps what was typed across updates.

Nothing here calls Slack; `bot/slack/listeners/templates.py` wires these to Bolt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.views import View

from bot.core.templates import (
    GROUPS,
    MEDIA_KEY,
    Catalog,
    TemplateDef,
    TemplateVariable,
    render_preview,
    to_template_send,
)
from bot.slack.blocks.meta import CarriedState
from bot.slack.blocks.send import plain, send_later_blocks
from bot.slack.text import cap, escape, truncate
from providers.base import TemplateSend

TEMPLATE_MODAL = "template_modal"
CHOOSE_BLOCK = "tpl"
CHOOSE_ACTION = "tpl_choose"
VAR_ACTION = "tpl_var"
TO_BLOCK = "to"
NAME_BLOCK = "name"
PREVIEW_BLOCK = "tpl_preview"
VALUE_ACTION = "value"  # what bot.slack.blocks.send.state_value / when_from_state read

# Slack limits (docs/slack-notes): a static select holds 100 options, a view 100 blocks.
MAX_STATIC_OPTIONS = 100
MAX_BLOCKS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_PLACEHOLDER = 150
MAX_INPUT_LENGTH = 3000
MAX_ID = 255
MAX_METADATA = 3000
MAX_PREVIEW = 2000  # well under the 3000 of a text object: previews are for a glance

# Live preview: refresh when a value is typed (Slack debounces) or Enter is pressed.
LIVE_TRIGGERS = ["on_enter_pressed", "on_character_entered"]


class ViewLimitError(ValueError):
    """A view we built breaks a Block Kit limit: a bug here, never the person's fault."""


class ModalMeta(CarriedState):
    """What the modal carries in private_metadata between updates and to the submission."""

    channel_id: str | None = None
    response_url: str | None = None
    template: str | None = None  # the template whose variable inputs the view shows

    def dump(self) -> str:
        return self.model_dump_json(exclude_none=True)


@dataclass(frozen=True)
class SenderInfo:
    """Which senders this install has, and how to name them to people."""

    configured: frozenset[str]
    label: Callable[[str], str]

    def describe(self, sender: str) -> str:
        return f"{self.label(sender)} ({sender})"


# --------------------------------------------------------------------------- ids


def var_block_id(tpl: TemplateDef, ref: str) -> str:
    """One input per (template, variable): switching templates never carries a value over
    into another template's variable, while refreshes of the same template keep it."""
    return f"v|{tpl.name}|{ref}"[:MAX_ID]


def media_block_id(tpl: TemplateDef) -> str:
    return var_block_id(tpl, MEDIA_KEY)


# --------------------------------------------------------------------------- small pieces




def template_option(tpl: TemplateDef, senders: SenderInfo) -> dict[str, Any]:
    text = f"{tpl.name} · {senders.label(tpl.sender)}"
    if tpl.sender not in senders.configured:
        text += " (not configured)"
    return {"text": plain(truncate(text, MAX_OPTION_TEXT)), "value": tpl.name[:MAX_OPTION_VALUE]}


def template_options(catalog: Catalog, senders: SenderInfo, query: str = "") -> list[dict[str, Any]]:
    """Options for the template select; `query` filters (external select search)."""
    words = query.lower().split()
    found = []
    for tpl in catalog.templates:
        haystack = f"{tpl.name} {tpl.sender} {senders.label(tpl.sender)} {tpl.description or ''}".lower()
        if all(w in haystack for w in words):
            found.append(template_option(tpl, senders))
            if len(found) == MAX_STATIC_OPTIONS:
                break
    return found


def _choose_block(catalog: Catalog, senders: SenderInfo, chosen: TemplateDef | None) -> dict[str, Any]:
    element: dict[str, Any] = {"action_id": CHOOSE_ACTION, "placeholder": plain("Choose a template")}
    if len(catalog) > MAX_STATIC_OPTIONS:
        # Too many for one static list: Slack asks our options listener as the person types.
        element.update(type="external_select", min_query_length=0)
    else:
        element.update(type="static_select", options=template_options(catalog, senders))
    if chosen is not None:
        element["initial_option"] = template_option(chosen, senders)
    return {
        "type": "input",
        "block_id": CHOOSE_BLOCK,
        "dispatch_action": True,  # choosing one redraws the form for its variables
        "label": plain("Template"),
        "element": element,
        "optional": False,
    }


def _text_input(block_id: str, action_id: str, label: str, *, optional: bool, max_length: int = MAX_INPUT_LENGTH,
                placeholder: str | None = None, hint: str | None = None, live: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id,
                               "max_length": min(max_length, MAX_INPUT_LENGTH)}
    if placeholder:
        element["placeholder"] = plain(truncate(placeholder, MAX_PLACEHOLDER))
    if live:
        element["dispatch_action_config"] = {"trigger_actions_on": LIVE_TRIGGERS}
    block: dict[str, Any] = {"type": "input", "block_id": block_id, "label": plain(label), "element": element,
                             "optional": optional}
    if live:
        block["dispatch_action"] = True
    if hint:
        block["hint"] = plain(hint)
    return block


def _label(text: str) -> dict[str, Any]:
    # plain() cuts at 150 for placeholders; an input label may be up to 2000.
    return {"type": "plain_text", "text": truncate(text, 2000), "emoji": True}


def _variable_blocks(tpl: TemplateDef, grouped: bool) -> list[dict[str, Any]]:
    """The inputs for `tpl`'s variables; for gswa under Header / Body / Buttons headings."""

    def one(ref: str, label: str, *, optional: bool, max_length: int | None, example: str | None,
            hint: str | None) -> dict[str, Any]:
        block = _text_input(var_block_id(tpl, ref), VAR_ACTION, label, optional=optional,
                            max_length=max_length or MAX_INPUT_LENGTH,
                            placeholder=f"e.g. {example}" if example else None, hint=hint, live=True)
        block["label"] = _label(label)
        return block

    def var_input(var: TemplateVariable, prefix: str = "") -> dict[str, Any]:
        # Show the placeholder as the body writes it: {{1}} for Body, {{Header.1}} otherwise.
        shown = var.key if tpl.sender != "gswa" or var.group == "Body" else var.ref
        return one(var.ref, prefix + var.label, optional=not var.required, max_length=var.max_length,
                   example=var.example, hint=f"Fills {{{{{shown}}}}}")

    def media_input(prefix: str = "") -> dict[str, Any]:
        return one(MEDIA_KEY, prefix + "Media URL", optional=False, max_length=1000,
                   example="https://example.com/photo.jpg",
                   hint="Public https URL of the header image, video or document")

    if tpl.sender != "gswa":
        return [var_input(v) for v in tpl.variables]
    blocks: list[dict[str, Any]] = []
    for group in GROUPS:
        members = [v for v in tpl.variables if v.group == group]
        has_media = group == "Header" and tpl.media
        if not members and not has_media:
            continue
        prefix = "" if grouped else f"{group} · "
        if grouped:
            blocks.append({"type": "header", "block_id": f"g|{group}", "text": plain(group)})
        if has_media:
            blocks.append(media_input(prefix))
        blocks.extend(var_input(v, prefix) for v in members)
    return blocks


def preview_text(tpl: TemplateDef, values: Mapping[str, str] | None = None) -> str:
    body = render_preview(tpl, values or {})
    quoted = "\n".join(f">{escape(line)}" if line else ">" for line in body.splitlines())
    return truncate(f"*Preview*\n{quoted}", MAX_PREVIEW)


def _preview_block(tpl: TemplateDef, values: Mapping[str, str] | None) -> dict[str, Any]:
    return {"type": "context", "block_id": PREVIEW_BLOCK,
            "elements": [{"type": "mrkdwn", "text": preview_text(tpl, values)}]}


def _when_blocks() -> list[dict[str, Any]]:
    return send_later_blocks("Leave empty to send now")


# --------------------------------------------------------------------------- the modal


def template_modal(
    catalog: Catalog,
    senders: SenderInfo,
    meta: ModalMeta,
    chosen: TemplateDef | None = None,
    values: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The template form; with `chosen`, exactly that template's inputs and a live preview.

    Decorations (dividers, description, group headings, recipient name) are dropped, in
    that order, when a template has so many variables that the view would pass 100 blocks.
    """
    meta = meta.model_copy(update={"template": chosen.name if chosen else None})
    last: list[dict[str, Any]] = []
    for compact in range(3):
        blocks = _blocks(catalog, senders, chosen, values, compact)
        last = blocks
        if len(blocks) <= MAX_BLOCKS:
            break
    view = {
        "type": "modal",
        "callback_id": TEMPLATE_MODAL,
        "title": plain("WhatsApp template"),
        "submit": plain("Send"),
        "close": plain("Cancel"),
        "private_metadata": meta.dump(),
        "blocks": last,
    }
    check_view(view)
    return view


def _blocks(catalog: Catalog, senders: SenderInfo, chosen: TemplateDef | None,
            values: Mapping[str, str] | None, compact: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [_choose_block(catalog, senders, chosen)]
    divider = [] if compact else [{"type": "divider"}]
    if chosen is None:
        blocks.append({"type": "context", "block_id": "tpl_hint", "elements": [
            {"type": "mrkdwn", "text": "Choose a template: the form then asks for its variables."}]})
    else:
        if not compact:
            about = f"Sent by {senders.describe(chosen.sender)}"
            if chosen.description:
                about = f"{escape(chosen.description)} — {about}"
            blocks.append({"type": "context", "block_id": "tpl_about",
                           "elements": [{"type": "mrkdwn", "text": truncate(about, 2000)}]})
        if chosen.sender not in senders.configured:
            blocks.append({"type": "section", "block_id": "tpl_warning", "text": {"type": "mrkdwn", "text": (
                f":warning: *{chosen.name}* is sent by `{chosen.sender}`, which is not configured here, "
                "so it cannot be sent. Ask an admin, or choose another template.")}})
        blocks.extend(_variable_blocks(chosen, grouped=compact == 0))
        blocks.append(_preview_block(chosen, values))
    blocks.extend(divider)
    blocks.append(_text_input(TO_BLOCK, VALUE_ACTION, "Phone number", optional=False, max_length=40,
                              placeholder="+16175551212", hint="E.164 (+16175551212) or a national number"))
    if compact < 2:
        blocks.append(_text_input(NAME_BLOCK, VALUE_ACTION, "Recipient name", optional=True, max_length=100,
                                  placeholder="Jane Doe"))
    blocks.extend(divider)
    blocks.extend(_when_blocks())
    return blocks


def check_view(view: dict[str, Any]) -> None:
    """Refuse a view Slack would refuse: slack_sdk's own checks plus the ones it skips."""
    try:
        View(**view).to_dict()
    except (SlackObjectFormationError, TypeError) as exc:
        raise ViewLimitError(f"template modal breaks a Block Kit limit: {exc}") from None
    problems: list[str] = []
    blocks = view.get("blocks") or []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks (at most {MAX_BLOCKS})")
    if len(view.get("private_metadata") or "") > MAX_METADATA:
        problems.append("private_metadata over 3000 characters")
    seen: set[str] = set()
    for block in blocks:
        block_id = block.get("block_id") or ""
        if block_id and block_id in seen:
            problems.append(f"duplicate block_id {block_id}")
        seen.add(block_id)
        if len(block_id) > MAX_ID:
            problems.append(f"block_id over {MAX_ID}: {block_id[:40]}")
        element = block.get("element") or {}
        if len(element.get("action_id") or "") > MAX_ID:
            problems.append(f"action_id over {MAX_ID} in {block_id[:40]}")
        if element.get("max_length", 0) > MAX_INPUT_LENGTH:
            problems.append(f"max_length over {MAX_INPUT_LENGTH} in {block_id[:40]}")
        if len((element.get("placeholder") or {}).get("text", "")) > MAX_PLACEHOLDER:
            problems.append(f"placeholder over {MAX_PLACEHOLDER} in {block_id[:40]}")
        options = element.get("options") or []
        if len(options) > MAX_STATIC_OPTIONS:
            problems.append(f"{len(options)} options in {block_id[:40]}")
        for opt in options:
            if len(opt["text"]["text"]) > MAX_OPTION_TEXT or len(opt["value"]) > MAX_OPTION_VALUE:
                problems.append(f"option too long in {block_id[:40]}")
    if problems:
        raise ViewLimitError("template modal breaks Block Kit limits: " + "; ".join(problems))


# --------------------------------------------------------------------------- reading state


def _element(values: Mapping[str, Any], block_id: str, action_id: str) -> dict[str, Any]:
    return (values.get(block_id) or {}).get(action_id) or {}


def _text(values: Mapping[str, Any], block_id: str, action_id: str) -> str:
    return str(_element(values, block_id, action_id).get("value") or "").strip()


def chosen_in_state(values: Mapping[str, Any]) -> str | None:
    """The template picked in the select, as the view's state says."""
    opt = _element(values, CHOOSE_BLOCK, CHOOSE_ACTION).get("selected_option")
    return str(opt["value"]) if isinstance(opt, dict) and opt.get("value") else None


def values_from_state(tpl: TemplateDef, values: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
    """(typed values by variable ref, media URL) for `tpl` from view.state.values."""
    typed = {var.ref: _text(values, var_block_id(tpl, var.ref), VAR_ACTION) for var in tpl.variables}
    media = _text(values, media_block_id(tpl), VAR_ACTION) if tpl.media else ""
    return {ref: v for ref, v in typed.items() if v}, media or None


def recipient_from_state(values: Mapping[str, Any]) -> tuple[str, str | None]:
    """(phone number as typed, recipient name or None)."""
    return _text(values, TO_BLOCK, VALUE_ACTION), _text(values, NAME_BLOCK, VALUE_ACTION) or None


def errors_for_blocks(tpl: TemplateDef, errors: Mapping[str, str]) -> dict[str, str]:
    """validate_values' {ref or MEDIA_URL: message} as response_action errors {block_id: message}."""
    out: dict[str, str] = {}
    for key, message in errors.items():
        if key.upper() == MEDIA_KEY:
            block = media_block_id(tpl)
        elif tpl.variable(key) is not None:
            block = var_block_id(tpl, key)
        else:
            block = CHOOSE_BLOCK
        out[block] = f"{out[block]} {message}" if block in out else message
    return {block: msg[:2000] for block, msg in out.items()}


# --------------------------------------------------------------------------- keys people and CSVs use


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _direct_ref(tpl: TemplateDef, key: str) -> str | None:
    # `1` is `Body.1` for gswa; `body.1` is `Body.1`; elsewhere the key itself.
    var = tpl.variable(tpl.placeholder_ref(key.strip()))
    return var.ref if var is not None else None


def resolve_key(tpl: TemplateDef, key: str) -> str | None:
    """The variable ref (or MEDIA_URL) a typed key or CSV column means, or None.

    Accepts the ref (`1`, `Body.1`, `appt_date`), the gswa shorthand (`1` is `Body.1`),
    any case or separator (`APPT_DATE`, `body_1`), and the label written out or as a
    name (`Customer name`, `customer_name`).
    """
    wanted = _slug(key)
    if wanted == _slug(MEDIA_KEY) or (wanted == "media" and tpl.media):
        return MEDIA_KEY
    direct = _direct_ref(tpl, key)
    if direct is not None:
        return direct
    for var in tpl.variables:
        if wanted == _slug(var.ref):
            return var.ref
    for var in tpl.variables:
        if wanted == _slug(var.label):
            return var.ref
    return None


class MappedKeys(NamedTuple):
    """What map_keys made of typed keys or CSV columns."""

    values: dict[str, str]  # by variable ref
    media: str | None
    unknown: list[str]  # keys that match no variable
    twice: dict[str, list[str]]  # ref (or MEDIA_URL) -> every key that reached it, when more than one


def map_keys(tpl: TemplateDef, raw: Mapping[str, str]) -> MappedKeys:
    """(values by ref, media URL, keys that match no variable, variables reached by several keys).

    A key naming the variable directly (`1`, `appt_date`) wins over one that reaches the
    same variable through its label or another spelling, whatever their order; a blank
    direct value leaves room for the other. Every variable (and the media URL) reached by
    more than one key is listed in `twice`, so a command can refuse `a=1 A=2` instead of
    silently dropping a value (bulk CSV columns keep the precedence).
    """
    by_ref: dict[str, str] = {}
    media: str | None = None
    unknown: list[str] = []
    indirect: list[tuple[str, str]] = []
    keys_for: dict[str, list[str]] = {}
    for key, value in raw.items():
        text = "" if value is None else str(value).strip()
        ref = resolve_key(tpl, key)
        if ref is None:
            unknown.append(key)
            continue
        keys_for.setdefault(ref, []).append(key)
        if ref == MEDIA_KEY:
            media = text or media
        elif _direct_ref(tpl, key) == ref:
            by_ref[ref] = text
        else:
            indirect.append((ref, text))
    for ref, text in indirect:
        if not by_ref.get(ref):
            by_ref[ref] = text
    twice = {ref: keys for ref, keys in keys_for.items() if len(keys) > 1}
    return MappedKeys(by_ref, media, unknown, twice)


def template_for_recipient(tpl: TemplateDef, column_values: dict[str, str]) -> TemplateSend:
    """The TemplateSend for one bulk recipient from their CSV row.

    Columns named like a variable's key/ref or label fill it (`1`, `Body.1`, `appt_date`,
    `Customer name`); `MEDIA_URL` (or `media`) fills a gswa media header. Other columns
    (phone, name, ...) are ignored. Raises TemplateValuesError (its `errors` name each
    variable) when a required value is missing or too long.
    """
    values, media, _ignored, _twice = map_keys(tpl, column_values)
    return to_template_send(tpl, values, media)


# --------------------------------------------------------------------------- the listing


def catalog_listing(catalog: Catalog, senders: SenderInfo, limit: int = 40) -> str:
    """`/sms templates`: one line per template (name, sender, variables)."""
    if not catalog.templates:
        return ("No WhatsApp templates are set up. An admin lists them in the catalog file "
                "(SMS_TEMPLATES_FILE, see templates.example.yml).")
    lines = [f"*WhatsApp templates* ({len(catalog)})"]
    for tpl in catalog.templates[:limit]:
        names = [f"`{v.ref}` {escape(v.label)}" + ("" if v.required else " (optional)") for v in tpl.variables]
        if tpl.media:
            names.insert(0, f"`{MEDIA_KEY}` media URL")
        variables = ", ".join(names) if names else "no variables"
        off = "" if tpl.sender in senders.configured else " — _sender not configured_"
        lines.append(f"• `{tpl.name}` via {senders.describe(tpl.sender)}{off}: {cap(variables, 400)}")
    if len(catalog) > limit:
        lines.append(f"…and {len(catalog) - limit} more: search them in `/sms template`.")
    lines.append("Send one with `/sms template`, or `/sms send --template NAME +16175551212 key=value ...`.")
    return "\n".join(lines)
