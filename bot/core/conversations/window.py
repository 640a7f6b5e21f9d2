"""The WhatsApp 24-hour window, checked wherever a free-form WhatsApp message would leave.

SendService.prepare asks when a send is made (at its due time for a schedule) and the
dispatcher asks again just before the provider call, so schedules and bulk rows whose
window closed meanwhile are refused before anything is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.consent.rules import UnknownSender, needs_whatsapp_window, whatsapp_window
from storage.conversations import ConversationQueries

TEMPLATE_HINT = "Send an approved template instead: `/sms template` (or the Template form)."


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def window_refusal(queries: ConversationQueries, sender: str, number: str, channel: str | None,
                   template: bool, at: datetime) -> str | None:
    """None when the message may go at `at`; otherwise why not, offering the template form."""
    try:
        if not needs_whatsapp_window(sender, channel, template):
            return None
    except UnknownSender:
        return None  # not a WhatsApp sender we know of: the window is not ours to check
    last = queries.last_whatsapp(number, sender)
    state = whatsapp_window(datetime.fromtimestamp(last, UTC) if last is not None else None, at)
    if state.open:
        return None
    if state.until is None:
        why = "this customer has not written to us on WhatsApp yet"
    else:
        why = f"the 24-hour window after their last message closed at {_stamp(state.until)}"
    return f"A free-form WhatsApp message can only be sent within 24 hours of the customer's last message; {why}. " \
        + TEMPLATE_HINT


def window_until(last_whatsapp: float | None) -> datetime | None:
    """When the window opened by the last WhatsApp message closes (None: never opened)."""
    if last_whatsapp is None:
        return None
    return whatsapp_window(datetime.fromtimestamp(last_whatsapp, UTC), datetime.now(UTC)).until


def row_refusal(queries: ConversationQueries, sender: str, to: str, payload: dict[str, object]) -> str | None:
    """The dispatch-time check of a stored row (its payload is an OutboundMessage's JSON)."""
    channel = payload.get("channel")
    return window_refusal(queries, sender, to, channel if isinstance(channel, str) else None,
                          payload.get("template") is not None, datetime.now(UTC))
