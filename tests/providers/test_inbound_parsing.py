"""Inbound webhook payloads (inbound-notes.md) parsed field by field into the neutral models."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from providers.inbound import (
    SOURCE_SOCIOCS_BLOCKED,
    SOURCE_TEXTUS_EVENT,
    SOURCE_TEXTUS_OPTED_OUT_ERROR,
    SOURCE_TWILIO_21610,
    InboundMedia,
    InboundPayloadError,
    is_opt_out_error,
    opt_out_error_source,
    parse_bird_inbound,
    parse_inbound,
    parse_sociocs_inbound,
    parse_textus_inbound,
    sociocs_sender,
)

# The documented examples, verbatim (inbound-notes.md sections 1-3).
SOCIOCS_DOC = {
    "message_id": "MM1", "event": "message", "provider": "twlowa", "channel_key": "twlowa_15550001111",
    "direction": "incoming", "from": "15552223333", "to": "15550001111", "text": "STOP",
    "image_urls": [], "video_urls": [], "file_urls": [],
    "contact": {"id": 7, "name": "Ann", "phone_number": "15552223333", "phone_number_cc": "",
                "extra_fields": "{}", "created_at": "2025-07-11T00:00:00.000Z",
                "updated_at": "2025-07-11T00:00:00.000Z", "is_blocked": 0},
    "timestamp": 1754455905897,
}
BIRD_DOC = {
    "service": "channels", "event": "whatsapp.inbound",
    "payload": {"id": "m1", "channelId": "c1",
                "sender": {"contact": {"id": "k1", "identifierKey": "phonenumber", "identifierValue": "+15552223333"}},
                "receiver": {"connector": {"id": "n1"}},
                "body": {"type": "image", "image": {"images": [
                    {"mediaUrl": "https://media.api.bird.com/workspaces/w/messages/m1/media/x"}]}},
                "direction": "incoming", "createdAt": "2025-01-01T00:00:00Z"},
}
TEXTUS_DOC = {
    "@type": "WebhookDelivery", "id": "/integrations/h1/deliveries/d1", "timestamp": "2025-01-01T00:00:00Z",
    "action": "message.received",
    "conversation": {"id": "/conversations/c1", "phoneNumber": "+15552223333", "accountPhoneNumber": "+15550001111"},
    "message": {"@type": "Message", "id": "/messages/m1", "direction": "in", "body": "hi",
                "attachments": {"members": [], "totalItems": 0}},
}


def with_(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with `a.b.c` set (or removed when value is ...)."""
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


# --------------------------------------------------------------------------- Sociocs


def test_sociocs_documented_example_field_by_field() -> None:
    result = parse_sociocs_inbound(SOCIOCS_DOC)
    assert result is not None and result.message is not None
    m = result.message
    assert (m.provider, m.sender, m.channel) == ("sociocs", "twlowa", "whatsapp")
    assert (m.from_number, m.to_number) == ("+15552223333", "+15550001111")
    assert (m.text, m.media, m.provider_message_id) == ("STOP", [], "MM1")
    assert m.received_at == datetime(2025, 8, 6, 4, 51, 45, 897000, tzinfo=UTC)
    assert (m.contact_name, m.channel_ref, m.unsupported_type) == ("Ann", "twlowa_15550001111", None)
    assert result.consent is None  # is_blocked 0 says nothing about consent


def test_sociocs_blocked_contact_is_an_opt_out_with_its_source() -> None:
    result = parse_sociocs_inbound(with_(SOCIOCS_DOC, "contact.is_blocked", 1))
    assert result is not None and result.message is not None and result.consent is not None
    c = result.consent
    assert (c.action, c.number, c.source, c.provider, c.sender, c.channel, c.provider_ref) == (
        "opted_out", "+15552223333", SOURCE_SOCIOCS_BLOCKED, "sociocs", "twlowa", "whatsapp", "MM1")
    assert c.occurred_at == result.message.received_at


def test_sociocs_media_urls_keep_their_kind_and_are_public() -> None:
    payload = {**SOCIOCS_DOC, "provider": "twlo", "channel_key": "twlo_15550001111", "text": "",
               "image_urls": ["https://x/i.jpg"], "video_urls": ["https://x/v.mp4"], "file_urls": ["https://x/f.pdf"]}
    result = parse_sociocs_inbound(payload)
    assert result is not None and result.message is not None
    assert (result.message.sender, result.message.channel) == ("twlo", "sms")
    assert result.message.media == [
        InboundMedia(url="https://x/i.jpg", kind="image"),
        InboundMedia(url="https://x/v.mp4", kind="video"),
        InboundMedia(url="https://x/f.pdf", kind="file"),
    ]


