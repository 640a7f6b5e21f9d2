"""ConversationEngine, Replies and the WhatsApp window, over a real store and a fake view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.core.conversations.engine import ConversationEngine, HooksFailed
from bot.core.conversations.replies import Replies, ThreadMessage, reply_origin
from bot.core.conversations.window import window_refusal
from bot.core.ports import Posted
from bot.core.senders import Senders
from bot.core.sending import SendService
from providers.inbound import ConsentEvent, InboundMessage, InboundResult
from providers.sandbox import SandboxProvider
from storage.conversations import ConversationQueries
from storage.store import NewMessage, Store

NUMBER = "+16175551212"


class FakeView:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.notes: list[tuple[str, str, str]] = []
        self.reactions: list[tuple[str, str, str]] = []
        self.refuse_threads = False
        self.n = 0

    def post_inbound(self, conversation: Any, message: Any, *, channel: str, thread_ts: str | None,
                     mention: str | None, window_until: datetime | None) -> Posted | None:
        if thread_ts is not None and self.refuse_threads:
            return None
        self.n += 1
        self.posts.append({"channel": channel, "thread_ts": thread_ts, "text": message.text, "mention": mention,
                           "window_until": window_until})
        return Posted(channel, f"900.{self.n}")

    def note(self, channel: str, thread_ts: str, text: str) -> None:
        self.notes.append((channel, thread_ts, text))

    def react(self, channel: str, ts: str, name: str) -> None:
        self.reactions.append((channel, ts, name))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "c.db"))


def message(pid: str = "m1", text: str = "hi", sender: str = "twlo", channel: str = "sms",
            at: datetime | None = None) -> InboundMessage:
    return InboundMessage(provider="sociocs", sender=sender, channel=channel, from_number=NUMBER, text=text,
                          provider_message_id=pid, received_at=at)


def engine(store: Store, view: FakeView, inbox: str | None = "CIN") -> ConversationEngine:
    return ConversationEngine(store, view, inbox_channel=inbox)


def test_a_message_goes_to_the_latest_send_thread_once_and_runs_the_hooks(store: Store) -> None:
    view, seen = FakeView(), []
    eng = engine(store, view)
    eng.on_message.append(lambda row, msg: seen.append((row.id, msg.text)))
    mid, _ = store.enqueue(NewMessage(idem_key="s", sender="twlo", to_number=NUMBER, payload={}, due_at=1.0,
                                      created_by="U1"))
    store.set_thread(mid, "C1", "100.1")
    assert eng.ingest(InboundResult(message=message())) == "stored"
    assert eng.ingest(InboundResult(message=message())) == "duplicate"
    eng.show(1)
    eng.show(1)  # shown already: nothing more
    assert view.posts == [{"channel": "C1", "thread_ts": "100.1", "text": "hi", "mention": "U1", "window_until": None}]
    assert seen == [(1, "hi")]


def test_no_thread_opens_one_in_the_inbox_and_keeps_it(store: Store) -> None:
    view = FakeView()
    eng = engine(store, view)
    for pid in ("a", "b"):
        eng.ingest(InboundResult(message=message(pid)))
    eng.show(1)
    eng.show(2)
    assert [(p["channel"], p["thread_ts"]) for p in view.posts] == [("CIN", None), ("CIN", "900.1")]


def test_a_gone_thread_falls_back_to_a_new_one_and_no_channel_keeps_the_message(store: Store) -> None:
    view = FakeView()
    view.refuse_threads = True
    mid, _ = store.enqueue(NewMessage(idem_key="s", sender="twlo", to_number=NUMBER, payload={}, due_at=1.0))
    store.set_thread(mid, "C1", "100.1")
    eng = engine(store, view)
    eng.ingest(InboundResult(message=message()))
    eng.show(1)
    assert [(p["channel"], p["thread_ts"]) for p in view.posts] == [("CIN", None)]
    quiet = engine(store, FakeView(), inbox=None)
    quiet.ingest(InboundResult(message=message("other", sender="gswa")))
    quiet.show(2)
    row = ConversationQueries(store).inbound(2)
    assert row is not None and row.posted and row.slack_ts is None


def test_consent_events_reach_their_hooks_and_a_failed_hook_runs_again_on_the_retry(store: Store) -> None:
    eng, got, failing = engine(store, FakeView()), [], [True]

    def flaky(row: object, msg: object) -> None:
        if failing[0]:
            raise OSError("database locked")

    eng.on_consent.append(lambda event, _row: got.append(event.action))
    eng.on_message.append(flaky)
    eng.on_message.append(lambda row, msg: got.append("text"))
    event = ConsentEvent(action="opted_out", number=NUMBER, source="textus_event", provider="textus")
    assert eng.ingest(InboundResult(consent=event)) == "consent"
    with pytest.raises(HooksFailed):  # the webhook answers 503: the provider retries
        eng.ingest(InboundResult(message=message(), consent=event))
    assert got == ["opted_out", "opted_out", "text"]  # the fact before the text; the others still ran
    failing[0] = False
    assert eng.ingest(InboundResult(message=message(), consent=event)) == "stored"  # the retry: hooks again
    assert eng.ingest(InboundResult(message=message(), consent=event)) == "duplicate"
    assert got == ["opted_out", "opted_out", "text", "opted_out", "text"]  # no more once they all ran


def test_the_window_opens_with_a_whatsapp_message_for_24_hours(store: Store) -> None:
    q, now = ConversationQueries(store), datetime.now(UTC)
    assert "has not written" in str(window_refusal(q, "twlowa", NUMBER, None, False, now))
    assert window_refusal(q, "twlowa", NUMBER, None, True, now) is None  # templates go any time
    assert window_refusal(q, "twlo", NUMBER, None, False, now) is None  # SMS has no window
    eng = engine(store, FakeView())
    eng.ingest(InboundResult(message=message(sender="twlowa", channel="whatsapp", at=now - timedelta(hours=1))))
    assert window_refusal(q, "twlowa", NUMBER, None, False, now) is None
    assert "closed at" in str(window_refusal(q, "twlowa", NUMBER, None, False, now + timedelta(hours=23, minutes=1)))
    assert window_refusal(q, "gswa", NUMBER, None, False, now) is not None  # per sender


def test_replies_notes_refusals_and_marks(store: Store) -> None:
    view = FakeView()
    service = SendService(store, Senders({"sandbox": SandboxProvider()}, "sandbox"))
    eng = engine(store, view)
    eng.ingest(InboundResult(message=message(sender="sandbox")))
    eng.show(1)
    replies = Replies(store, service, lambda user, channel: None if user == "U1" else "no", view)
    msg = ThreadMessage("CIN", "900.1", "901.1", "U1", "See you at 8")
    first = replies.handle(msg)
    assert first.kind == "queued" and replies.handle(msg).kind == "duplicate"
    row = store.get(first.row_id or 0)
    assert row is not None and row.thread_ts == "900.1" and not row.needs_announce and row.payload["text"] == "See you at 8"
    assert reply_origin(row) == ("CIN", "901.1")
    assert replies.handle(msg._replace(ts="902.1", text="// note")).kind == "note"
    assert replies.handle(msg._replace(ts="903.1", user="U9")) == ("refused", "no", None)
    assert replies.handle(msg._replace(thread_ts="1.1")).kind == "not_ours"
    replies.progressed(row.model_copy(update={"status": "sent"}))
    assert view.reactions == [("CIN", "901.1", "outbox_tray")]
    conv = ConversationQueries(store).find(NUMBER, "sandbox")
    assert conv is not None and not conv.awaiting_reply
    replies.changed("CIN", "901.1")
    replies.changed("CIN", "901.1")
    assert len(view.notes) == 1 and "changes nothing" in view.notes[0][2]


def test_the_sandbox_echo(store: Store) -> None:
    view = FakeView()
    eng = engine(store, view)
    mid, _ = store.enqueue(NewMessage(idem_key="s", sender="sandbox", to_number="+16175550000",
                                      payload={"text": "ping"}, due_at=1.0))
    row = store.get(mid)
    assert row is not None
    eng.sandbox_echo(row)  # not sent yet: nothing
    eng.sandbox_echo(row.model_copy(update={"status": "sent"}))
    eng.sandbox_echo(row.model_copy(update={"status": "sent"}))
    assert [r.text for r in ConversationQueries(store).all_inbound()] == ["Echo: ping"]
