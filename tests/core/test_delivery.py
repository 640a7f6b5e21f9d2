"""Delivery beyond single webhooks: sender health alerts, reconciling unknown sends,
notify_channel, and the coalescing updater on its own."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.slack.blocks.history import status_line
from bot.slack.delivery_view import notify_channel
from bot.slack.outbox import SlackOutbox
from storage.store import MessageRow
from tests.conftest import E2E, SOCIOCS_KEY
from tests.fakes.providers import Fault
from tests.fakes.slack import FakeSlack


@pytest.fixture
def make(e2e_factory: Callable[..., E2E]) -> Iterator[Callable[..., E2E]]:
    made: list[E2E] = []

    def build(**settings: Any) -> E2E:
        e2e = e2e_factory(sms_notify_channel="C2", **settings)
        made.append(e2e)
        return e2e

    yield build
    for e2e in made:
        e2e.rt.ctx.delivery.stop()


def channel_posts(e2e: E2E, channel: str = "C2") -> list[str]:
    return [c["params"]["text"] for c in e2e.slack.calls_to("chat.postMessage")
            if c["params"].get("channel") == channel and not c["params"].get("thread_ts")]


def test_a_failing_sender_alerts_once_and_says_when_it_recovers(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.providers.script("/message", [Fault(status=401, body={"status": "error", "errors": [{"msg": "bad"}]})] * 4)
    for i in range(4):
        e2e.command(f"send +16175551212 Attempt {i}", user_id="U1", channel_id="C1")
    e2e.wait(lambda: e2e.rt.store.counts_by_status().get("failed") == 4, 8, "four failures")
    delivery = e2e.rt.ctx.delivery
    assert delivery.outbox.flush()
    alerts = [t for t in channel_posts(e2e) if "keeps failing" in t]
    assert alerts == [
        ":rotating_light: Twilio SMS keeps failing (3 sends in a row): Sociocs rejects the API key: check "
        "SOCIOCS_API_KEY Sends through `twlo` fail until this is fixed; I'll say here when it works again."
    ]
    e2e.command("send +16175551212 Fixed now", user_id="U1", channel_id="C1")
    recovered = e2e.wait(lambda: [t for t in channel_posts(e2e) if t.endswith("went through.")], 5, "recovery")
    assert recovered == [":white_check_mark: Twilio SMS works again: message #5 went through."]
    assert delivery.queries.health("twlo")["state"] == "ok"
    everything = " ".join(channel_posts(e2e))
    assert SOCIOCS_KEY not in everything and "sociocs-secret-key" not in everything


def test_unknown_send_found_at_sociocs_is_settled_as_sent(make: Callable[..., E2E]) -> None:
    e2e = make(sms_notify_on="all")
    e2e.providers.script("/message", [Fault(status=503, body="upstream down")])
    e2e.command("send +16175551212 Did it go?", user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status == "unknown" and r.status_ts and r, 5, "unknown")
    # Sociocs did take it after all: its message list shows it.
    e2e.providers.sociocs_messages.put("SOC123", {"message_id": "SOC123", "provider": "twlo", "to": "+16175551212",
                                                  "text": "Did it go?", "_t": time.time()})
    delivery = e2e.rt.ctx.delivery
    assert delivery.reconcile_once() == {1: "sent"}
    update = e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == row.status_ts)[-1]
    assert "message id `SOC123`" in update["params"]["text"]
    assert "Found at Sociocs after the unknown outcome: it was sent." in update["params"]["text"]
    fresh = e2e.rt.store.get(1)
    assert fresh.status == "sent" and fresh.provider_message_id == "SOC123"
    assert delivery.reconcile_once() == {}  # settled rows are not looked at again


def test_unknown_send_not_found_stays_unknown_and_the_thread_says_what_to_check(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.providers.script("/message", [Fault(status=503, body="upstream down")])
    e2e.command("send +16175551212 Lost?", user_id="U1", channel_id="C1")
    e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status == "unknown" and r.status_ts and r, 5, "unknown")
    delivery = e2e.rt.ctx.delivery
    assert delivery.reconcile_once() == {1: "waiting"}  # inside the window: keep looking
    # Not listed an hour later: GET /messages has no documented paging, so that proves nothing.
    assert delivery.reconcile_once(now=time.time() + 3600) == {1: "unknown"}
    assert delivery.reconcile_once(now=time.time() + 3600) == {1: "unknown"}
    assert delivery.outbox.flush()
    row = e2e.rt.store.get(1)
    assert row.status == "unknown"
    assert "check with the provider before sending it again" in row.error
    notes = [c["params"]["text"] for c in e2e.thread_replies() if c["params"]["text"].startswith(":mag: #1:")]
    assert len(notes) == 1 and "Sociocs does not list it 15 minutes after the attempt" in notes[0]
    said = json.dumps([c["params"] for c in e2e.slack.calls]).lower()
    assert "you can send it again" not in said and "not delivered" not in said and "was not sent" not in said


def test_unknown_bird_send_without_an_id_says_what_to_check_once(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.providers.script("/messages", [Fault(status=502, body="bad gateway")])
    e2e.command("send --via bird +16175551212 Hi", user_id="U1", channel_id="C1")
    e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status == "unknown" and r.status_ts, 5, "unknown")
    delivery = e2e.rt.ctx.delivery
    assert delivery.reconcile_once() == {1: "no lookup"}
    assert delivery.reconcile_once() == {1: "no lookup"}
    assert delivery.outbox.flush()
    notes = [c for c in e2e.thread_replies() if "reference `smsbot-1`" in c["params"]["text"]]
    assert len(notes) == 1


def test_notify_channel_posts_a_bulk_summary(make: Callable[..., E2E]) -> None:
    e2e = make()
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Bulk #3 done*: 98 sent, 2 failed"}}]
    assert notify_channel(e2e.rt.ctx, "Bulk #3 done: 98 sent, 2 failed", blocks) is True
    call = e2e.slack.wait_for("chat.postMessage", lambda c: c["params"].get("channel") == "C2")[0]
    assert call["params"]["text"] == "Bulk #3 done: 98 sent, 2 failed"
    assert call["params"]["blocks"] == blocks


def test_notify_channel_without_a_channel_says_no(e2e_factory: Callable[..., E2E]) -> None:
    e2e = e2e_factory()
    try:
        assert notify_channel(e2e.rt.ctx, "hello") is False
    finally:
        e2e.rt.ctx.delivery.stop()


# ---------------------------------------------------------------- the updater alone


def _row(**kw: Any) -> MessageRow:
    base = dict(id=1, idem_key="k", sender="twlo", to_number="+16175551212", payload={"text": "hi"},
                status="sent", due_at=0, created_at=0, updated_at=0, provider_message_id="p1")
    return MessageRow.model_validate({**base, **kw})


def test_outbox_coalesces_a_burst_per_message_and_keeps_work_through_429s() -> None:
    with FakeSlack() as slack:
        client = WebClient(token="xoxb-test-token", base_url=slack.base_url)
        msg = client.chat_postMessage(channel="C1", text="status")
        state = {"text": "v0"}
        gate = threading.Event()

        def render(message_id: int) -> Callable[[], None]:
            gate.wait(2)
            text = state["text"]
            return lambda: outbox.update_line(message_id, "C1", msg["ts"], text)

        outbox = SlackOutbox(client, ["sekrit"], render)
        outbox.start()
        try:
            slack.fail_next("chat.update", status=429, retry_after=1)
            for i in range(50):  # 50 events for one message while the thread is busy
                state["text"] = f"v{i} sekrit"
                outbox.touch(1)
            gate.set()
            assert outbox.flush(6)
            calls = slack.calls_to("chat.update")
            assert [c.status for c in calls] == [429, 200]
            assert calls[-1]["params"]["text"] == "v49 ***"  # latest state, redacted
        finally:
            outbox.stop()


def test_status_line_words() -> None:
    assert status_line(_row(delivery="delivered"), "Twilio SMS", True) == (
        ":white_check_mark: Accepted by Twilio SMS — message id `p1`. Status: delivered.")
    assert status_line(_row(delivery="failed", delivery_error="Blocked"), "Bird SMS", True) == (
        ":x: Accepted by Bird SMS — message id `p1`. Status: delivery failed: Blocked.")
    assert status_line(_row(delivery="accepted"), "TextUs", False).endswith(
        "Delivery reports are off for TextUs, so this is the last known state.")
