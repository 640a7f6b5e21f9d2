"""The delivery state machine, pinned (docs/architecture.md, "Which delivery state wins").

Every ordered pair of reported states: what the stored state becomes and whether the thread's
status line is flagged for a redraw. Then a property test over random event sequences:
the final state never depends on arrival order, and duplicates change nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.delivery import DeliveryQueries
from storage.store import NewMessage, Store
from tests.conftest import E2E
from tests.e2e.test_e2e_webhooks import (  # noqa: F401 - `make` is a fixture
    delivery,
    make,
    sent_row,
    sociocs_post,
    sociocs_status,
    updates_of,
    wait_update,
)

T0 = 1_800_000_000.0
STATES = ("unknown", "scheduled", "accepted", "sent", "failed", "delivered", "read")

# WINS[first][second]: the stored state after `first` then `second` (written out, not computed,
# so a change to the ranking has to change this table too).
WINS: dict[str, dict[str, str]] = {
    #             unknown      scheduled    accepted     sent         failed       delivered    read
    "unknown":   dict(zip(STATES, ("unknown", "scheduled", "accepted", "sent", "failed", "delivered", "read"),
                          strict=True)),
    "scheduled": dict(zip(STATES, ("scheduled", "scheduled", "accepted", "sent", "failed", "delivered", "read"),
                          strict=True)),
    "accepted":  dict(zip(STATES, ("accepted", "accepted", "accepted", "sent", "failed", "delivered", "read"),
                          strict=True)),
    "sent":      dict(zip(STATES, ("sent", "sent", "sent", "sent", "failed", "delivered", "read"), strict=True)),
    "failed":    dict(zip(STATES, ("failed", "failed", "failed", "failed", "failed", "delivered", "read"),
                          strict=True)),
    "delivered": dict(zip(STATES, ("delivered",) * 6 + ("read",), strict=True)),
    "read":      dict(zip(STATES, ("read",) * 7, strict=True)),
}


def sent_message(store: Store, provider_id: str = "pm-1") -> int:
    """One Twilio SMS, sent, with a thread whose status line delivery redraws; no delivery state yet."""
    message_id, _ = store.enqueue(NewMessage(idem_key=provider_id, sender="twlo", to_number="+16175551212",
                                             payload={"to": "+16175551212", "text": "hi"}, summary="hi",
                                             due_at=T0), now=T0)
    store.claim_due("w", now=T0)
    store.mark_sending(message_id, "w", now=T0)
    store.record_outcome(message_id, "sent", provider_message_id=provider_id, delivery=None, now=T0)
    store.set_thread(message_id, "C1", "111.1", "111.2")
    return message_id


@pytest.mark.parametrize(("first", "second"), list(itertools.product(STATES, STATES)))
def test_every_ordered_pair_of_states(tmp_path: object, first: str, second: str) -> None:
    store = Store(":memory:")
    queries = DeliveryQueries(store)
    message_id = sent_message(store)
    changed, row = store.apply_delivery_event("sociocs", "pm-1", first, error="e1", now=T0 + 1)
    assert changed and row is not None and row.delivery == first
    queries.clear_dirty(message_id, row.updated_at)  # Slack took the first line
    changed, row = store.apply_delivery_event("sociocs", "pm-1", second, error="e2", now=T0 + 2)
    expected = WINS[first][second]
    redrawn = expected != first
    assert store.get(message_id).delivery == expected  # type: ignore[union-attr]
    assert changed is redrawn  # Delivery redraws the line (and notifies) only on a change
    assert queries.is_dirty(message_id) is redrawn
    assert store.get(message_id).updated_at == (T0 + 2 if redrawn else T0 + 1)  # type: ignore[union-attr]


def test_failed_then_delivered_shows_delivered_and_delivered_then_failed_stays(tmp_path: object) -> None:
    store = Store(":memory:")
    a, b = sent_message(store, "pm-a"), sent_message(store, "pm-b")
    store.apply_delivery_event("sociocs", "pm-a", "failed", error="Unknown handset", now=T0 + 1)
    store.apply_delivery_event("sociocs", "pm-a", "delivered", now=T0 + 2)
    store.apply_delivery_event("sociocs", "pm-b", "delivered", now=T0 + 1)
    store.apply_delivery_event("sociocs", "pm-b", "failed", error="Unknown handset", now=T0 + 2)
    assert store.get(a).delivery == store.get(b).delivery == "delivered"  # type: ignore[union-attr]
    # Both reports stay on record.
    kept = store.conn.execute("SELECT count(*) FROM delivery_events WHERE status = 'failed'").fetchone()[0]
    assert kept == 2


def test_early_events_adopted_later_follow_the_same_rule() -> None:
    """Events that arrive before the send knows its id are applied by adopt_orphans, same order."""
    for events in (("failed", "delivered"), ("delivered", "failed"), ("read", "sent", "failed")):
        store = Store(":memory:")
        for i, status in enumerate(events):
            store.apply_delivery_event("sociocs", "pm-1", status, now=T0 + i)  # no message yet: kept for later
        message_id = sent_message(store)
        changed, row = DeliveryQueries(store).adopt_orphans(store.get(message_id))  # type: ignore[arg-type]
        assert changed and row is not None
        assert row.delivery == max(events, key=STATES.index), events


events = st.lists(st.sampled_from(STATES), min_size=1, max_size=12)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(sequence=events, order=st.randoms(use_true_random=False))
def test_final_state_never_depends_on_arrival_order_and_duplicates_change_nothing(sequence: list[str],
                                                                                   order: object) -> None:
    results = []
    shuffled = list(sequence)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    for arrival in (sequence, shuffled, list(reversed(sequence))):
        store = Store(":memory:")
        message_id = sent_message(store)
        for status in arrival:
            store.apply_delivery_event("sociocs", "pm-1", status, now=T0 + 1)
        before = store.get(message_id)
        # Every report again, at-least-once style: nothing changes, nothing is redrawn.
        for status in arrival:
            assert store.apply_delivery_event("sociocs", "pm-1", status, now=T0 + 5)[0] is False
        after = store.get(message_id)
        assert after == before
        results.append(after.delivery)  # type: ignore[union-attr]
    # The documented rule: the highest-ranked state reported wins, whatever the order.
    assert results == [max(sequence, key=STATES.index)] * 3


def test_end_to_end_a_late_failure_never_unsays_delivered(make: Callable[..., E2E]) -> None:  # noqa: F811
    e2e = make()
    first = sent_row(e2e)
    assert sociocs_post(e2e, sociocs_status(first.provider_message_id, "failed", "Unknown handset")).status_code == 200
    wait_update(e2e, first.status_ts, "delivery failed")
    # Failed, then the carrier's receipt: the line is redrawn to delivered.
    assert sociocs_post(e2e, sociocs_status(first.provider_message_id, "delivered")).status_code == 200
    wait_update(e2e, first.status_ts, "Status: delivered")

    second = sent_row(e2e, "send +16175551213 Your order has shipped", message_id=2)
    assert sociocs_post(e2e, sociocs_status(second.provider_message_id, "delivered")).status_code == 200
    wait_update(e2e, second.status_ts, "Status: delivered")
    assert delivery(e2e).outbox.flush()
    replies, updates = len(e2e.thread_replies()), len(updates_of(e2e, second.status_ts))
    # Delivered, then a failure report: recorded, nothing redrawn, nobody told it failed.
    assert sociocs_post(e2e, sociocs_status(second.provider_message_id, "failed", "Unknown handset")).status_code == 200
    assert e2e.rt.store.conn.execute("SELECT count(*) FROM delivery_events WHERE status = 'failed'").fetchone()[0] == 2
    assert delivery(e2e).outbox.flush()
    assert e2e.rt.store.get(2).delivery == "delivered"  # type: ignore[union-attr]
    assert len(e2e.thread_replies()) == replies and len(updates_of(e2e, second.status_ts)) == updates