@pytest.mark.parametrize(
    ("provider", "channel_key", "sender"),
    [("gswa", "gswa_1", "gswa"), (None, "twlo_15550001111", "twlo"), ("twlowa", "twlo_1", "twlowa"),
     ("tlnx", "tlnx_1", None), (None, None, None), (None, "weird", None)],
)
def test_sociocs_sender_from_provider_then_channel_key(provider: Any, channel_key: Any, sender: str | None) -> None:
    assert sociocs_sender(provider, channel_key) == sender


def test_sociocs_without_contact_or_name_or_text() -> None:
    payload = {k: v for k, v in SOCIOCS_DOC.items() if k not in ("contact", "text", "to")}
    result = parse_sociocs_inbound(payload)
    assert result is not None and result.message is not None and result.consent is None
    assert (result.message.text, result.message.contact_name, result.message.to_number) == ("", None, None)


def test_sociocs_top_level_name_wins_over_contact_name() -> None:
    result = parse_sociocs_inbound({**SOCIOCS_DOC, "name": "Ann B."})
    assert result is not None and result.message is not None and result.message.contact_name == "Ann B."


@pytest.mark.parametrize(
    "payload",
    [{"message_id": "S1", "event": "status_update", "event_data": {"status": "sent"}},
     {**SOCIOCS_DOC, "direction": "outgoing"}, {**SOCIOCS_DOC, "event": "contact_created"}],
)
def test_sociocs_irrelevant_events_are_none(payload: dict[str, Any]) -> None:
    assert parse_sociocs_inbound(payload) is None


@pytest.mark.parametrize(
    ("payload", "needle"),
    [([], "not an object"), ({"message_id": "x"}, "no 'event'"),
     (with_(SOCIOCS_DOC, "from", ...), "'from'"), (with_(SOCIOCS_DOC, "from", "abc"), "'from'"),
     (with_(SOCIOCS_DOC, "from", "12"), "'from'"), (with_(SOCIOCS_DOC, "message_id", ...), "message_id"),
     (with_(SOCIOCS_DOC, "image_urls", "https://x"), "image_urls")],
)
def test_sociocs_malformed(payload: Any, needle: str) -> None:
    with pytest.raises(InboundPayloadError, match=needle) as err:
        parse_sociocs_inbound(payload)
    assert isinstance(err.value, ValueError)


# --------------------------------------------------------------------------- Bird


def test_bird_documented_example_field_by_field() -> None:
    result = parse_bird_inbound(BIRD_DOC)
    assert result is not None and result.message is not None and result.consent is None
    m = result.message
    assert (m.provider, m.sender, m.channel, m.from_number, m.to_number) == (
        "bird", "bird", "whatsapp", "+15552223333", None)
    assert (m.text, m.provider_message_id, m.channel_ref, m.contact_name) == ("", "m1", "c1", None)
    assert m.received_at == datetime(2025, 1, 1, tzinfo=UTC)
    assert m.media == [InboundMedia(url="https://media.api.bird.com/workspaces/w/messages/m1/media/x",
                                    kind="image", needs_bird_access_key=True)]


def test_bird_sms_text_with_name_and_business_number() -> None:
    payload = with_(BIRD_DOC, "event", "sms.inbound")
    payload["payload"]["body"] = {"type": "text", "text": {"text": "Can we come at 8?"}}
    payload["payload"]["sender"]["contact"]["annotations"] = {"name": "Ann"}
    payload["payload"]["receiver"]["connector"]["identifierValue"] = "+15550001111"
    result = parse_bird_inbound(payload)
    assert result is not None and result.message is not None
    m = result.message
    assert (m.channel, m.text, m.media, m.contact_name, m.to_number) == (
        "sms", "Can we come at 8?", [], "Ann", "+15550001111")


