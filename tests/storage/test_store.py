"""The outbox store: idempotent writes, exclusive claims, at-most-once across crashes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from storage.store import NewMessage, Store, Viewer

T0 = 1_800_000_000.0


def new(key: str, due: float = T0, scheduled: bool = False, sender: str = "sandbox", **kw: object) -> NewMessage:
    return NewMessage(
        idem_key=key, sender=sender, to_number="+16175551212",
        payload={"to": "+16175551212", "text": key}, summary=key, due_at=due, scheduled=scheduled, **kw,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "s.db"))


def test_enqueue_is_idempotent_on_key(store: Store) -> None:
    first = store.enqueue(new("a"), now=T0)
    again = store.enqueue(new("a"), now=T0)
    assert first == (1, True)
    assert again == (1, False)
    assert store.counts_by_status() == {"pending": 1}


def test_schema_is_versioned_and_reopening_keeps_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    Store(path).enqueue(new("a"), now=T0)
    reopened = Store(path)
    assert reopened.conn.execute("SELECT version FROM schema_version").fetchone()[0] >= 2
    assert reopened.get(1) is not None and reopened.get(1).summary == "a"


def test_claim_takes_only_due_rows_soonest_first(store: Store) -> None:
    store.enqueue(new("later", due=T0 + 60), now=T0)
    store.enqueue(new("b", due=T0 - 5), now=T0)
    store.enqueue(new("a", due=T0 - 10), now=T0)
    claimed, missed = store.claim_due("w", now=T0, limit=10)
    assert [r.summary for r in claimed] == ["a", "b"]
    assert missed == []
    assert store.next_due_at() == T0 + 60


def test_two_workers_never_claim_the_same_row(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    Store(path).enqueue_many([new(f"m{i}") for i in range(300)], now=T0)
    got: dict[str, list[int]] = {"w1": [], "w2": [], "w3": []}

    def work(owner: str) -> None:
        s = Store(path)
        while True:
            claimed, _ = s.claim_due(owner, now=T0, limit=7)
            if not claimed:
                return
            got[owner] += [r.id for r in claimed]

    threads = [threading.Thread(target=work, args=(o,)) for o in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = got["w1"] + got["w2"] + got["w3"]
    assert sorted(ids) == list(range(1, 301))


def test_crash_before_the_call_gives_the_row_back_crash_during_it_makes_it_unknown(store: Store) -> None:
    store.enqueue(new("before"), now=T0)
    store.enqueue(new("during"), now=T0)
    claimed, _ = store.claim_due("dead-worker", now=T0, lease=30)
    assert store.mark_sending(claimed[1].id, "dead-worker", now=T0, lease=30)
    # The worker dies. After the lease: the row never sent is pending again, the other unknown.
    unknown = store.reap_expired(now=T0 + 31)
    assert [r.summary for r in unknown] == ["during"]
    assert store.get(claimed[0].id).status == "pending"
    assert store.get(claimed[1].id).status == "unknown"
    # And nothing about "during" is ever claimed again.
    again, _ = store.claim_due("new-worker", now=T0 + 32)
    assert [r.summary for r in again] == ["before"]


def test_cancel_and_edit_only_while_pending(store: Store) -> None:
    store.enqueue(new("a", due=T0 + 100, scheduled=True), now=T0)
    store.enqueue(new("b", due=T0 - 1, scheduled=True), now=T0)
    assert store.edit(1, due_at=T0 + 200, now=T0).ok
    assert store.get(1).due_at == T0 + 200
    claimed, _ = store.claim_due("w", now=T0)
    assert [r.id for r in claimed] == [2]
    late_cancel = store.cancel(2, now=T0)
    assert not late_cancel.ok and late_cancel.status == "claimed"
    late_edit = store.edit(2, summary="changed", now=T0)
    assert not late_edit.ok and store.get(2).summary == "b"
    assert store.cancel(1, now=T0).ok
    assert store.claim_due("w", now=T0 + 1000)[0] == []
    assert store.cancel(99).status is None


def test_misfired_schedules_are_marked_missed_not_sent(store: Store) -> None:
    store.enqueue(new("stale", due=T0 - 3600, scheduled=True), now=T0 - 7200)
    store.enqueue(new("recent", due=T0 - 60, scheduled=True), now=T0 - 7200)
    claimed, missed = store.claim_due("w", now=T0, misfire_grace=900)
    assert [r.summary for r in claimed] == ["recent"]
    assert [r.summary for r in missed] == ["stale"]
    assert store.get(missed[0].id).status == "missed"
    assert store.send_missed_now(missed[0].id, now=T0).ok
    assert [r.summary for r in store.claim_due("w", now=T0 + 1, misfire_grace=900)[0]] == ["stale"]


def test_delivery_events_move_forward_only_and_dedupe(store: Store) -> None:
    store.enqueue(new("a", sender="twlo"), now=T0)
    claimed, _ = store.claim_due("w", now=T0)
    store.mark_sending(1, "w", now=T0)
    store.record_outcome(1, "sent", provider_message_id="pm-1", delivery="accepted", now=T0)
    assert store.apply_delivery_event("sociocs", "pm-1", "delivered", now=T0)[0] is True
    assert store.apply_delivery_event("sociocs", "pm-1", "delivered", now=T0)[0] is False  # duplicate
    assert store.apply_delivery_event("sociocs", "pm-1", "sent", now=T0)[0] is False  # out of order
    assert store.get(1).delivery == "delivered"
    assert store.apply_delivery_event("sociocs", "nobody", "delivered", now=T0) == (False, None)


def test_first_time_dedupes_keys(store: Store) -> None:
    assert store.first_time("event:1")
    assert not store.first_time("event:1")


def test_an_event_only_touches_messages_of_its_own_provider(store: Store) -> None:
    store.enqueue(new("a", sender="twlo"), now=T0)
    store.claim_due("w", now=T0)
    store.mark_sending(1, "w", now=T0)
    store.record_outcome(1, "sent", provider_message_id="SAME-ID", delivery="accepted", now=T0)
    # A TextUs event carrying a Sociocs message id changes nothing...
    assert store.apply_delivery_event("textus", "SAME-ID", "failed", error="spoofed", now=T0) == (False, None)
    assert store.get(1).delivery == "accepted"
    # ...while the Sociocs family (twlo, twlowa, gswa) matches.
    changed, row = store.apply_delivery_event("sociocs", "SAME-ID", "delivered", now=T0)
    assert changed and row is not None and row.delivery == "delivered"


def test_more_stale_schedules_than_one_sweep_are_all_missed_none_sent(store: Store) -> None:
    store.enqueue_many([new(f"old{i}", due=T0 - 7200, scheduled=True) for i in range(150)], now=T0 - 9000)
    sent = []
    missed = []
    for _ in range(3):
        claimed, gone = store.claim_due("w", now=T0, limit=16, misfire_grace=900)
        sent += claimed
        missed += gone
    assert sent == []
    assert len(missed) == 150


def test_absurd_ids_are_just_not_found(store: Store) -> None:
    huge = 10**30
    assert store.get(huge) is None
    assert store.cancel(huge).ok is False and store.cancel(huge).status is None
    assert store.edit(huge, summary="x").ok is False


@pytest.mark.parametrize("status", ["draft", "queued", "paused", "waiting"])
def test_bulk_row_states_read_back_in_history(store: Store, status: str) -> None:
    store.enqueue(new("a", created_by="U1"), now=T0)
    with store.write() as conn:
        conn.execute("UPDATE messages SET status = ? WHERE id = 1", (status,))
    assert [r.status for r in store.history("+16175551212", Viewer(user_id="U1"))] == [status]


# --------------------------------------------------------------------------- who sees what


def visibility_store(store: Store) -> None:
    """#1 U1's send, #2 U2's send, #3 U1's unconfirmed draft row, #4 a discarded draft's row of UM."""
    store.enqueue(new("a", created_by="U1"), now=T0)
    store.enqueue(new("b", created_by="U2"), now=T0)
    store.enqueue(new("c", created_by="U1"), now=T0)
    store.enqueue(new("d", created_by="UM"), now=T0)
    with store.write() as conn:
        conn.execute("UPDATE messages SET status = 'draft' WHERE id = 3")
        conn.execute("INSERT INTO bulk_jobs (id, idem_key, sender, status, mode, created_at, updated_at)"
                     " VALUES (7, 'job', 'sandbox', 'discarded', 'per_recipient', 0, 0)")
        conn.execute("UPDATE messages SET status = 'canceled', bulk_job_id = 7 WHERE id = 4")


