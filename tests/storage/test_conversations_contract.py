"""Conversations in the store (issue 13): the same behaviour on SQLite and on PostgreSQL."""

from __future__ import annotations

from storage.conversations import ConversationQueries, NewInbound, ThreadUpdate
from storage.store import NewMessage, Store, Viewer

NOW = 1_800_000_000.0
NUMBER = "+16175551212"


def inbound(pid: str = "m1", text: str = "hi", at: float = NOW) -> NewInbound:
    return NewInbound(provider="sociocs", provider_message_id=pid, sender="twlo", channel="sms",
                      from_number=NUMBER, text=text, media=[{"url": "https://x/y.jpg", "kind": "image"}],
                      received_at=at)


def test_inbound_is_stored_once_per_provider_id(store: Store) -> None:
    q = ConversationQueries(store)
    row, created = q.add_inbound(inbound())
    again, created_again = q.add_inbound(inbound(text="changed"))
    assert created and not created_again and again.id == row.id and again.text == "hi"
    assert row.media == [{"url": "https://x/y.jpg", "kind": "image"}]
    other, _ = q.add_inbound(NewInbound(**{**inbound().model_dump(), "provider": "bird"}))
    assert other.id != row.id  # unique per provider, not across providers
    assert [r.id for r in q.unposted()] == []  # not linked to a conversation yet
    conv = q.on_inbound(NUMBER, "twlo", name="Ann", text="hi", at=NOW, whatsapp=False, now=NOW)
    q.link_inbound(row.id, conv.id)
    assert [r.id for r in q.unposted()] == [row.id]
    q.mark_posted(row.id, "C1", "1.2")
    fresh = q.inbound(row.id)
    assert fresh is not None and fresh.posted and fresh.slack_ts == "1.2" and q.unposted() == []


def test_one_conversation_per_contact_and_its_window(store: Store) -> None:
    q = ConversationQueries(store)
    first = q.on_inbound(NUMBER, "twlowa", name="Ann", text="a", at=NOW, whatsapp=True, now=NOW)
    second = q.on_inbound(NUMBER, "twlowa", name=None, text="b", at=NOW - 60, whatsapp=True, now=NOW)
    assert first.id == second.id and second.contact_name == "Ann" and second.last_text == "b"
    assert second.last_whatsapp_at == NOW  # an older message never moves the window back
    assert q.last_whatsapp(NUMBER, "twlowa") == NOW and q.last_whatsapp(NUMBER, "twlo") is None
    assert q.on_inbound(NUMBER, "twlo", name=None, text="c", at=NOW, whatsapp=False).id != first.id
    assert q.find(NUMBER, "twlowa") == q.get(first.id)
    q.set_thread(first.id, "C1", "5.5", NOW, mention="U1")
    assert q.by_thread("C1", "5.5").id == first.id  # type: ignore[union-attr]
    assert [c.id for c in q.waiting(Viewer(user_id="U1"))] == [first.id]
    assert q.waiting(Viewer(user_id="U9")) == []
    assert len(q.waiting(Viewer.operator())) == 2
    assert q.answered(NUMBER, "twlowa", now=NOW + 1) and not q.answered("+15550000000", "twlo")
    assert [c.number for c in q.waiting(Viewer(user_id="U1"))] == []


def test_the_latest_send_thread_counts(store: Store) -> None:
    q = ConversationQueries(store)
    assert q.latest_send_thread(NUMBER, "twlo") is None
    for key, at in (("a", NOW), ("b", NOW + 10)):
        mid, _ = store.enqueue(NewMessage(idem_key=key, sender="twlo", to_number=NUMBER, payload={"text": key},
                                          due_at=at, created_by="U1"), now=at)
        store.set_thread(mid, "C1", f"{at}")
    found = q.latest_send_thread(NUMBER, "twlo")
    assert found is not None and found.ts == f"{NOW + 10}" and found.created_by == "U1"
    assert q.latest_send_thread(NUMBER, "bird") is None


def test_showing_a_message_is_claimed_once_across_processes(store: Store) -> None:
    q = ConversationQueries(store)
    row, _ = q.add_inbound(inbound())
    assert q.claim_post(row.id, "A", 30, now=NOW) == "fresh"
    assert q.claim_post(row.id, "A", 30, now=NOW + 1) == "fresh"  # the holder may try again (a fallback)
    assert q.claim_post(row.id, "B", 30, now=NOW + 5) is None  # held
    assert q.claim_post(row.id, "B", 30, now=NOW + 40) == "retry"  # A died: B looks in Slack first
    q.release_post(row.id, "B")
    assert q.claim_post(row.id, "C", 30, now=NOW + 41) == "fresh"
    conv = q.on_inbound(NUMBER, "twlo", name=None, text="hi", at=NOW, whatsapp=False, now=NOW)
    q.mark_posted(row.id, "C9", "7.7", ThreadUpdate(conv.id, "C9", "7.7", NOW))
    assert q.claim_post(row.id, "D", 30, now=NOW + 100) is None  # posted
    fresh = q.get(conv.id)
    assert fresh is not None and (fresh.thread_channel, fresh.thread_ts) == ("C9", "7.7")


def test_notes_are_kept_with_the_message_and_conversations_found_by_number(store: Store) -> None:
    q = ConversationQueries(store)
    row, _ = q.add_inbound(inbound())
    assert row.notes == []
    q.add_note(row.id, "opted out")
    q.add_note(row.id, "second")
    q.add_note(row.id + 99, "nowhere")  # no such message: nothing happens
    assert q.inbound(row.id).notes == ["opted out", "second"]  # type: ignore[union-attr]
    sms = q.on_inbound(NUMBER, "twlo", name=None, text="a", at=NOW, whatsapp=False, now=NOW)
    wa = q.on_inbound(NUMBER, "twlowa", name=None, text="b", at=NOW, whatsapp=True, now=NOW)
    assert [c.id for c in q.with_number(NUMBER)] == [sms.id, wa.id] and q.with_number("+15550001111") == []
