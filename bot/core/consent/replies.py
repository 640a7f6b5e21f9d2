"""The one text sent back after a customer's keyword (opt-out confirmation or HELP reply).

The inbound path calls `ConsentBook.on_inbound_text`, then submits `reply_request(...)` with
the SendService: the row is consent-exempt (the claim sends it to an opted-out number) and a
conversation reply (never held for quiet hours); its idempotency key is the inbound message's
id, so a provider retrying the webhook sends nothing twice.
"""

from __future__ import annotations

from typing import Literal

from bot.core.consent.book import InboundAction
from bot.core.sending import SendRequest


def reply_request(action: InboundAction, number: str, sender: str | None, inbound_id: str,
                  channel: Literal["sms", "whatsapp"] | None = None) -> SendRequest | None:
    """The SendRequest for the action's reply, or None when there is none to send."""
    if not action.reply_text or not sender:
        return None
    return SendRequest(sender=sender, to=number, text=action.reply_text, idem_key=f"consent-reply:{inbound_id}",
                       channel=channel if sender in ("bird", "textus", "sandbox") else None,
                       consent_exempt=True, conversation_reply=True, source="consent")
