"""The Slack side of conversations: which message events are replies, and the post's wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.slack.conversation_view import inbound_text
from bot.slack.listeners.messages import changed_ts, thread_message
from storage.conversations import Conversation, InboundRow

REPLY = {"type": "message", "channel": "C1", "user": "U1", "text": "Sure &amp; see &lt;you&gt; <@U2>", "ts": "2.0",
         "thread_ts": "1.0"}


def test_only_people_s_replies_in_threads_are_candidates() -> None:
    msg = thread_message(REPLY)
    assert msg is not None and msg.text == "Sure & see <you> @U2" and msg.thread_ts == "1.0"
    assert thread_message({**REPLY, "subtype": "thread_broadcast"}) is not None
    for other in ({"bot_id": "B1"}, {"subtype": "bot_message"}, {"subtype": "channel_join"}, {"thread_ts": None},
                  {"thread_ts": "2.0"}, {"user": None}):
        assert thread_message({**REPLY, **other}) is None, other


def test_edits_and_deletions_name_the_reply_they_are_about() -> None:
    inner = {"user": "U1", "ts": "2.0", "thread_ts": "1.0"}
    assert changed_ts({"subtype": "message_changed", "message": inner}) == "2.0"
    assert changed_ts({"subtype": "message_deleted", "previous_message": inner, "deleted_ts": "2.0"}) == "2.0"
    assert changed_ts({"subtype": "message_changed", "message": {**inner, "thread_ts": "2.0"}}) is None
    assert changed_ts({"subtype": "message_changed", "message": {**inner, "bot_id": "B"}}) is None


def test_the_customer_s_text_is_escaped_and_quoted() -> None:
    conv = Conversation(id=1, number="+16175551212", sender="twlowa", contact_name="<!here> Ann", created_at=0,
                        updated_at=0)
    row = InboundRow(id=1, provider="sociocs", provider_message_id="m", channel="whatsapp",
                     from_number="+16175551212", text="line <!channel>\nsecond", received_at=0,
                     media=[{"url": "https://x.test/a.jpg|evil", "kind": "image"}])
    until = datetime.now(UTC) + timedelta(hours=3)
    text = inbound_text(conv, row, "Twilio WhatsApp", new_thread=False, mention="U1", window_until=until)
    assert "<!channel>" not in text and "<!here>" not in text
    assert "> line &lt;!channel&gt;\n> second" in text and "<@U1>" in text
    assert "<https://x.test/a.jpg%7Cevil|image 1>" in text and "window open until" in text
    fresh = inbound_text(conv, row, "Twilio WhatsApp", new_thread=True, mention=None, window_until=None)
    assert fresh.startswith(":incoming_envelope: New message from &lt;!here&gt; Ann (+1 617-555-1212) via")


def test_media_links_are_web_links_only_and_capped() -> None:
    """A customer's (or a provider's) media list is linked only when it is http(s), and a list of
    hundreds of URLs does not become one giant post."""
    conv = Conversation(id=1, number="+16175551212", sender="twlo", created_at=0, updated_at=0)
    urls = ["javascript:alert(1)", "ftp://x.test/a", "not a url", "HTTPS://x.test/ok.png"]
    urls += [f"https://cdn.test/{i}.png" for i in range(500)]
    row = InboundRow(id=1, provider="sociocs", provider_message_id="m", channel="sms", from_number="+16175551212",
                     text="pics", received_at=0, media=[{"url": u, "kind": "image"} for u in urls])
    text = inbound_text(conv, row, "Twilio SMS", new_thread=False, mention=None, window_until=None)
    assert "<javascript:" not in text and "<ftp:" not in text and "<not a url" not in text
    assert "<HTTPS://x.test/ok.png|image 4>" in text and "<https://cdn.test/0.png|image 5>" in text
    assert "3 attachments are not web links" in text
    assert text.count("<https://cdn.test/") < 30 and "more attachment" in text and len(text) < 4000