def test_bird_file_body_and_the_access_key_only_for_bird_hosts() -> None:
    payload = copy.deepcopy(BIRD_DOC)
    payload["payload"]["body"] = {"type": "file", "file": {"files": [
        {"mediaUrl": "https://media.api.bird.com/f/1", "contentType": "application/pdf", "filename": "a.pdf"},
        {"mediaUrl": "https://evil.example/bird.com/f", "contentType": "image/png"},
        {"mediaUrl": "http://media.api.bird.com/f/2", "contentType": "image/png"},
    ]}}
    result = parse_bird_inbound(payload)
    assert result is not None and result.message is not None
    media = result.message.media
    assert [(x.kind, x.content_type, x.filename) for x in media] == [
        ("file", "application/pdf", "a.pdf"), ("file", "image/png", None), ("file", "image/png", None)]
    # The AccessKey must never travel to another host, nor over plain HTTP.
    assert [x.needs_bird_access_key for x in media] == [True, False, False]


def test_bird_unknown_body_type_keeps_the_message() -> None:
    payload = with_(BIRD_DOC, "payload.body", {"type": "location", "location": {}})
    result = parse_bird_inbound(payload)
    assert result is not None and result.message is not None
    assert (result.message.text, result.message.unsupported_type) == ("", "location")


@pytest.mark.parametrize(
    "payload",
    [with_(BIRD_DOC, "event", "sms.outbound"), with_(BIRD_DOC, "event", "whatsapp.outbound"),
     with_(BIRD_DOC, "payload.direction", "outgoing"),
     with_(BIRD_DOC, "payload.sender.contact.identifierKey", "emailaddress")],
)
def test_bird_irrelevant_events_are_none(payload: dict[str, Any]) -> None:
    assert parse_bird_inbound(payload) is None


@pytest.mark.parametrize(
    ("payload", "needle"),
    [("x", "not an object"), (with_(BIRD_DOC, "event", ...), "no 'event'"),
     (with_(BIRD_DOC, "payload", None), "payload"), (with_(BIRD_DOC, "payload.sender", ...), "sender"),
     (with_(BIRD_DOC, "payload.sender.contact.identifierValue", "nope"), "identifierValue"),
     (with_(BIRD_DOC, "payload.id", ""), "message id"), (with_(BIRD_DOC, "payload.body", ...), "body"),
     (with_(BIRD_DOC, "payload.body", {"type": "text", "text": {}}), "text.text"),
     (with_(BIRD_DOC, "payload.body.image.images", [{"altText": "x"}]), "mediaUrl")],
)
def test_bird_malformed(payload: Any, needle: str) -> None:
    with pytest.raises(InboundPayloadError, match=needle):
        parse_bird_inbound(payload)


# --------------------------------------------------------------------------- TextUs


def test_textus_documented_example_field_by_field() -> None:
    result = parse_textus_inbound(TEXTUS_DOC)
    assert result is not None and result.message is not None and result.consent is None
    m = result.message
    assert (m.provider, m.sender, m.channel, m.from_number, m.to_number) == (
        "textus", "textus", "sms", "+15552223333", "+15550001111")
    assert (m.text, m.media, m.provider_message_id, m.channel_ref, m.contact_name) == (
        "hi", [], "/messages/m1", "/conversations/c1", None)
    assert m.received_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_textus_attachments_and_whatsapp_channel() -> None:
    payload = with_(TEXTUS_DOC, "message.attachments", {"totalItems": 2, "members": [
        {"url": "https://t/x.jpg", "contentType": "image/jpeg", "originalFilename": "x.jpg"},
        {"url": "https://t/y.pdf", "contentType": "application/pdf"}, {"nourl": 1}]})
    payload["message"]["channel"] = "whatsapp"
    result = parse_textus_inbound(payload)
    assert result is not None and result.message is not None
    assert result.message.channel == "whatsapp"
    assert [(x.url, x.kind, x.content_type, x.filename) for x in result.message.media] == [
        ("https://t/x.jpg", "image", "image/jpeg", "x.jpg"), ("https://t/y.pdf", "file", "application/pdf", None)]


@pytest.mark.parametrize(("action", "expected"), [("contact.opted_out", "opted_out"), ("contact.opted_in", "opted_in")])
def test_textus_contact_consent_events(action: str, expected: str) -> None:
    payload = {"@type": "WebhookDelivery", "id": "/integrations/h1/deliveries/d2",
               "timestamp": "2025-01-02T10:00:00Z", "action": action,
               "conversation": {"phoneNumber": "+15552223333"}}
    result = parse_textus_inbound(payload)
    assert result is not None and result.message is None and result.consent is not None
    c = result.consent
    assert (c.action, c.number, c.source, c.provider, c.channel, c.provider_ref) == (
        expected, "+15552223333", SOURCE_TEXTUS_EVENT, "textus", "sms", "/integrations/h1/deliveries/d2")
    assert c.occurred_at == datetime(2025, 1, 2, 10, tzinfo=UTC)


