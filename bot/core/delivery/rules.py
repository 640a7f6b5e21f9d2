"""Small facts about senders and rows that delivery decisions rest on (no I/O)."""

from __future__ import annotations

from pydantic import SecretStr

from bot.core.config import Settings
from storage.store import MessageRow

SOCIOCS_CODES = ("twlo", "twlowa", "gswa")
# The states a Sociocs status event names (provider-notes); a listed message's `status`, if any.
SOCIOCS_LISTED_STATES = frozenset({"sent", "delivered", "read", "failed"})
# What a person is told about a send whose outcome nobody can know (never "send it again").
UNKNOWN_ADVICE = "Outcome unknown: check with the provider before sending it again, or it may arrive twice."
# error kinds that say "this sender is broken", not "this one message was refused"
SENDER_LEVEL_KINDS = frozenset({"auth", "not_found", "config", "unknown", "not_sent"})


def family_of(sender: str) -> str:
    return "sociocs" if sender in SOCIOCS_CODES else sender


def delivery_failed(row: MessageRow) -> bool:
    return row.status == "failed" or row.delivery == "failed"


def _is_set(secret: SecretStr | None) -> bool:
    return bool(secret and secret.get_secret_value())


def reports_on(settings: Settings, sender: str) -> bool:
    """Whether delivery reports reach us for this sender (its webhook secret is set)."""
    if sender == "sandbox":
        return True
    if sender in SOCIOCS_CODES:
        return _is_set(settings.sociocs_webhook_secret)
    if sender == "bird":
        return _is_set(settings.bird_webhook_signing_key)
    if sender == "textus":
        return _is_set(settings.textus_webhook_secret)
    return False
