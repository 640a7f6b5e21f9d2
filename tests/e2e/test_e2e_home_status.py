"""End to end: `/sms status` and the App Home tab, over signed Slack requests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from bot.core.sending import SendRequest
from bot.slack.blocks.history import MAX_VIEW_BLOCKS
from providers.events import DeliveryEvent
from tests.conftest import E2E
from tests.fakes.providers import Fault
from tests.fakes.slack_requests import app_home_opened_event


@pytest.fixture
def e2e(e2e_factory: Callable[..., E2E]) -> Iterator[E2E]:
    made = e2e_factory(sociocs_webhook_secret="whsec")
    yield made
    made.rt.ctx.delivery.stop()


def send_and_settle(e2e: E2E, text: str, count: int) -> None:
    e2e.command(text, user_id="U1", channel_id="C1")
    e2e.wait(lambda: sum(v for k, v in e2e.rt.store.counts_by_status().items()
                         if k in ("sent", "failed", "unknown")) >= count, 5, f"{count} final rows")


def test_status_shows_the_history_of_a_number_in_the_viewers_time_zone(e2e: E2E) -> None:
    e2e.slack.users["U2"] = {"tz": "Asia/Tokyo"}
    send_and_settle(e2e, "send +16175551212 First", 1)
    e2e.providers.script("/message", [Fault(status=400, body={"status": "error", "errors": [{"msg": "Blocked."}]})])
    send_and_settle(e2e, "send +16175551212 Second", 2)
    send_and_settle(e2e, "send +16175550000 Someone else", 3)
    pid = e2e.rt.store.get(1).provider_message_id
    e2e.rt.ctx.delivery.ingest(DeliveryEvent(provider="sociocs", provider_message_id=pid,
                                                       status="delivered"))

    resp = e2e.command("status (617) 555-1212", user_id="U2", channel_id="C1")
    answer = resp.json()
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == "Messages to +1 617-555-1212: 2 message(s)"
    shown = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
    assert shown[0] == "*Messages to +1 617-555-1212*"
    assert shown[1].startswith(":x: *#2* ") and "<@U1> via Twilio SMS · not sent: Sociocs refused the message" \
        in shown[1] and "Blocked." in shown[1]
    assert shown[2].startswith(":white_check_mark: *#1* ") and "· delivered · id `" in shown[2]
    assert "JST" in shown[1]  # the viewer's zone, not the sender's
    texts = [b["elements"][0]["text"] for b in answer["blocks"] if b["type"] == "context"]
    assert texts == ["Second", "First"]

    # By message id: the same history.
    by_id = e2e.command("status #1", user_id="U2").json()
    assert by_id["text"] == answer["text"]
    assert e2e.command("status 999", user_id="U2").json()["text"] == ":mag: No message #999."
    assert "neither a phone number" in e2e.command("status hello", user_id="U2").json()["text"]


def test_app_home_shows_today_failures_and_my_schedules(e2e: E2E) -> None:
    send_and_settle(e2e, "send +16175551212 One", 1)
    e2e.open_whatsapp_window()
    send_and_settle(e2e, "send --via twlowa +16175551212 Two", 2)
    e2e.providers.script("/message", [Fault(status=400, body={"status": "error", "errors": [{"msg": "Blocked."}]})])
    send_and_settle(e2e, "send +16175551213 Three", 3)
    pid = e2e.rt.store.get(1).provider_message_id
    e2e.rt.ctx.delivery.ingest(DeliveryEvent(provider="sociocs", provider_message_id=pid,
                                                       status="delivered"))
    e2e.command("send --at \"tomorrow 9am\" +16175551212 Later", user_id="U1", channel_id="C1")
    e2e.wait(lambda: e2e.rt.store.count_pending(created_by="U1") == 1, 5, "a schedule")

    assert e2e.sender.event(app_home_opened_event("U1")).status_code == 200
    call = e2e.slack.wait_for("views.publish")[0]
    assert call["params"]["user_id"] == "U1"
    view = call["params"]["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["type"] == "home" and len(view["blocks"]) <= MAX_VIEW_BLOCKS
    texts = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert "*Twilio SMS* (`twlo`)\nSent 1 · Delivered 1 · Failed 1 · Delivery rate 100%" in texts
    assert "*Twilio WhatsApp* (`twlowa`)\nSent 1 · Delivered 0 · Failed 0 · Delivery rate 0%" in texts
    failure = [t for t in texts if t.startswith(":x: *#3*")]
    assert failure and "not sent: Sociocs refused the message" in failure[0]
    buttons = [e for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {(b["action_id"], b["value"]) for b in buttons} >= {("schedule_edit", "4"), ("schedule_cancel", "4")}
    assert e2e.slack.home_views["U1"]["blocks"] == view["blocks"]


def test_app_home_stays_within_100_blocks(e2e: E2E) -> None:
    for i in range(80):
        e2e.rt.service.submit(SendRequest(sender="twlo", to="+16175551212", text=f"later {i}",
                                          idem_key=f"home-{i}", user_id="U1", channel_id="C1",
                                          when=datetime.fromtimestamp(time.time() + 86400 + i, UTC)))
    e2e.sender.event(app_home_opened_event("U1"))
    view = e2e.slack.wait_for("views.publish")[0]["params"]["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert len(view["blocks"]) <= MAX_VIEW_BLOCKS
    assert "more" in json.dumps(view["blocks"][-1])


def test_people_who_may_not_send_see_no_numbers_on_the_app_home(e2e_factory: Callable[..., E2E]) -> None:
    e2e = e2e_factory(sociocs_webhook_secret="whsec", sms_allowed_users="U1")
    try:
        e2e.providers.script("/message", [Fault(status=400, body={"status": "error", "errors": [{"msg": "No."}]})])
        e2e.command("send --name Carol +16175551212 Private words", user_id="U1", channel_id="C1")
        e2e.wait(lambda: e2e.rt.store.counts_by_status().get("failed") == 1, 5, "a failure")

        assert e2e.sender.event(app_home_opened_event("U2")).status_code == 200
        view = e2e.slack.wait_for("views.publish", lambda c: c["params"]["user_id"] == "U2")[0]["params"]["view"]
        view = json.loads(view) if isinstance(view, str) else view
        shown = json.dumps(view)
        assert "not allowed to send" in shown and "SMS_ALLOWED_USERS" in shown
        for private in ("617", "Carol", "Private words", "Latest failures", "#1", "Twilio"):
            assert private not in shown, private
        assert len(view["blocks"]) <= 3

        # Someone allowed still sees the failures.
        e2e.sender.event(app_home_opened_event("U1"))
        view = e2e.slack.wait_for("views.publish", lambda c: c["params"]["user_id"] == "U1")[0]["params"]["view"]
        view = json.loads(view) if isinstance(view, str) else view
        assert "Carol (+1 617-555-1212)" in json.dumps(view)
    finally:
        e2e.rt.ctx.delivery.stop()
