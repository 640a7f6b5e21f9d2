"""The outbox's transitions one statement at a time, with exact times (no threads, no Slack).

Each test names the rule it pins: who may move a row, from which states, with which lease
and timestamps. `make mutate` leans on these (see docs/operations.md, "Mutation testing").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.delivery import DeliveryQueries
from storage.store import MAX_ID, MessageRow, NewMessage, Store

T0 = 1_800_000_000.0


def new(key: str, due: float = T0, scheduled: bool = False, sender: str = "sandbox") -> NewMessage:
    return NewMessage(idem_key=key, sender=sender, to_number="+16175551212",
                      payload={"to": "+16175551212", "text": key}, summary=key, due_at=due, scheduled=scheduled)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(str(tmp_path / "rules.db"))
    yield db
    db.close()


def row(store: Store, mid: int) -> MessageRow:
    found = store.get(mid)
    assert found is not None
    return found


def test_claim_one_takes_a_pending_row_with_its_lease_and_only_once(store: Store) -> None:
    mid, _ = store.enqueue(new("a"), now=T0)
    claimed = store.claim_one(mid, "cli", now=T0 + 1, lease=30)
    assert claimed is not None and claimed.id == mid
    assert (claimed.status, claimed.lease_owner, claimed.lease_until, claimed.updated_at) == \
        ("claimed", "cli", T0 + 31, T0 + 1)
    assert store.claim_one(mid, "other", now=T0 + 2) is None
    assert row(store, mid).lease_owner == "cli"


def test_mark_sending_only_for_the_claim_owner_and_counts_the_attempt(store: Store) -> None:
    mid, _ = store.enqueue(new("a"), now=T0)
    store.claim_due("w", now=T0, lease=60)
    assert store.mark_sending(mid, "intruder", now=T0 + 1) is False
    assert store.mark_sending(mid, "w", now=T0 + 1, lease=20) is True
    got = row(store, mid)
    assert (got.status, got.attempts, got.lease_until, got.updated_at) == ("sending", 1, T0 + 21, T0 + 1)
    assert store.mark_sending(mid, "w", now=T0 + 2) is False  # sending, not claimed: no second go


def test_record_outcome_only_from_claimed_or_sending(store: Store) -> None:
    mid, _ = store.enqueue(new("a"), now=T0)
    assert row(store, mid).status == "pending"
    store.record_outcome(mid, "sent", provider_message_id="pm-1", now=T0)
    assert row(store, mid).status == "pending"  # never claimed: nothing recorded
    store.claim_due("w", now=T0)
    store.mark_sending(mid, "w", now=T0)
    done = store.record_outcome(mid, "sent", provider_message_id="pm-1", delivery="accepted", now=T0 + 3)
    assert done is not None
    assert (done.status, done.provider_message_id, done.delivery, done.sent_at, done.lease_owner) == \
        ("sent", "pm-1", "accepted", T0 + 3, None)
    again = store.record_outcome(mid, "failed", error="late", now=T0 + 4)
    assert again is not None and (again.status, again.error) == ("sent", None)  # final stays final


def test_release_gives_a_claimed_row_back_for_later_and_nothing_else(store: Store) -> None:
    mid, _ = store.enqueue(new("a"), now=T0)
    store.release(mid, T0 + 50, error="busy", error_kind="rate_limited", now=T0)
    assert row(store, mid).due_at == T0  # pending rows are not ours to move
    store.claim_due("w", now=T0)
    store.release(mid, T0 + 50, error="busy", error_kind="rate_limited", now=T0 + 1)
    got = row(store, mid)
    assert (got.status, got.due_at, got.error, got.error_kind, got.lease_owner, got.lease_until, got.updated_at) == \
        ("pending", T0 + 50, "busy", "rate_limited", None, None, T0 + 1)


def test_unclaim_hands_back_only_this_owners_claimed_rows(store: Store) -> None:
    a, _ = store.enqueue(new("a"), now=T0)
    b, _ = store.enqueue(new("b"), now=T0)
    c, _ = store.enqueue(new("c"), now=T0)
    store.claim_due("w1", now=T0, limit=2)  # a, b
    store.claim_due("w2", now=T0)  # c
    store.mark_sending(b, "w1", now=T0)
    store.unclaim([a, b, c], "w1")
    assert [(row(store, i).status, row(store, i).lease_owner) for i in (a, b, c)] == \
        [("pending", None), ("sending", "w1"), ("claimed", "w2")]


def test_unclaim_owner_counts_what_it_gave_back(store: Store) -> None:
    for key in "abc":
        store.enqueue(new(key), now=T0)
    store.claim_due("w1", now=T0, limit=2)
    store.claim_due("w2", now=T0)
    store.mark_sending(1, "w1", now=T0)
    assert store.unclaim_owner("w1") == 1
    assert [row(store, i).status for i in (1, 2, 3)] == ["sending", "pending", "claimed"]
    assert row(store, 2).lease_owner is None and row(store, 2).lease_until is None


def test_expired_leases_claimed_back_to_pending_sending_to_unknown(store: Store) -> None:
    for key in "abc":
        store.enqueue(new(key), now=T0)
    store.claim_due("w", now=T0, lease=10)  # all three, lease to T0 + 10
    store.mark_sending(2, "w", now=T0, lease=10)
    store.mark_sending(3, "w", now=T0, lease=100)
    assert store.reap_expired(now=T0 + 10) == []  # a lease ending now has not run out
    unknown = store.reap_expired(now=T0 + 11)
    assert [(r.id, r.status) for r in unknown] == [(2, "unknown")]
    assert [row(store, i).status for i in (1, 2, 3)] == ["pending", "unknown", "sending"]
    gone = row(store, 2)
    assert (gone.error_kind, gone.lease_owner, gone.lease_until, gone.updated_at) == ("unknown", None, None, T0 + 11)
    assert gone.error == "The worker stopped while sending; the message may or may not have gone out."
    assert (row(store, 1).lease_owner, row(store, 1).updated_at) == (None, T0 + 11)


def test_recover_owner_ends_only_our_dead_processes_leases_at_once(store: Store) -> None:
    for key in "abc":
        store.enqueue(new(key), now=T0)
    store.claim_due("host:1:aa", now=T0, limit=1, lease=600)
    store.claim_due("host:1:bb", now=T0, limit=1, lease=600)
    store.claim_due("elsewhere:2:cc", now=T0, lease=600)
    store.mark_sending(2, "host:1:bb", now=T0, lease=600)
    unknown = store.recover_owner("host:", now=T0 + 1)
    assert [r.id for r in unknown] == [2]
    assert [row(store, i).status for i in (1, 2, 3)] == ["pending", "unknown", "claimed"]
    assert row(store, 3).lease_until == T0 + 600


def test_claims_respect_priority_limit_paused_senders_and_the_grace_edge(store: Store) -> None:
    store.enqueue(new("bulk", due=T0 - 30), now=T0)
    with store.write() as conn:
        conn.execute("UPDATE messages SET priority = 1 WHERE id = 1")
    store.enqueue(new("single", due=T0 - 1), now=T0)
    store.enqueue(new("paused", due=T0 - 50, sender="bird"), now=T0)
    store.enqueue(new("paused too", due=T0 - 50, sender="textus"), now=T0)
    store.enqueue(new("edge", due=T0 - 100, scheduled=True), now=T0)  # exactly at the grace
    store.enqueue(new("stale", due=T0 - 101, scheduled=True), now=T0)
    claimed, missed = store.claim_due("w", now=T0, limit=2, lease=5, misfire_grace=100,
                                    skip_senders=["bird", "textus"])
    assert [r.summary for r in claimed] == ["edge", "single"]  # single sends before bulk rows
    assert [r.summary for r in missed] == ["stale"] and missed[0].status == "missed"
    assert [(r.status, r.lease_owner) for r in claimed] == [("claimed", "w")] * 2
    assert row(store, 5).lease_until == T0 + 5 and row(store, 6).status == "missed"
    rest, _ = store.claim_due("w", now=T0, limit=5, misfire_grace=100)
    assert sorted(r.summary for r in rest) == ["bulk", "paused", "paused too"]


@pytest.mark.parametrize("action", ["cancel", "edit", "send_missed_now"])
def test_people_actions_refuse_ids_out_of_range(store: Store, action: str) -> None:
    store.enqueue(new("a"), now=T0)
    kwargs = {"summary": "x"} if action == "edit" else {}
    for mid in (0, -1, MAX_ID + 1):
        assert getattr(store, action)(mid, **kwargs).ok is False
    found = getattr(store, action)(MAX_ID, **kwargs)
    assert (found.ok, found.row) == (False, None)


def test_cancel_answers_with_the_row_as_it_is_now(store: Store) -> None:
    mid, _ = store.enqueue(new("a"), now=T0)
    done = store.cancel(mid, now=T0 + 5)
    assert (done.ok, done.status) == (True, "canceled")
    assert done.row is not None and (done.row.status, done.row.updated_at) == ("canceled", T0 + 5)
    again = store.cancel(mid, now=T0 + 6)
    assert (again.ok, again.status) == (False, "canceled") and again.row is not None


def test_edit_changes_each_given_field_and_nothing_else(store: Store) -> None:
    mid, _ = store.enqueue(new("a"), now=T0)
    done = store.edit(mid, due_at=T0 + 9, to_number="+16175550000", summary="b", name="Bo",
                      payload={"to": "+16175550000", "text": "b"}, now=T0 + 1)
    assert done.ok and done.status == "pending" and done.row is not None
    got = done.row
    assert (got.due_at, got.to_number, got.summary, got.name, got.updated_at) == \
        (T0 + 9, "+16175550000", "b", "Bo", T0 + 1)
    assert got.payload == {"to": "+16175550000", "text": "b"}
    stored = store.conn.execute("SELECT payload FROM messages WHERE id = ?", (mid,)).fetchone()[0]
    assert stored == '{"to":"+16175550000","text":"b"}'  # compact, like enqueue writes it
    only_text = store.edit(mid, summary="c", now=T0 + 2)
    assert only_text.row is not None and (only_text.row.summary, only_text.row.due_at) == ("c", T0 + 9)


def test_send_missed_now_makes_a_missed_row_due_now(store: Store) -> None:
    mid, _ = store.enqueue(new("a", due=T0 - 7200, scheduled=True), now=T0)
    assert store.send_missed_now(mid, now=T0).ok is False  # pending, not missed
    store.claim_due("w", now=T0, misfire_grace=60)
    done = store.send_missed_now(mid, now=T0 + 3)
    assert (done.ok, done.status) == (True, "pending")
    assert done.row is not None and (done.row.due_at, done.row.updated_at) == (T0 + 3, T0 + 3)


# -- delivery events: recorded once, the message's state moves forward only


def sent(store: Store, key: str, pid: str, sender: str = "twlo") -> int:
    mid, _ = store.enqueue(new(key, sender=sender), now=T0)
    store.claim_due("w", now=T0)
    store.mark_sending(mid, "w", now=T0)
    store.record_outcome(mid, "sent", provider_message_id=pid, delivery="accepted", now=T0)
    return mid


def test_an_event_is_stored_linked_and_timed(store: Store) -> None:
    mid = sent(store, "a", "pm-1")
    changed, got = store.apply_delivery_event("sociocs", "pm-1", "delivered", None, T0 + 2, now=T0 + 3)
    assert changed and got is not None and (got.id, got.delivery, got.updated_at) == (mid, "delivered", T0 + 3)
    stored = store.conn.execute("SELECT message_id, occurred_at, received_at FROM delivery_events").fetchall()
    assert [tuple(r) for r in stored] == [(mid, T0 + 2, T0 + 3)]


def test_an_unranked_status_never_moves_a_known_state(store: Store) -> None:
    sent(store, "a", "pm-1")
    assert store.apply_delivery_event("sociocs", "pm-1", "sent", now=T0)[0] is True
    changed, got = store.apply_delivery_event("sociocs", "pm-1", "something-new", now=T0)
    assert changed is False and got is not None and got.delivery == "sent"


def test_a_lower_rank_never_moves_it_back(store: Store) -> None:
    sent(store, "a", "pm-1")
    store.apply_delivery_event("sociocs", "pm-1", "read", now=T0)
    for status in ("delivered", "sent", "accepted"):
        changed, got = store.apply_delivery_event("sociocs", "pm-1", status, now=T0)
        assert changed is False and got is not None and got.delivery == "read"


def test_events_before_the_send_knew_its_id_are_adopted_best_rank_first(store: Store) -> None:
    queries = DeliveryQueries(store)
    for status, error in (("sent", None), ("read", None), ("delivered", None)):
        assert store.apply_delivery_event("sociocs", "pm-early", status, error, now=T0) == (False, None)
    mid = sent(store, "a", "pm-early")
    with store.write() as conn:
        conn.execute("UPDATE messages SET thread_ts = '1.2', status_dirty = 0 WHERE id = ?", (mid,))
    changed, got = queries.adopt_orphans(row(store, mid), now=T0 + 4)
    assert changed and got is not None and (got.delivery, got.updated_at) == ("read", T0 + 4)
    assert queries.is_dirty(mid)  # the thread's status line must be redrawn
    linked = store.conn.execute("SELECT message_id FROM delivery_events").fetchall()
    assert [r[0] for r in linked] == [mid] * 3
    assert queries.adopt_orphans(row(store, mid)) == (False, row(store, mid))  # nothing left to adopt


def test_an_early_failure_is_adopted_with_its_error(store: Store) -> None:
    queries = DeliveryQueries(store)
    store.apply_delivery_event("sociocs", "pm-x", "failed", "Carrier rejected", now=T0)
    mid = sent(store, "a", "pm-x")
    changed, got = queries.adopt_orphans(row(store, mid), now=T0 + 1)
    assert changed and got is not None and (got.delivery, got.delivery_error) == ("failed", "Carrier rejected")


def test_adopting_needs_a_provider_id_and_a_better_state(store: Store) -> None:
    queries = DeliveryQueries(store)
    mid, _ = store.enqueue(new("a"), now=T0)
    assert queries.adopt_orphans(row(store, mid)) == (False, row(store, mid))  # no provider id yet
    store.apply_delivery_event("sociocs", "pm-2", "accepted", now=T0)
    other = sent(store, "b", "pm-2")
    before = row(store, other)
    assert queries.adopt_orphans(before) == (False, before)  # same state as stored: nothing to do
    assert store.conn.execute("SELECT message_id FROM delivery_events").fetchone()[0] == other


def test_settle_unknown_only_moves_unknown_rows_and_says_how(store: Store) -> None:
    queries = DeliveryQueries(store)
    a, _ = store.enqueue(new("a"), now=T0)
    b, _ = store.enqueue(new("b"), now=T0)
    store.claim_due("w", now=T0)
    for mid in (a, b):
        store.mark_sending(mid, "w", now=T0, lease=1)
    store.reap_expired(now=T0 + 5)
    assert queries.settle_unknown(a, "sent", provider_message_id="pm-a", delivery="accepted", now=T0 + 6)
    assert queries.settle_unknown(b, "failed", error="not found", now=T0 + 6)
    assert not queries.settle_unknown(a, "failed", now=T0 + 7)  # settled already
    got_a, got_b = row(store, a), row(store, b)
    # sent_at: when we last had it (the send), not when the provider confirmed it.
    assert (got_a.status, got_a.provider_message_id, got_a.delivery, got_a.error_kind, got_a.sent_at) == \
        ("sent", "pm-a", "accepted", "reconciled", T0 + 5)
    assert (got_b.status, got_b.error, got_b.error_kind, got_b.sent_at, got_b.updated_at) == \
        ("failed", "not found", "not_found", None, T0 + 6)


def test_without_now_the_transitions_stamp_the_real_clock(store: Store) -> None:
    before = time.time()
    for key in "abcde":
        store.enqueue(new(key, due=before - 1), now=before)
    assert store.claim_one(1, "w") is not None and store.mark_sending(1, "w")
    store.record_outcome(1, "sent", provider_message_id="pm-1", delivery="accepted")
    store.cancel(2)
    store.edit(3, summary="x")
    store.apply_delivery_event("sociocs", "pm-1", "delivered")
    stamps = [row(store, i).updated_at for i in (1, 2, 3)]
    assert all(before <= s <= time.time() for s in stamps), stamps


def test_claim_defaults_ten_rows_a_minute_lease(store: Store) -> None:
    for i in range(12):
        store.enqueue(new(f"m{i}"), now=T0)
    claimed, _ = store.claim_due("w", now=T0)
    assert len(claimed) == 10 and row(store, 1).lease_until == T0 + 60
    one = store.claim_one(11, "cli", now=T0)
    assert one is not None and one.lease_until == T0 + 60
    assert store.mark_sending(1, "w", now=T0) and row(store, 1).lease_until == T0 + 120


def test_recover_owner_with_a_past_now_still_ends_those_leases(store: Store) -> None:
    past = 1_600_000_000.0
    store.enqueue(new("a", due=past), now=past)
    store.claim_due("host:1:aa", now=past, lease=600)
    store.recover_owner("host:", now=past + 1)
    assert row(store, 1).status == "pending"


def test_unranked_statuses_neither_win_nor_break_the_ranking(store: Store) -> None:
    queries = DeliveryQueries(store)
    for pid, statuses in (("pm-a", ("sent", "weird")), ("pm-b", ("weird", "sent"))):
        for status in statuses:
            store.apply_delivery_event("sociocs", pid, status, now=T0)
        mid, _ = store.enqueue(new(pid, sender="twlo"), now=T0)
        store.claim_due("w", now=T0)
        store.mark_sending(mid, "w", now=T0)
        store.record_outcome(mid, "sent", provider_message_id=pid, now=T0)  # no delivery state yet
        changed, got = queries.adopt_orphans(row(store, mid), now=T0)
        assert changed and got is not None and got.delivery == "sent", pid
    store.apply_delivery_event("sociocs", "pm-c", "weird", now=T0)
    known = sent(store, "c", "pm-c")  # delivery "accepted"
    assert queries.adopt_orphans(row(store, known)) == (False, row(store, known))


def test_a_known_state_after_an_unranked_one_still_applies(store: Store) -> None:
    mid, _ = store.enqueue(new("a", sender="twlo"), now=T0)
    store.claim_due("w", now=T0)
    store.mark_sending(mid, "w", now=T0)
    store.record_outcome(mid, "sent", provider_message_id="pm-1", now=T0)
    assert store.apply_delivery_event("sociocs", "pm-1", "weird", now=T0)[0] is True  # first word we hear
    changed, got = store.apply_delivery_event("sociocs", "pm-1", "sent", now=T0)
    assert changed and got is not None and got.delivery == "sent"
    other = sent(store, "b", "pm-2")  # "accepted"
    assert store.apply_delivery_event("sociocs", "pm-2", "weird", now=T0)[0] is False
    assert row(store, other).delivery == "accepted"
