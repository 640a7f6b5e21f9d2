"""Block Kit builders for the send modal, as pure functions, and reading its submission."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

SEND_MODAL = "send_modal"


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:150], "emoji": True}


WHEN_BLOCKS = ("when_dt", "when_date", "when_time")


def input_block(block_id: str, label: str, element: dict[str, Any], optional: bool = True,
                hint: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "input", "block_id": block_id, "label": plain(label), "element": element,
                             "optional": optional}
    if hint:
        block["hint"] = plain(hint)
    return block


def text_input(action_id: str, placeholder: str = "", multiline: bool = False, max_length: int = 3000,
               initial: str | None = None) -> dict[str, Any]:
    el: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id, "multiline": multiline,
                          "max_length": max_length}
    if placeholder:
        el["placeholder"] = plain(placeholder)
    if initial:
        el["initial_value"] = initial[:max_length]
    return el


def send_later_blocks(hint: str) -> list[dict[str, Any]]:
    """A date-time picker, and date + time pickers for clients without it (same ids everywhere,
    so `when_from_state` reads any form that has them)."""
    return [
        input_block("when_dt", "Send later", {"type": "datetimepicker", "action_id": "value"}, hint=hint),
        input_block("when_date", "…or pick a date", {"type": "datepicker", "action_id": "value"}),
        input_block("when_time", "…and a time (your time zone)", {"type": "timepicker", "action_id": "value"}),
    ]


def sender_options(senders: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"text": plain(f"{label} ({name})"[:75]), "value": name} for name, label in senders[:100]]


def send_modal(
    senders: list[tuple[str, str]],
    default_sender: str,
    metadata: dict[str, Any],
    initial: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The rich send form: sender, recipient, text, media, contact saving, send later."""
    initial = initial or {}
    options = sender_options(senders)
    chosen = next((o for o in options if o["value"] == initial.get("sender", default_sender)), options[0])
    blocks: list[dict[str, Any]] = [
        input_block("sender", "Sender", {"type": "static_select", "action_id": "value", "options": options,
                                    "initial_option": chosen}, optional=False),
        input_block("to", "Phone number", text_input("value", "+16175551212", max_length=40, initial=initial.get("to")),
               optional=False, hint="E.164 (+16175551212) or a national number"),
        input_block("name", "Recipient name", text_input("value", "Jane Doe", max_length=100)),
        input_block("text", "Message", text_input("value", "Your order has shipped", multiline=True, max_length=1600,
                                            initial=initial.get("text"))),
        input_block("images", "Image URL(s)", text_input("value", "https://example.com/photo.jpg", multiline=True),
               hint="One public URL per line (Twilio SMS, Bird, TextUs)"),
        input_block("video", "Video URL", text_input("value", "https://example.com/clip.mp4", max_length=1000)),
        input_block("file", "File URL", text_input("value", "https://example.com/menu.pdf", max_length=1000)),
        input_block("file_type", "File type", text_input("value", "application/pdf", max_length=100),
               hint="MIME type of the file; needed by Bird and TextUs when the URL has no extension"),
        {"type": "divider"},
        input_block("save_contact", "Contact", {"type": "checkboxes", "action_id": "value",
                                           "options": [{"text": plain("Save as contact (Sociocs)"), "value": "save"}]}),
        input_block("list_id", "Contact list id", text_input("value", "0 = All Contacts", max_length=20)),
        input_block("extra_fields", "Extra contact fields", text_input("value", "email_address=jane@example.com",
                                                                   multiline=True, max_length=2000),
               hint="One key=value per line"),
        {"type": "divider"},
        *send_later_blocks("Leave empty to send now"),
    ]
    return {
        "type": "modal",
        "callback_id": SEND_MODAL,
        "title": plain("Send SMS"),
        "submit": plain("Send"),
        "close": plain("Cancel"),
        "private_metadata": json.dumps(metadata)[:3000],
        "blocks": blocks,
    }


def picked(value: Any) -> bool:
    """Whether a picker holds a choice: 0 (the epoch) is a choice, None and "" are not."""
    return value not in (None, "", [])


def state_value(values: dict[str, Any], block_id: str) -> Any:
    """The submitted value of an input block, whatever its element type."""
    el = (values.get(block_id) or {}).get("value") or {}
    kind = el.get("type")
    if kind in ("static_select", "external_select", "radio_buttons"):
        opt = el.get("selected_option")
        return opt.get("value") if opt else None
    if kind == "checkboxes":
        return [o.get("value") for o in el.get("selected_options") or []]
    if kind == "datepicker":
        return el.get("selected_date")
    if kind == "timepicker":
        return el.get("selected_time")
    if kind == "datetimepicker":
        return el.get("selected_date_time")
    if kind == "number_input":
        return el.get("value")
    if kind == "file_input":
        return el.get("files") or []
    return el.get("value")


def parse_key_values(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"'{line.strip()[:60]}' is not key=value")
        out[key.strip()] = value.strip()
    return out


def from_epoch(epoch: Any) -> datetime:
    """The datetime picker's value (Unix seconds); anything absurd is a ValueError for the field."""
    try:
        return datetime.fromtimestamp(int(epoch), ZoneInfo("UTC"))
    except (TypeError, ValueError, OverflowError, OSError):
        raise ValueError("That date and time is not one we can schedule; pick it again.") from None


def when_from_state(values: dict[str, Any], tz: str) -> datetime | None:
    """Send-later time from the datetime picker, or the date + time pickers in the user's zone."""
    from bot.core.input.timeparse import local_time

    epoch = state_value(values, "when_dt")
    if picked(epoch):
        return from_epoch(epoch)
    day = state_value(values, "when_date")
    at = state_value(values, "when_time")
    if day or at:
        if not (day and at):
            raise ValueError("Pick both a date and a time, or use the single date-time picker.")
        try:
            naive = datetime.combine(date.fromisoformat(day), time.fromisoformat(at))
        except (TypeError, ValueError):
            raise ValueError("That date and time can't be read. Pick them again.") from None
        # A time the clocks skip (02:30 on a spring-forward night) is refused, not moved.
        return local_time(naive, tz)
    return None