@pytest.mark.parametrize(("viewer", "seen"), [
    (Viewer(user_id="U1"), [1, 3]),  # own messages, own draft included
    (Viewer(user_id="U2"), [2]),
    (Viewer(user_id="UM", sees_all=True), [1, 2, 4]),  # everyone's, but not U1's draft
    (Viewer(user_id="U9", sees_all=True), [1, 2]),
    (Viewer.operator(), [1, 2]),  # the CLI: every confirmed message
    (Viewer(), []),
])
def test_one_visibility_rule_for_every_read(store: Store, viewer: Viewer, seen: list[int]) -> None:
    visibility_store(store)
    assert [r.id for r in store.since(0, viewer)] == seen
    assert sorted(r.id for r in store.history("+16175551212", viewer)) == seen
    assert [i for i in (1, 2, 3, 4) if store.visible(i, viewer)] == seen


def test_every_write_of_provider_text_passes_through_the_redactor(store: Store) -> None:
    from storage.bulk import BulkStore
    from storage.delivery import DeliveryQueries

    store.redactor = lambda text: text.replace("s3cret", "***")
    for key in "abcde":
        store.enqueue(new(key), now=T0)
    with store.write() as conn:
        conn.execute("UPDATE messages SET status = 'sending', provider_message_id = 'p' || id")
    store.record_outcome(1, "failed", error="refused: key s3cret")
    store.release(2, T0, error="busy s3cret")
    store.apply_delivery_event("sandbox", "p3", "failed", error="carrier said s3cret")
    BulkStore(store).finish_batch(0, [4], "failed", error="batch s3cret")
    with store.write() as conn:
        conn.execute("UPDATE messages SET status = 'unknown' WHERE id = 5")
    DeliveryQueries(store).settle_unknown(5, "failed", error="lookup s3cret")
    DeliveryQueries(store).health_failure("sandbox", "auth", "health s3cret")
    dump = [json.dumps(dict(r)) for table in ("messages", "delivery_events", "sender_health")
            for r in store.conn.execute(f"SELECT * FROM {table}")]
    assert "s3cret" not in "\n".join(dump)
    assert [store.get(i).error or store.get(i).delivery_error for i in range(1, 6)] == [
        "refused: key ***", "busy ***", "carrier said ***", "batch ***", "lookup ***"]
