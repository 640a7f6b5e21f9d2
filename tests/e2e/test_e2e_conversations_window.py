"""End to end (issue 13): the WhatsApp 24-hour window on every path that sends free text."""

from __future__ import annotations

import time
from collections.abc import Callable

from storage.store import NewMessage
from tests.conftest import E2E
from tests.e2e.test_e2e_conversations import NUMBER, flush, make, sociocs_inbound
from tests.e2e.test_e2e_conversations_replies import provider_sends, reply
from tests.e2e.test_e2e_webhooks import sociocs_post

__all__ = ["make"]


def test_free_text_is_refused_outside_the_window_and_accepted_after_an_inbound_message(
        make: Callable[..., E2E]) -> None:
    e2e = make(sms_inbox_channel="C2")
    refused = e2e.command(f"send --via twlowa {NUMBER} Hello there").json()
    assert refused["response_type"] == "ephemeral"
    assert "24 hours" in refused["text"] and "/sms template" in refused["text"]
    assert e2e.rt.store.counts_by_status() == {} and provider_sends(e2e, "twlo") == []
    # The customer writes on WhatsApp: the window opens, and the thread says until when.
    inbound = sociocs_inbound("Hi, is my order ready?", sender="twlowa", timestamp=int(time.time() * 1000))
    assert sociocs_post(e2e, inbound).status_code == 200
    opened = e2e.slack.wait_for("chat.postMessage", lambda c: "is my order ready" in c["params"].get("text", ""))
    assert "WhatsApp window open until" in opened[-1]["params"]["text"]
    flush(e2e)
    accepted = e2e.command(f"send --via twlowa {NUMBER} Yes, it is")
    assert accepted.status_code == 200 and "24 hours" not in accepted.text
    sends = e2e.wait(lambda: provider_sends(e2e, "twlo"), 5, "the WhatsApp send")
    assert sends[0].json["provider"] == "twlowa" and sends[0].json["text"] == "Yes, it is"


def test_a_stale_window_refuses_thread_replies_and_rows_at_their_due_time(make: Callable[..., E2E]) -> None:
    e2e = make(sms_inbox_channel="C2")
    day_ago = int((time.time() - 25 * 3600) * 1000)
    sociocs_post(e2e, sociocs_inbound("Old message", sender="twlowa", timestamp=day_ago))
    opened = e2e.slack.wait_for("chat.postMessage", lambda c: "Old message" in c["params"].get("text", ""))
    flush(e2e)
    thread = opened[-1]["response"]["ts"]
    reply(e2e, "C2", thread, "Sorry for the delay!")
    refusal = e2e.slack.wait_for("chat.postEphemeral", lambda c: "24 hours" in c["params"].get("text", ""))
    assert "template" in refusal[-1]["params"]["text"]
    # A row stored while the window was open (a schedule, a bulk recipient) is checked again at send time.
    e2e.rt.store.enqueue(NewMessage(idem_key="late", sender="twlowa", to_number=NUMBER,
                                    payload={"to": NUMBER, "text": "Late"}, due_at=time.time(), needs_announce=False))
    e2e.rt.service.wake()
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status == "failed" and r, 5, "the refusal")
    assert row.error_kind == "window" and "template" in (row.error or "")
    flush(e2e)
    assert provider_sends(e2e, "twlo") == []
    assert "WhatsApp window closed at" in opened[-1]["params"]["text"]
