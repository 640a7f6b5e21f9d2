"""End to end (issue 13): customers' replies land in the send's thread, over signed webhooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import BIRD_CH, E2E
from tests.e2e.test_e2e_webhooks import SECRETS, bird_post, sent_row, sociocs_post, textus_post

NUMBER = "+16175551212"


@pytest.fixture
def make(e2e_factory: Callable[..., E2E]) -> Iterator[Callable[..., E2E]]:
    def build(**settings: Any) -> E2E:
        values = {**SECRETS, **settings}
        return e2e_factory(**{k: v for k, v in values.items() if v is not None})

    yield build


def sociocs_inbound(text: str, mid: str = "MM1", sender: str = "twlo", frm: str = "16175551212",
                    **extra: Any) -> dict[str, Any]:
    return {"message_id": mid, "event": "message", "provider": sender, "channel_key": f"{sender}_15550001111",
            "direction": "incoming", "from": frm, "to": "15550001111", "text": text, "image_urls": [],
            "video_urls": [], "file_urls": [], "timestamp": 1754455905897, **extra}


def bird_inbound(body: dict[str, Any], mid: str = "bm1", event: str = "sms.inbound") -> dict[str, Any]:
    return {"service": "channels", "event": event, "payload": {
        "id": mid, "channelId": BIRD_CH, "direction": "incoming", "createdAt": "2025-01-01T00:00:00Z",
        "sender": {"contact": {"id": "k1", "identifierKey": "phonenumber", "identifierValue": NUMBER}},
        "receiver": {"connector": {"id": "n1"}}, "body": body}}


def textus_inbound(text: str, mid: str = "/messages/m1") -> dict[str, Any]:
    return {"@type": "WebhookDelivery", "id": "/integrations/h1/deliveries/d1", "timestamp": "2025-01-01T00:00:00Z",
            "action": "message.received",
            "conversation": {"id": "/conversations/c1", "phoneNumber": NUMBER, "accountPhoneNumber": "+15550001111"},
            "message": {"@type": "Message", "id": mid, "direction": "in", "body": text,
                        "attachments": {"members": [], "totalItems": 0}}}


def posts_in(e2e: E2E, channel: str, thread_ts: str, contains: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    return e2e.slack.wait_for("chat.postMessage", lambda c: c.ok and c["params"].get("channel") == channel
                              and c["params"].get("thread_ts") == thread_ts
                              and contains in c["params"].get("text", ""), timeout=timeout)


def flush(e2e: E2E) -> None:
    assert e2e.rt.conversations is not None and e2e.rt.conversations.flush()
    e2e.settle()


@pytest.mark.parametrize("via, post, payload", [
    ("twlo", sociocs_post, sociocs_inbound("Can we come at 8? <!channel>")),
    ("bird", bird_post, bird_inbound({"type": "text", "text": {"text": "Can we come at 8? <!channel>"}})),
    ("textus", textus_post, textus_inbound("Can we come at 8? <!channel>")),
])
def test_a_reply_lands_in_the_send_thread_escaped_and_mentions_the_sender(
        make: Callable[..., E2E], via: str, post: Any, payload: dict[str, Any]) -> None:
    e2e = make()
    row = sent_row(e2e, f"send --via {via} {NUMBER} Your table is ready")
    assert post(e2e, payload).status_code == 200
    found = posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "Can we come at 8?")
    text = found[-1]["params"]["text"]
    assert "<@U1>" in text and "+1 617-555-1212" in text and e2e.rt.senders.label(via) in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    # The provider re-delivers: nothing changes.
    assert post(e2e, payload).json()["result"] == "duplicate"
    flush(e2e)
    assert len([c for c in e2e.thread_replies(str(row.thread_channel)) if "Can we come" in c["params"]["text"]]) == 1
