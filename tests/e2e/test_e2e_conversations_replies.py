"""End to end (issue 13): people answer customers from the thread, over signed Slack events."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from storage.conversations import ConversationQueries
from tests.conftest import E2E, TEXTUS_ACCOUNT
from tests.e2e.test_e2e_conversations import (
    NUMBER,
    bird_inbound,
    flush,
    make,
    posts_in,
    sociocs_inbound,
    textus_inbound,
)
from tests.e2e.test_e2e_webhooks import bird_post, sent_row, sociocs_post, textus_post

__all__ = ["make"]

PROVIDER_PATHS = {"twlo": "/message", "bird": "/workspaces/", "textus": f"/{TEXTUS_ACCOUNT}/messages"}


def provider_sends(e2e: E2E, via: str) -> list[Any]:
    assert e2e.providers is not None
    return [r for r in e2e.providers.requests if r.method == "POST" and r.path.startswith(PROVIDER_PATHS[via])]


def reply(e2e: E2E, channel: str, thread_ts: str, text: str, user: str = "U1", event_id: str | None = None,
          **extra: Any) -> str:
    ts = e2e.slack.add_user_message(channel, text, user, thread_ts)
    event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts, "thread_ts": thread_ts,
             "channel_type": "channel", **extra}
    assert e2e.sender.event(event, event_id).status_code == 200
    return ts


def conversation_thread(e2e: E2E, via: str, post: Any, payload: dict[str, Any]) -> tuple[str, str]:
    row = sent_row(e2e, f"send --via {via} {NUMBER} Your table is ready")
    post(e2e, payload)
    posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "Can we come")
    flush(e2e)
    return str(row.thread_channel), str(row.thread_ts)


@pytest.mark.parametrize("via, post, payload", [
    ("twlo", sociocs_post, sociocs_inbound("Can we come at 8?")),
    ("bird", bird_post, bird_inbound({"type": "text", "text": {"text": "Can we come at 8?"}})),
    ("textus", textus_post, textus_inbound("Can we come at 8?")),
])
def test_a_reply_in_the_thread_reaches_the_provider_and_is_marked(
        make: Callable[..., E2E], via: str, post: Any, payload: dict[str, Any]) -> None:
    e2e = make()
    channel, thread = conversation_thread(e2e, via, post, payload)
    before = len(provider_sends(e2e, via))
    ts = reply(e2e, channel, thread, "Sure, see you at 8 &amp; bring &lt;ID&gt;")
    sends = e2e.wait(lambda: provider_sends(e2e, via)[before:], 5, "the reply at the provider")
    assert "Sure, see you at 8 & bring <ID>" in sends[0].raw.decode()
    assert NUMBER in sends[0].raw.decode()
    e2e.wait(lambda: "outbox_tray" in e2e.slack.reactions_on(channel, ts), 5, "the sent reaction")
    flush(e2e)
    assert len(provider_sends(e2e, via)) == before + 1
    conv = ConversationQueries(e2e.rt.store).find(NUMBER, via)
    assert conv is not None and not conv.awaiting_reply  # answered: off /sms inbox


def test_retries_edits_bots_and_notes_send_nothing(make: Callable[..., E2E]) -> None:
    e2e = make()
    channel, thread = conversation_thread(e2e, "twlo", sociocs_post, sociocs_inbound("Can we come at 8?"))
    ts = reply(e2e, channel, thread, "Yes", event_id="Ev1")
    e2e.wait(lambda: len(provider_sends(e2e, "twlo")) == 2, 5, "the reply")
    # Slack retries the same event, and the same message arrives under a new event id.
    e2e.sender.event({"type": "message", "channel": channel, "user": "U1", "text": "Yes", "ts": ts,
                      "thread_ts": thread}, "Ev1", retry_num=1)
    e2e.sender.event({"type": "message", "channel": channel, "user": "U1", "text": "Yes", "ts": ts,
                      "thread_ts": thread})
    reply(e2e, channel, thread, "// internal: she is a regular")
    reply(e2e, channel, thread, "bot talk", bot_id="B2")
    reply(e2e, channel, thread, "ignored", subtype="bot_message")
    e2e.sender.event({"type": "message", "subtype": "message_changed", "channel": channel, "ts": str(time.time()),
                      "message": {"type": "message", "user": "U1", "text": "Yes!", "ts": ts, "thread_ts": thread},
                      "previous_message": {"type": "message", "user": "U1", "text": "Yes", "ts": ts,
                                           "thread_ts": thread}})
    e2e.sender.event({"type": "message", "subtype": "message_deleted", "channel": channel, "deleted_ts": ts,
                      "ts": str(time.time()), "previous_message": {"type": "message", "user": "U1", "text": "Yes",
                                                                   "ts": ts, "thread_ts": thread}})
    flush(e2e)
    assert len(provider_sends(e2e, "twlo")) == 2  # the send and one reply, nothing else
    notes = posts_in(e2e, channel, thread, "changes nothing for the customer")
    assert len(notes) == 1  # said once, for the edit and the deletion together


def test_a_person_not_allowed_gets_a_refusal_and_nothing_is_sent(make: Callable[..., E2E]) -> None:
    e2e = make(sms_allowed_users="U1")
    channel, thread = conversation_thread(e2e, "twlo", sociocs_post, sociocs_inbound("Can we come at 8?"))
    reply(e2e, channel, thread, "I'll handle it", user="U7")
    refusal = e2e.slack.wait_for("chat.postEphemeral", lambda c: c["params"].get("user") == "U7")
    assert "not allowed" in refusal[-1]["params"]["text"]
    flush(e2e)
    assert len(provider_sends(e2e, "twlo")) == 1


def test_an_unknown_number_opens_a_thread_in_the_inbox_and_a_reply_there_is_sent(
        make: Callable[..., E2E]) -> None:
    e2e = make(sms_inbox_channel="C3")
    e2e.slack.add_channel("C3", "sms-inbox", member=False)  # public: the bot joins it
    assert sociocs_post(e2e, sociocs_inbound("Hello?", frm="15085550123")).status_code == 200
    opened = e2e.slack.wait_for("chat.postMessage", lambda c: c.ok and c["params"].get("channel") == "C3"
                                and "New message from +1 508-555-0123 via Twilio SMS" in c["params"]["text"])
    assert e2e.slack.calls_to("conversations.join")
    thread = opened[-1]["response"]["ts"]
    flush(e2e)
    reply(e2e, "C3", thread, "Hi! How can we help?")
    sends = e2e.wait(lambda: provider_sends(e2e, "twlo"), 5, "the reply")
    assert sends[0].json["to"] == "+15085550123" and sends[0].json["text"] == "Hi! How can we help?"


def test_with_no_inbox_a_message_is_kept_for_the_inbox_listing(make: Callable[..., E2E]) -> None:
    e2e = make()
    assert sociocs_post(e2e, sociocs_inbound("Anyone there?", frm="15085550123")).status_code == 200
    flush(e2e)
    rows = ConversationQueries(e2e.rt.store).all_inbound()
    assert [r.text for r in rows] == ["Anyone there?"] and rows[0].posted and rows[0].slack_ts is None


def test_a_file_alone_in_the_thread_is_not_sent_and_the_person_is_told(make: Callable[..., E2E]) -> None:
    e2e = make()
    channel, thread = conversation_thread(e2e, "twlo", sociocs_post, sociocs_inbound("Can we come at 8?"))
    reply(e2e, channel, thread, "", subtype="file_share", files=[{"id": "F1", "name": "menu.pdf"}])
    told = e2e.slack.wait_for("chat.postEphemeral", lambda c: "Files shared in the thread" in c["params"]["text"])
    assert told[-1]["params"]["user"] == "U1"
    flush(e2e)
    assert len(provider_sends(e2e, "twlo")) == 1


def test_a_send_that_fell_back_to_a_dm_converses_there(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.slack.add_channel("C9", "secret", member=False)
    e2e.command(f"send {NUMBER} Your table is ready", user_id="U7", channel_id="C9")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status_ts and r, 5, "the send in the DM")
    assert str(row.thread_channel).startswith("D")
    sociocs_post(e2e, sociocs_inbound("Can we come at 8?"))
    posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "Can we come at 8?")
    flush(e2e)
    reply(e2e, str(row.thread_channel), str(row.thread_ts), "Yes", user="U7", channel_type="im")
    sends = e2e.wait(lambda: provider_sends(e2e, "twlo")[1:], 5, "the reply from the DM")
    assert sends[0].json["text"] == "Yes"
