"""Inbound webhooks (customer replies, provider opt-out facts) turned into neutral models.

Contract: /work/shared/api-docs/inbound-notes.md (and provider-notes.md). Each parser takes
the decoded JSON body (check the signature on the raw bytes first) and returns an
`InboundResult` (a message, a consent event, or both), or None for events that are not
inbound traffic (status updates, outgoing echoes, contact.created ...): the caller records
those, they are not errors. Malformed payloads raise `InboundPayloadError` (a ValueError).

Keyword opt-outs (a customer texting STOP) are not decided here: the text goes to
`bot.core.consent.rules.classify_keyword`; providers may not import bot (layering rule).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import BaseModel, Field

Family = Literal["sociocs", "bird", "textus"]
Channel = Literal["sms", "whatsapp"]
MediaKind = Literal["image", "video", "file"]
ConsentAction = Literal["opted_out", "opted_in"]

# ConsentEvent.source values produced here (keyword opt-outs use "keyword_<WORD>" in core).
SOURCE_TEXTUS_EVENT = "textus_event"
SOURCE_SOCIOCS_BLOCKED = "sociocs_blocked_contact"
SOURCE_TWILIO_21610 = "provider_error_21610"
SOURCE_TEXTUS_OPTED_OUT_ERROR = "provider_error_textus_opted_out"

SOCIOCS_SENDERS = ("twlo", "twlowa", "gswa")
_SOCIOCS_CHANNEL: dict[str, Channel] = {"twlo": "sms", "tlnx": "sms", "twlowa": "whatsapp", "gswa": "whatsapp"}


class InboundPayloadError(ValueError):
    """The webhook body is not a usable inbound event; the message says what is missing."""


class InboundMedia(BaseModel):
    url: str
    kind: MediaKind
    content_type: str | None = None
    filename: str | None = None
    # Bird's media.api.bird.com URLs need `Authorization: AccessKey`: fetch and re-upload,
    # never link. Only set for bird.com hosts so the key is never sent anywhere else.
    needs_bird_access_key: bool = False


class InboundMessage(BaseModel):
    provider: Family
    sender: str | None  # twlo|twlowa|gswa|bird|textus; None when the payload cannot tell
    channel: Channel
    from_number: str  # E.164, the customer
    to_number: str | None = None  # E.164, the business number, when the payload gives it
    text: str = ""
    media: list[InboundMedia] = Field(default_factory=list)
    provider_message_id: str
    received_at: datetime | None = None  # aware UTC
    contact_name: str | None = None
    channel_ref: str | None = None  # Sociocs channel_key, Bird channelId, TextUs conversation id
    unsupported_type: str | None = None  # a Bird body type we do not render (location, ...)


class ConsentEvent(BaseModel):
    action: ConsentAction
    number: str  # E.164
    source: str  # SOURCE_* above
    provider: Family
    sender: str | None = None
    channel: Channel | None = None  # the consent family it applies to; None = unknown
    provider_ref: str | None = None  # webhook delivery / message id, for de-duplication
    occurred_at: datetime | None = None


class InboundResult(BaseModel):
    message: InboundMessage | None = None
    consent: ConsentEvent | None = None


# --------------------------------------------------------------------------- helpers


def to_e164(raw: Any, field: str) -> str:
    """Provider numbers: Sociocs digits with country code and no '+', Bird/TextUs E.164.

    Only *possible* (length-valid) numbers are required, not *valid* ones: the documented
    examples use 555 numbers, and a reply must never be lost on a numbering-plan detail."""
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise InboundPayloadError(f"{field} is missing or not a phone number")
    text = re.sub(r"[\s().-]", "", str(raw).strip().removeprefix("whatsapp:"))
    if not text.startswith("+"):
        text = "+" + text
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise InboundPayloadError(f"{field} {str(raw)[:30]!r} is not a phone number with a country code") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InboundPayloadError(f"{field} {str(raw)[:30]!r} is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _optional_e164(raw: Any, field: str) -> str | None:
    if raw in (None, ""):
        return None
    try:
        return to_e164(raw, field)
    except InboundPayloadError:
        return None  # the business number is informative only


def _when(value: Any) -> datetime | None:
    """Epoch ms (Sociocs) or ISO 8601 (Bird, TextUs); None when absent or unreadable. A time
    after now is the provider's clock, not a fact: now (a WhatsApp window or a consent state
    dated in the future would outlive what really happened)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return _not_after_now(datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC))
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return _not_after_now(parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return None


def _not_after_now(when: datetime) -> datetime:
    return min(when, datetime.now(UTC))


def _obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InboundPayloadError(f"{field} is missing or not an object")
    return value


def _id(value: Any, field: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise InboundPayloadError(f"{field} is missing")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _is_bird_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return urlsplit(url).scheme == "https" and (host == "bird.com" or host.endswith(".bird.com"))


# --------------------------------------------------------------------------- Sociocs


def sociocs_sender(provider: Any, channel_key: Any) -> str | None:
    """`provider` names the sender; a channel key like `twlowa_15550001111` is the fallback."""
    if isinstance(provider, str) and provider in SOCIOCS_SENDERS:
        return provider
    if isinstance(channel_key, str):
        prefix = channel_key.split("_", 1)[0]
        if prefix in SOCIOCS_SENDERS:
            return prefix
    return None


def _sociocs_channel(provider: Any, sender: str | None) -> Channel:
    if sender is not None:
        return _SOCIOCS_CHANNEL[sender]
    return _SOCIOCS_CHANNEL.get(provider, "sms") if isinstance(provider, str) else "sms"


def _sociocs_media(payload: dict[str, Any]) -> list[InboundMedia]:
    out: list[InboundMedia] = []
    kinds: tuple[tuple[str, MediaKind], ...] = (("image_urls", "image"), ("video_urls", "video"), ("file_urls", "file"))
    for key, kind in kinds:
        urls = payload.get(key) or []
        if not isinstance(urls, list):
            raise InboundPayloadError(f"Sociocs {key} is not a list")
        out += [InboundMedia(url=u, kind=kind) for u in urls if isinstance(u, str) and u]
    return out


def _sociocs_blocked(contact: Any) -> bool:
    # is_blocked is documented as int 0/1; accept a bool or "1" too.
    return isinstance(contact, dict) and contact.get("is_blocked") in (1, True, "1")


def parse_sociocs_inbound(payload: Any) -> InboundResult | None:
    """`{event: "message", direction: "incoming", provider, channel_key, from, to, ...}`."""
    payload = _obj(payload, "Sociocs webhook payload")
    event = payload.get("event")
    if not isinstance(event, str):
        raise InboundPayloadError("Sociocs webhook payload has no 'event'")
    if event != "message" or payload.get("direction", "incoming") != "incoming":
        return None  # status_update, outgoing echoes, anything newer
    provider, channel_key = payload.get("provider"), payload.get("channel_key")
    sender = sociocs_sender(provider, channel_key)
    channel = _sociocs_channel(provider, sender)
    number = to_e164(payload.get("from"), "Sociocs 'from'")
    contact = payload.get("contact")
    name = _str(payload.get("name")) or (_str(contact.get("name")) if isinstance(contact, dict) else None)
    when = _when(payload.get("timestamp"))
    message_id = _id(payload.get("message_id"), "Sociocs message_id")
    text = payload.get("text")
    message = InboundMessage(
        provider="sociocs", sender=sender, channel=channel, from_number=number,
        to_number=_optional_e164(payload.get("to"), "Sociocs 'to'"),
        text=text if isinstance(text, str) else "", media=_sociocs_media(payload),
        provider_message_id=message_id, received_at=when, contact_name=name,
        channel_ref=channel_key if isinstance(channel_key, str) else None,
    )
    consent = None
    if _sociocs_blocked(contact):
        consent = ConsentEvent(
            action="opted_out", number=number, source=SOURCE_SOCIOCS_BLOCKED, provider="sociocs",
            sender=sender, channel=channel, provider_ref=message_id, occurred_at=when,
        )
    return InboundResult(message=message, consent=consent)


# --------------------------------------------------------------------------- Bird

_BIRD_EVENTS: dict[str, Channel] = {"sms.inbound": "sms", "whatsapp.inbound": "whatsapp"}


def _bird_media(body: dict[str, Any], kind: str) -> list[InboundMedia]:
    section = body.get(kind)
    key = "images" if kind == "image" else "files"
    items = section.get(key) if isinstance(section, dict) else None
    if not isinstance(items, list):
        raise InboundPayloadError(f"Bird {kind} body has no {kind}.{key} list")
    out: list[InboundMedia] = []
    for item in items:
        url = _str(item.get("mediaUrl")) if isinstance(item, dict) else None
        if url is None:
            raise InboundPayloadError(f"Bird {kind} item has no mediaUrl")
        out.append(InboundMedia(
            url=url, kind="image" if kind == "image" else "file",
            content_type=_str(item.get("contentType")), filename=_str(item.get("filename")),
            needs_bird_access_key=_is_bird_host(url),
        ))
    return out


def _bird_body(body: Any) -> tuple[str, list[InboundMedia], str | None]:
    """(text, media, unsupported type) from `{type: text|image|file, ...}`."""
    body = _obj(body, "Bird message body")
    kind = body.get("type")
    if kind == "text":
        text = body.get("text")
        inner = text.get("text") if isinstance(text, dict) else None
        if not isinstance(inner, str):
            raise InboundPayloadError("Bird text body has no text.text")
        return inner, [], None
    if kind in ("image", "file"):
        return "", _bird_media(body, kind), None
    if not isinstance(kind, str):
        raise InboundPayloadError("Bird message body has no type")
    return "", [], kind[:40]


def parse_bird_inbound(payload: Any) -> InboundResult | None:
    """`{service: "channels", event: "sms.inbound" | "whatsapp.inbound", payload: <message>}`."""
    payload = _obj(payload, "Bird webhook payload")
    event = payload.get("event")
    if not isinstance(event, str):
        raise InboundPayloadError("Bird webhook payload has no 'event'")
    if event not in _BIRD_EVENTS:
        return None  # sms.outbound and the rest
    message = _obj(payload.get("payload"), "Bird 'payload'")
    if message.get("direction", "incoming") != "incoming":
        return None
    contact = _obj(_obj(message.get("sender"), "Bird sender").get("contact"), "Bird sender.contact")
    if contact.get("identifierKey", "phonenumber") != "phonenumber":
        return None  # e.g. an email identity: no number to answer
    number = to_e164(contact.get("identifierValue"), "Bird sender.contact.identifierValue")
    receiver = message.get("receiver")
    connector = receiver.get("connector") if isinstance(receiver, dict) else None
    annotations = contact.get("annotations")
    text, media, unsupported = _bird_body(message.get("body"))
    return InboundResult(message=InboundMessage(
        provider="bird", sender="bird", channel=_BIRD_EVENTS[event], from_number=number,
        to_number=_optional_e164(connector.get("identifierValue"), "Bird receiver") if isinstance(connector, dict) else None,
        text=text, media=media, provider_message_id=_id(message.get("id"), "Bird message id"),
        received_at=_when(message.get("createdAt")),
        contact_name=_str(annotations.get("name")) if isinstance(annotations, dict) else None,
        channel_ref=_str(message.get("channelId")), unsupported_type=unsupported,
    ))


# --------------------------------------------------------------------------- TextUs

_TEXTUS_TYPES = ("WebhookDelivery", "OptOutWebhookDelivery")
_TEXTUS_CONSENT: dict[str, ConsentAction] = {"contact.opted_out": "opted_out", "contact.opted_in": "opted_in"}
_TEXTUS_OPTOUT_TYPE: dict[str, ConsentAction] = {"opt-out": "opted_out", "opt-in": "opted_in"}


def _textus_attachments(message: dict[str, Any]) -> list[InboundMedia]:
    """`attachments{members, totalItems}`; a member's keys are not documented (inferred)."""
    attachments = message.get("attachments")
    members = attachments.get("members") if isinstance(attachments, dict) else None
    out: list[InboundMedia] = []
    for item in members if isinstance(members, list) else []:
        if not isinstance(item, dict):
            continue
        url = _str(item.get("url")) or _str(item.get("uri")) or _str(item.get("mediaUrl"))
        if url is None:
            continue
        ctype = _str(item.get("contentType")) or _str(item.get("content_type"))
        kind: MediaKind = "image" if (ctype or "").startswith("image/") else (
            "video" if (ctype or "").startswith("video/") else "file")
        out.append(InboundMedia(url=url, kind=kind, content_type=ctype,
                                filename=_str(item.get("originalFilename")) or _str(item.get("filename"))))
    return out


def _textus_message(payload: dict[str, Any]) -> InboundResult | None:
    message = payload.get("message")
    if not isinstance(message, dict):
        message = _obj(payload.get("payload"), "TextUs 'message'")
    if message.get("direction", "in") != "in":
        return None
    conversation = _obj(payload.get("conversation"), "TextUs 'conversation'")
    contact = conversation.get("contact")
    sender = message.get("sender")
    name = (_str(contact.get("name")) if isinstance(contact, dict) else None) or (
        _str(sender.get("name")) if isinstance(sender, dict) else None)
    body = message.get("body")
    return InboundResult(message=InboundMessage(
        provider="textus", sender="textus",
        channel="whatsapp" if message.get("channel") == "whatsapp" else "sms",
        from_number=to_e164(conversation.get("phoneNumber"), "TextUs conversation.phoneNumber"),
        to_number=_optional_e164(conversation.get("accountPhoneNumber"), "TextUs accountPhoneNumber"),
        text=body if isinstance(body, str) else "", media=_textus_attachments(message),
        provider_message_id=_id(message.get("id"), "TextUs message id"),
        received_at=_when(message.get("createdAt")) or _when(payload.get("timestamp")),
        contact_name=name, channel_ref=_str(conversation.get("id")),
    ))


def _textus_opt_number(payload: dict[str, Any]) -> str:
    """The number: optOut (third-party fixture), contact, conversation, or top level (inferred)."""
    for key in ("optOut", "contact", "conversation"):
        holder = payload.get(key)
        if isinstance(holder, dict):
            for field in ("phoneNumber", "formattedPhoneNumber", "phone_number"):
                if _str(holder.get(field)):
                    return to_e164(holder[field], f"TextUs {key}.{field}")
    if _str(payload.get("phoneNumber")):
        return to_e164(payload["phoneNumber"], "TextUs phoneNumber")
    raise InboundPayloadError("TextUs opt-out event carries no phone number")


def _textus_consent(payload: dict[str, Any], action: ConsentAction) -> InboundResult:
    return InboundResult(consent=ConsentEvent(
        action=action, number=_textus_opt_number(payload), source=SOURCE_TEXTUS_EVENT,
        # TextUs opt-outs are account-wide and come from SMS replies: the SMS family (see report).
        provider="textus", sender="textus", channel="sms",
        provider_ref=_str(payload.get("id")), occurred_at=_when(payload.get("timestamp")),
    ))


def parse_textus_inbound(payload: Any) -> InboundResult | None:
    """`{"@type": "WebhookDelivery", action: "message.received" | "contact.opted_out" | ...}`."""
    payload = _obj(payload, "TextUs webhook payload")
    kind = payload.get("@type")
    if kind is not None and kind not in _TEXTUS_TYPES:
        raise InboundPayloadError(f"TextUs webhook of unexpected @type {str(kind)[:40]!r}")
    action = payload.get("action")
    if action is None and kind == "OptOutWebhookDelivery":
        opt = payload.get("optOut")
        kind_of = opt.get("type") if isinstance(opt, dict) else None
        found = _TEXTUS_OPTOUT_TYPE.get(kind_of) if isinstance(kind_of, str) else None
        if found is None:
            raise InboundPayloadError("TextUs opt-out delivery has no action and no optOut.type")
        return _textus_consent(payload, found)
    if not isinstance(action, str):
        raise InboundPayloadError("TextUs webhook has no 'action'")
    if action == "message.received":
        return _textus_message(payload)
    if action in _TEXTUS_CONSENT:
        return _textus_consent(payload, _TEXTUS_CONSENT[action])
    return None  # delivery statuses, phone calls, contact.created


PARSERS: dict[str, Callable[[Any], InboundResult | None]] = {
    "sociocs": parse_sociocs_inbound,
    "bird": parse_bird_inbound,
    "textus": parse_textus_inbound,
}


def parse_inbound(family: str, payload: Any) -> InboundResult | None:
    """Dispatch on the webhook route's provider family ("sociocs", "bird", "textus")."""
    parser = PARSERS.get(family)
    if parser is None:
        raise InboundPayloadError(f"no inbound parser for provider {family[:20]!r}")
    return parser(payload)


# --------------------------------------------------------------------------- opt-out errors

# 21610 is Twilio's "Attempt to send to unsubscribed recipient"; its text counts too.
_TWILIO_OPTED_OUT = re.compile(r"(?<!\d)21610(?!\d)|unsubscribed recipient", re.IGNORECASE)
_TEXTUS_OPTED_OUT = re.compile(r"\b(is )?opted[ -]?out\b", re.IGNORECASE)


def _codes(error: Any) -> list[str]:
    """Every code-like value in an error: a code, a dict's code/error_code/status, nested."""
    if isinstance(error, bool) or error is None:
        return []
    if isinstance(error, int | str):
        return [str(error)]
    if isinstance(error, Mapping):
        out: list[str] = []
        for key in ("code", "error_code", "errorCode", "error", "provider_err_obj", "message"):
            out += _codes(error.get(key))
        return out
    return []


def opt_out_error_source(provider: str, error: Any) -> str | None:
    """The ConsentEvent source when a send error means "the recipient opted out", else None.

    `error`: the status event's `event_data` or its `error` (dict), a code, or the text the
    delivery layer kept (e.g. "Attempt to send to unsubscribed recipient (code 21610)").
    Sociocs relays Twilio's 21610; TextUs answers 422 `{"errors": {"to": ["is opted out"]}}`.
    Bird documents no such code: its blocked pairs are not recognised (None)."""
    if provider in ("sociocs", *SOCIOCS_SENDERS):
        return SOURCE_TWILIO_21610 if any(_TWILIO_OPTED_OUT.search(c) for c in _codes(error)) else None
    if provider == "textus":
        texts = [str(error)] if not isinstance(error, Mapping) else [str(error.get("errors", error))]
        return SOURCE_TEXTUS_OPTED_OUT_ERROR if any(_TEXTUS_OPTED_OUT.search(t) for t in texts) else None
    return None


def is_opt_out_error(provider: str, error: Any) -> bool:
    return opt_out_error_source(provider, error) is not None
