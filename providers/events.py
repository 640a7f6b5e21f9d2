"""Delivery-status webhooks of the three providers, turned into one neutral event.

Each parser takes the decoded JSON body (check the signature on the raw bytes first) and
returns a `DeliveryEvent`, or None for payloads that are not about an outbound message's
status (incoming messages, contact events). Malformed payloads raise ValueError.
`provider` is the API family ("sociocs", "bird", "textus"): Sociocs status events do not
say which of twlo/twlowa/gswa sent the message, so match on (family, message id).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

EventStatus = Literal["sent", "delivered", "read", "failed", "unknown"]


class DeliveryEvent(BaseModel):
    provider: str
    provider_message_id: str
    status: EventStatus
    error: str | None = None
    occurred_at: datetime | None = None
    raw_status: str | None = None


def _when(value: Any) -> datetime | None:
    """Epoch seconds or milliseconds, or ISO 8601. None when absent or unreadable: a bad
    timestamp is no reason to lose a delivery status."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value  # 1e11 s is the year 5138: must be ms
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _require_dict(payload: Any, who: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValueError(f"{who} webhook payload is not a JSON object")
    return payload


def _id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


# --------------------------------------------------------------------------- Sociocs

_SOCIOCS: dict[str, EventStatus] = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}


def parse_sociocs_event(payload: dict[str, Any]) -> DeliveryEvent | None:
    """`{message_id, event: "status_update", event_data: {status, error: {code, message}}}`."""
    payload = _require_dict(payload, "Sociocs")
    event = payload.get("event")
    if not isinstance(event, str):
        raise ValueError("Sociocs webhook payload has no 'event'")
    if event != "status_update":
        return None  # "message" (incoming) and anything newer
    message_id = _id(payload.get("message_id"))
    if message_id is None:
        raise ValueError("Sociocs status_update has no message_id")
    data = payload.get("event_data")
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        raise ValueError("Sociocs status_update has no event_data.status")
    raw = data["status"]
    error: str | None = None
    err = data.get("error")
    if isinstance(err, dict):
        text = err.get("message")
        code = err.get("code")
        if text or code:
            error = f"{text or 'error'}" + (f" (code {code})" if code not in (None, "") else "")
    elif isinstance(err, str) and err:
        error = err
    return DeliveryEvent(
        provider="sociocs",
        provider_message_id=message_id,
        status=_SOCIOCS.get(raw, "unknown"),
        error=error,
        # Status events list no timestamp; use one if it comes (ms, like message events).
        occurred_at=_when(payload.get("timestamp", data.get("timestamp"))),
        raw_status=raw,
    )


# --------------------------------------------------------------------------- Bird

_BIRD: dict[str, EventStatus | None] = {
    "accepted": None,  # not yet a delivery fact
    "processing": None,
    "scheduled": None,
    "sent": "sent",
    "delivered": "delivered",
    "rejected": "failed",
    "sending_failed": "failed",
    "delivery_failed": "failed",
}


def parse_bird_event(payload: dict[str, Any]) -> DeliveryEvent | None:
    """The message object itself, or `{service, event, payload: <message>}` (inferred)."""
    payload = _require_dict(payload, "Bird")
    if "payload" in payload:
        message = payload["payload"]
        if not isinstance(message, dict):
            raise ValueError("Bird webhook 'payload' is not an object")
    else:
        message = payload
    event = payload.get("event")
    if (isinstance(event, str) and event.endswith(".inbound")) or message.get("direction") == "incoming":
        return None
    message_id = _id(message.get("id"))
    raw = message.get("status")
    if message_id is None or not isinstance(raw, str):
        raise ValueError("Bird webhook message has no id or status")
    if raw in _BIRD and _BIRD[raw] is None:
        return None
    status: EventStatus = _BIRD.get(raw) or "unknown"
    error = None
    if status == "failed":
        failure = message.get("failure")
        if isinstance(failure, dict) and failure.get("description"):
            error = str(failure["description"])
        else:
            error = str(message.get("reason") or raw)
    return DeliveryEvent(
        provider="bird",
        provider_message_id=message_id,
        status=status,
        error=error,
        occurred_at=_when(message.get("lastStatusAt") or message.get("updatedAt")),
        raw_status=raw,
    )


# --------------------------------------------------------------------------- TextUs

_TEXTUS: dict[str, EventStatus] = {
    "message.delivered": "delivered",
    "message.failed": "failed",
    "message.unknown": "unknown",
}
# Only the envelope ({"@type": "WebhookDelivery", timestamp, action, ...}) is documented;
# where the Message sits is inferred, so these keys are tried in order.
_TEXTUS_MESSAGE_KEYS = ("payload", "message", "data", "resource", "object")


def _textus_message(payload: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for key in _TEXTUS_MESSAGE_KEYS:
        value = payload.get(key)
        if isinstance(value, dict):
            found = _id(value.get("id"))
            if found:
                return found, value
            inner = value.get("message")  # e.g. {"payload": {"message": {...}}}
            if isinstance(inner, dict) and _id(inner.get("id")):
                return str(inner["id"]), inner
            if isinstance(inner, str) and inner:
                return inner, value
        elif isinstance(value, str) and value.startswith("/messages/"):
            return value, {}
    top = payload.get("id")
    if isinstance(top, str) and top.startswith("/messages/"):  # a bare id would be the delivery's own
        return top, payload
    return None


def parse_textus_event(payload: dict[str, Any]) -> DeliveryEvent | None:
    payload = _require_dict(payload, "TextUs")
    kind = payload.get("@type")
    if kind is not None and kind != "WebhookDelivery":
        raise ValueError(f"TextUs webhook of unexpected @type {str(kind)[:40]!r}")
    action = payload.get("action")
    if not isinstance(action, str):
        raise ValueError("TextUs webhook has no 'action'")
    if action not in _TEXTUS:
        return None  # message.received, contact.*
    found = _textus_message(payload)
    if found is None:
        raise ValueError(f"TextUs {action} webhook carries no message id")
    message_id, message = found
    status = _TEXTUS[action]
    error = None
    if status == "failed":
        error = str(message.get("friendlyStateDescription") or message.get("error") or "failed")
    state = message.get("deliveryState")
    return DeliveryEvent(
        provider="textus",
        provider_message_id=message_id,
        status=status,
        error=error,
        occurred_at=_when(payload.get("timestamp")),
        raw_status=str(state) if isinstance(state, str) else action,
    )
