"""The delivery core without Slack: a recording DeliveryView stands in for bot/slack/delivery_view.py.

What each test pins is what the view is asked to show, i.e. what people would see in Slack.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.core.config import Settings
from bot.core.delivery.engine import DeliveryEngine
from bot.core.ports_delivery import SenderAlert
from bot.core.senders import Senders
from providers.events import DeliveryEvent
from providers.sandbox import SandboxProvider
from storage.delivery import ALERT_AFTER
from storage.store import MessageRow, NewMessage, Store

T0 = 1_700_000_000.0


class RecordingView:
    """A DeliveryView that writes down every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def start(self) -> None:
        self.calls.append(("start", None))

    def stop(self, timeout: float = 5.0) -> None:
        self.calls.append(("stop", None))

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def line_changed(self, message_id: int, delay: float | None = None) -> None:
        self.calls.append(("line", message_id))

    def tell_failure(self, row: MessageRow) -> None:
        self.calls.append(("failure", row.id))

    def result_notice(self, channel: str, row: MessageRow) -> None:
        self.calls.append(("notice", (channel, row.id, row.delivery)))

    def sender_alert(self, channel: str | None, alert: SenderAlert) -> None:
        self.calls.append(("alert", (channel, alert)))

    def note_unknown(self, row: MessageRow, note: str) -> None:
        self.calls.append(("note", row.id))

    def note_bulk_unknown(self, job_id: int, channel: str, thread_ts: str, note: str) -> None:
        self.calls.append(("bulk note", job_id))

    def note_no_lookup(self, row: MessageRow, how: str) -> None:
        self.calls.append(("no lookup", (row.id, how)))


def settings(**extra: Any) -> Settings:
    values: dict[str, Any] = {"sms_notify_channel": "C2", "sms_reconcile_interval": 0, **extra}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def store() -> Store:
    return Store(":memory:")


@pytest.fixture
def engine(store: Store) -> Iterator[tuple[DeliveryEngine, RecordingView]]:
    view = RecordingView()
    made = DeliveryEngine(store, settings(), Senders({"sandbox": SandboxProvider()}, "sandbox"), view)
    yield made, view
    made.stop()


def sent(store: Store, sender: str = "twlo", pid: str = "pm-1", failed_with: str | None = None) -> MessageRow:
    """One send with a thread: sent (no delivery state yet), or refused with `failed_with` (an auth error)."""
    mid, _ = store.enqueue(NewMessage(idem_key=pid, sender=sender, to_number="+16175551212",
                                      payload={"to": "+16175551212", "text": "hi"}, summary="hi", due_at=T0), now=T0)
    store.claim_due("w", now=T0)
    store.mark_sending(mid, "w", now=T0)
    if failed_with is None:
        store.record_outcome(mid, "sent", provider_message_id=pid, delivery=None, now=T0)
    else:
        store.record_outcome(mid, "failed", error=failed_with, error_kind="auth", now=T0)
    store.set_thread(mid, "C1", "111.1", "111.2")
    row = store.get(mid)
    assert row is not None
    return row


def event(status: str, pid: str = "pm-1") -> DeliveryEvent:
    return DeliveryEvent(provider="sociocs", provider_message_id=pid, status=status,  # type: ignore[arg-type]
                         error="Carrier rejected" if status == "failed" else None, occurred_at=datetime.now(UTC))


def test_a_failed_delivery_redraws_the_line_tells_the_sender_and_the_channel(
        store: Store, engine: tuple[DeliveryEngine, RecordingView]) -> None:
    delivery, view = engine
    row = sent(store)
    assert delivery.ingest(event("failed")) == "applied"
    assert view.calls == [("line", row.id), ("failure", row.id), ("notice", ("C2", row.id, "failed"))]
    assert delivery.ingest(event("failed")) == "duplicate or stale"  # the same event again: nothing new shown
    assert len(view.calls) == 3


def test_a_delivered_event_is_only_noticed_when_the_channel_wants_all(store: Store) -> None:
    view = RecordingView()
    delivery = DeliveryEngine(store, settings(), Senders({}, "sandbox"), view)
    row = sent(store)
    assert delivery.ingest(event("delivered")) == "applied"
    assert view.calls == [("line", row.id)]  # SMS_NOTIFY_ON=failures (the default): no channel line
    delivery.stop()


def test_sender_health_hands_the_view_plain_data(engine: tuple[DeliveryEngine, RecordingView], store: Store) -> None:
    delivery, view = engine
    for i in range(ALERT_AFTER):
        delivery.on_final(sent(store, pid=f"pm-{i}", failed_with="401 bad key"))
    alerts = [args for kind, args in view.calls if kind == "alert"]
    # No twlo provider is configured here, so its label is its code.
    assert alerts == [("C2", SenderAlert("twlo", "twlo", ALERT_AFTER, working=False, count=ALERT_AFTER,
                                         error="401 bad key"))]
    delivery.on_final(sent(store, pid="pm-ok"))
    assert [args for kind, args in view.calls if kind == "alert"][1:] == [
        ("C2", SenderAlert("twlo", "twlo", ALERT_AFTER + 1, working=True))]


def test_a_unreported_sender_says_in_the_thread_this_is_the_last_state(
        store: Store, engine: tuple[DeliveryEngine, RecordingView]) -> None:
    delivery, view = engine
    row = sent(store, sender="textus")  # no TEXTUS_WEBHOOK_SECRET: no delivery reports will come
    delivery.on_final(row)
    assert ("line", row.id) in view.calls
    assert delivery.queries.is_dirty(row.id)  # flagged first: a restart still redraws it