@pytest.mark.parametrize(("kind", "expected"), [("opt-out", "opted_out"), ("opt-in", "opted_in")])
def test_textus_third_party_optout_delivery_shape(kind: str, expected: str) -> None:
    payload = {"@type": "OptOutWebhookDelivery", "id": "d3",
               "optOut": {"id": "o1", "type": kind, "phoneNumber": "+15552223333",
                          "formattedPhoneNumber": "(555) 222-3333"}}
    result = parse_textus_inbound(payload)
    assert result is not None and result.consent is not None
    assert (result.consent.action, result.consent.number) == (expected, "+15552223333")
    # With an action, the action decides.
    result = parse_textus_inbound({**payload, "action": "contact.opted_out"})
    assert result is not None and result.consent is not None and result.consent.action == "opted_out"


@pytest.mark.parametrize("action", ["message.delivered", "message.failed", "phone_call.completed", "contact.created"])
def test_textus_irrelevant_actions_are_none(action: str) -> None:
    assert parse_textus_inbound({**TEXTUS_DOC, "action": action}) is None


def test_textus_outgoing_message_is_none() -> None:
    assert parse_textus_inbound(with_(TEXTUS_DOC, "message.direction", "out")) is None


@pytest.mark.parametrize(
    ("payload", "needle"),
    [(None, "not an object"), ({**TEXTUS_DOC, "@type": "Message"}, "@type"), (with_(TEXTUS_DOC, "action", ...), "action"),
     (with_(TEXTUS_DOC, "message", ...), "'message'"), (with_(TEXTUS_DOC, "conversation", ...), "conversation"),
     (with_(TEXTUS_DOC, "conversation.phoneNumber", ...), "phoneNumber"), (with_(TEXTUS_DOC, "message.id", ...), "message id"),
     ({"@type": "WebhookDelivery", "action": "contact.opted_out"}, "no phone number"),
     ({"@type": "OptOutWebhookDelivery", "optOut": {"type": "maybe"}}, "optOut.type")],
)
def test_textus_malformed(payload: Any, needle: str) -> None:
    with pytest.raises(InboundPayloadError, match=needle):
        parse_textus_inbound(payload)


# --------------------------------------------------------------------------- dispatch, errors


def test_parse_inbound_dispatches_by_family() -> None:
    for family, payload in (("sociocs", SOCIOCS_DOC), ("bird", BIRD_DOC), ("textus", TEXTUS_DOC)):
        result = parse_inbound(family, payload)
        assert result is not None and result.message is not None and result.message.provider == family
    with pytest.raises(InboundPayloadError, match="no inbound parser"):
        parse_inbound("sandbox", {})


@pytest.mark.parametrize(
    ("provider", "error", "source"),
    [
        ("sociocs", {"status": "failed", "error": {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}},
         SOURCE_TWILIO_21610),
        ("sociocs", {"status": "failed", "error": None, "provider_err_obj": {"code": 21610}}, SOURCE_TWILIO_21610),
        ("sociocs", {"code": "21610"}, SOURCE_TWILIO_21610),
        ("twlo", "Attempt to send to unsubscribed recipient (code 21610)", SOURCE_TWILIO_21610),
        ("sociocs", 21610, SOURCE_TWILIO_21610),
        ("sociocs", {"status": "failed", "error": {"code": 30003, "message": "Unreachable"}}, None),
        ("sociocs", {"code": 216100}, None),
        ("sociocs", {"status": "failed", "error": {"code": 63016, "message": "outside window"}}, None),
        ("sociocs", None, None),
        ("textus", {"errors": {"to": ["is opted out"]}}, SOURCE_TEXTUS_OPTED_OUT_ERROR),
        ("textus", "TextUs refused the message (422): to is opted out", SOURCE_TEXTUS_OPTED_OUT_ERROR),
        ("textus", {"errors": {"to": ["is invalid"]}}, None),
        ("bird", {"description": "blocked"}, None),
    ],
)
def test_opt_out_errors(provider: str, error: Any, source: str | None) -> None:
    assert opt_out_error_source(provider, error) == source
    assert is_opt_out_error(provider, error) is (source is not None)
