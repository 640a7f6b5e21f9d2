"""Webhook payloads of the three providers turned into neutral delivery events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from providers.events import DeliveryEvent, parse_bird_event, parse_sociocs_event, parse_textus_event

# --------------------------------------------------------------------------- Sociocs


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"message_id": "Xyz12345", "event": "status_update", "event_data": {"status": "delivered"}},
            DeliveryEvent(provider="sociocs", provider_message_id="Xyz12345", status="delivered",
                          raw_status="delivered"),
        ),
        (
            {"message_id": "Xyz1", "event": "status_update", "event_data": {"status": "read"}},
            DeliveryEvent(provider="sociocs", provider_message_id="Xyz1", status="read", raw_status="read"),
        ),
        (
            {"message_id": "Xyz2", "event": "status_update",
             "event_data": {"status": "failed", "error": {"code": 30006, "message": "Landline or unreachable carrier"},
                            "provider_err_obj": {}}},
            DeliveryEvent(provider="sociocs", provider_message_id="Xyz2", status="failed",
                          error="Landline or unreachable carrier (code 30006)", raw_status="failed"),
        ),
        (
            {"message_id": 77, "event": "status_update", "event_data": {"status": "sent"},
             "timestamp": 1700000000000},
            DeliveryEvent(provider="sociocs", provider_message_id="77", status="sent", raw_status="sent",
                          occurred_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ),
        (
            {"message_id": "Xyz3", "event": "status_update", "event_data": {"status": "queued"}},
            DeliveryEvent(provider="sociocs", provider_message_id="Xyz3", status="unknown", raw_status="queued"),
        ),
    ],
)
def test_sociocs_status_updates(payload: dict[str, Any], expected: DeliveryEvent) -> None:
    assert parse_sociocs_event(payload) == expected


def test_sociocs_incoming_message_is_not_a_status() -> None:
    payload = {"message_id": "in1", "event": "message", "provider": "twlo", "direction": "inbound",
               "from": "+16175551212", "text": "STOP", "timestamp": 1700000000000}
    assert parse_sociocs_event(payload) is None


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"message_id": "x"},
        {"event": "status_update", "event_data": {"status": "sent"}},
        {"message_id": "x", "event": "status_update"},
        {"message_id": "x", "event": "status_update", "event_data": {"error": {}}},
    ],
)
def test_sociocs_malformed(payload: Any) -> None:
    with pytest.raises(ValueError):
        parse_sociocs_event(payload)


# --------------------------------------------------------------------------- Bird

MSG = {"id": "123e4567-e89b-12d3-a456-426614174000", "status": "delivered", "direction": "outgoing",
       "lastStatusAt": "2024-11-21T09:14:49.469Z"}


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        (MSG, "delivered", None),
        ({"service": "channels", "event": "sms.outbound", "payload": MSG}, "delivered", None),
        ({**MSG, "status": "sent"}, "sent", None),
        ({**MSG, "status": "delivery_failed", "failure": {"description": "Unsupported media type",
                                                          "source": {"code": "x", "name": "y"}}},
         "failed", "Unsupported media type"),
        ({**MSG, "status": "sending_failed"}, "failed", "sending_failed"),
        ({**MSG, "status": "rejected", "reason": "blocked"}, "failed", "blocked"),
        ({**MSG, "status": "deleted"}, "unknown", None),
    ],
)
def test_bird_events(payload: dict[str, Any], status: str, error: str | None) -> None:
    event = parse_bird_event(payload)
    assert event is not None
    assert (event.provider, event.provider_message_id, event.status, event.error) == (
        "bird", MSG["id"], status, error)
    assert event.occurred_at == datetime(2024, 11, 21, 9, 14, 49, 469000, tzinfo=UTC)


@pytest.mark.parametrize(
    "payload",
    [
        {**MSG, "status": "accepted"},
        {**MSG, "status": "processing"},
        {**MSG, "status": "scheduled"},
        {"event": "sms.inbound", "payload": {**MSG, "direction": "incoming"}},
        {**MSG, "direction": "incoming"},
    ],
)
def test_bird_events_that_are_not_delivery_facts(payload: dict[str, Any]) -> None:
    assert parse_bird_event(payload) is None


@pytest.mark.parametrize("payload", ["x", {"payload": "x"}, {"status": "sent"}, {"id": "a"}, {"payload": {}}])
def test_bird_malformed(payload: Any) -> None:
    with pytest.raises(ValueError):
        parse_bird_event(payload)


# --------------------------------------------------------------------------- TextUs

ENV = {"@type": "WebhookDelivery", "timestamp": "2018-07-24T20:59:32.156Z"}


@pytest.mark.parametrize(
    ("payload", "status", "raw"),
    [
        ({**ENV, "action": "message.delivered", "payload": {"@type": "Message", "id": "/messages/QNDkpL",
                                                             "deliveryState": "delivered"}},
         "delivered", "delivered"),
        ({**ENV, "action": "message.unknown", "message": {"id": "/messages/QNDkpL"}}, "unknown", "message.unknown"),
        ({**ENV, "action": "message.delivered", "data": {"message": {"id": "/messages/QNDkpL"}}},
         "delivered", "message.delivered"),
        ({**ENV, "action": "message.delivered", "message": "/messages/QNDkpL"}, "delivered", "message.delivered"),
        ({**ENV, "action": "message.delivered", "id": "/messages/QNDkpL"}, "delivered", "message.delivered"),
    ],
)
def test_textus_events(payload: dict[str, Any], status: str, raw: str) -> None:
    event = parse_textus_event(payload)
    assert event is not None
    assert (event.provider, event.provider_message_id, event.status, event.raw_status) == (
        "textus", "/messages/QNDkpL", status, raw)
    assert event.occurred_at == datetime(2018, 7, 24, 20, 59, 32, 156000, tzinfo=UTC)


def test_textus_failed_carries_the_description() -> None:
    payload = {**ENV, "action": "message.failed",
               "payload": {"id": "/messages/Ab", "deliveryState": "failed",
                           "friendlyStateDescription": "Message Failed: carrier blocked"}}
    event = parse_textus_event(payload)
    assert event is not None
    assert (event.status, event.error) == ("failed", "Message Failed: carrier blocked")


@pytest.mark.parametrize("action", ["message.received", "contact.opted_out", "contact.created"])
def test_textus_other_actions_are_not_statuses(action: str) -> None:
    assert parse_textus_event({**ENV, "action": action, "payload": {"id": "/messages/x"}}) is None


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {"@type": "Message", "action": "message.delivered", "id": "/messages/x"},
        {**ENV},
        {**ENV, "action": "message.delivered"},
        {**ENV, "action": "message.delivered", "id": "QNDkpL"},
    ],
)
def test_textus_malformed(payload: Any) -> None:
    with pytest.raises(ValueError):
        parse_textus_event(payload)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1532465972, datetime(2018, 7, 24, 20, 59, 32, tzinfo=UTC)),
        ("1532465972156", datetime(2018, 7, 24, 20, 59, 32, 156000, tzinfo=UTC)),
        ("2018-07-24T20:59:32", datetime(2018, 7, 24, 20, 59, 32, tzinfo=UTC)),
        ("not a time", None),
        (None, None),
    ],
)
def test_timestamps_are_read_liberally(timestamp: Any, expected: datetime | None) -> None:
    event = parse_textus_event({"@type": "WebhookDelivery", "timestamp": timestamp, "action": "message.delivered",
                                "payload": {"id": "/messages/x"}})
    assert event is not None and event.occurred_at == expected
