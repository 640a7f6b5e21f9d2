"""The Store contract: the same behaviour on SQLite and on PostgreSQL (fixtures in conftest.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from storage import open_store, sqlite_path
from storage.bulk import BulkStore, DraftRow, NewBulkJob
from storage.delivery import ALERT_AFTER, DeliveryQueries
from storage.schema import LATEST, SchemaTooNew
from storage.store import NewMessage, Store, Viewer

NOW = 1_800_000_000.0


def msg(key: str, *, due: float = NOW - 1, to: str = "+15550000001", by: str | None = "U1",
        scheduled: bool = False, sender: str = "bird") -> NewMessage:
    return NewMessage(idem_key=key, sender=sender, to_number=to, payload={"text": f"hi {key}"},
                      summary=f"hi {key}", due_at=due, created_by=by, scheduled=scheduled)


def test_enqueue_is_idempotent_by_key(store: Store) -> None:
    first = store.enqueue(msg("k1"), now=NOW)
    again = store.enqueue(msg("k1"), now=NOW + 5)
    other = store.enqueue(msg("k2"), now=NOW)
    assert first == (first[0], True) and again == (first[0], False)
    assert other[1] and other[0] != first[0]
    row = store.get(first[0])
    assert row is not None and row.payload == {"text": "hi k1"} and row.status == "pending"
    assert row.created_at == NOW  # double precision: a timestamp survives to the microsecond
    assert store.counts_by_status() == {"pending": 2}


def test_ids_out_of_range_are_simply_absent(store: Store) -> None:
    assert store.get(2**70) is None and store.get(0) is None
    assert store.cancel(2**63).ok is False


def test_two_workers_never_claim_the_same_row(open_stores: Callable[[], Store]) -> None:
    writer = open_stores()
    writer.enqueue_many([msg(f"c{i}", to=f"+1555000{i:04d}") for i in range(120)], now=NOW)
    workers = [open_stores() for _ in range(4)]
    got: list[list[int]] = [[] for _ in workers]
    start = threading.Barrier(len(workers))

    def work(n: int) -> None:
        start.wait()
        while True:
            claimed, _ = workers[n].claim_due(f"w{n}", now=NOW, limit=7)
            if not claimed:
                return
            got[n] += [r.id for r in claimed]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [i for ids in got for i in ids]
    assert len(every) == 120 and len(set(every)) == 120
    assert writer.counts_by_status() == {"claimed": 120}


def test_claim_order_misfire_and_skip(store: Store) -> None:
    store.enqueue(msg("late", due=NOW - 3600, scheduled=True), now=NOW - 7200)
    store.enqueue(msg("soon", due=NOW - 5), now=NOW)
    store.enqueue(msg("later", due=NOW + 60), now=NOW)
    store.enqueue(msg("tx", due=NOW - 9, sender="textus"), now=NOW)
    claimed, missed = store.claim_due("w", now=NOW, limit=10, misfire_grace=300, skip_senders=["textus"])
    assert [r.idem_key for r in claimed] == ["soon"]
    assert [r.idem_key for r in missed] == ["late"]
    assert store.next_due_at() == NOW - 9


def test_outcomes_and_at_most_once_rules(store: Store) -> None:
    mid, _ = store.enqueue(msg("o1"), now=NOW)
    [row], _ = store.claim_due("w", now=NOW)
    assert store.mark_sending(mid, "other") is False  # not its claim
    assert store.mark_sending(mid, "w", now=NOW) is True
    out = store.record_outcome(mid, "sent", provider_message_id="p-1", delivery="accepted", now=NOW + 1)
    assert out is not None and out.status == "sent" and out.sent_at == NOW + 1 and out.attempts == 1
    assert store.by_provider_id("p-1") is not None
    # A lease that runs out while sending means "unknown", never pending again.
    mid2, _ = store.enqueue(msg("o2"), now=NOW)
    store.claim_due("w", now=NOW, lease=10)
    store.mark_sending(mid2, "w", now=NOW, lease=10)
    gone = store.reap_expired(now=NOW + 11)
    assert [r.id for r in gone] == [mid2] and store.get(mid2).status == "unknown"  # type: ignore[union-attr]
    assert store.reap_expired(now=NOW + 12) == []


def test_pending_lists_visibility_and_people_actions(store: Store) -> None:
    for i in range(5):
        store.enqueue(msg(f"s{i}", due=NOW + 100 + i, scheduled=True, by="U1" if i % 2 else "U2"), now=NOW)
    assert store.count_pending() == 5 and store.count_pending(created_by="U1") == 2
    assert [r.idem_key for r in store.pending(limit=2, offset=1)] == ["s1", "s2"]
    first = store.pending(limit=1)[0]
    assert store.visible(first.id, Viewer(user_id="U1")) is None
    assert store.visible(first.id, Viewer(user_id="U2")) is not None
    assert store.visible(first.id, Viewer()) is None  # nobody: sees nothing
    assert len(store.history("+15550000001", Viewer.operator())) == 5
    assert store.edit(first.id, due_at=NOW + 50, payload={"text": "new"}).ok
    assert store.cancel(first.id).ok and not store.cancel(first.id).ok
    assert store.first_time("slack:1") and not store.first_time("slack:1")


def test_bulk_job_lifecycle(store: Store) -> None:
    jobs = BulkStore(store)
    job = NewBulkJob(idem_key="b1", sender="bird", text="hello", total=3, created_by="U1")
    rows = (DraftRow(f"+1555111000{n}", None, '{"text":"hello"}', "hello") for n in range(3))
    job_id, created = jobs.create_draft(job, rows, now=NOW)
    assert created and jobs.create_draft(job, iter(()), now=NOW) == (job_id, False)
    assert jobs.begin_confirm(job_id) and not jobs.begin_confirm(job_id)
    assert jobs.activate(job_id, "C1", "1.1", now=NOW) == 3
    assert [j.id for j in jobs.live_jobs()] == [job_id]
    store.enqueue(msg("single"), now=NOW)
    claimed, _ = store.claim_due("w", now=NOW, limit=2)
    assert [r.priority for r in claimed] == [0, 1]  # a single message goes before bulk rows
    # Claimed rows are not sent yet: Pause takes them too.
    assert jobs.pause(job_id, now=NOW) == 3 and jobs.resume(job_id, now=NOW) == 3
    assert jobs.cancel(job_id, now=NOW) == 3
    assert jobs.begin_finish(job_id) and not jobs.begin_finish(job_id)
    jobs.set_summary_ts(job_id, "9.9")
    assert jobs.get(job_id).payload["summary_ts"] == "9.9"  # type: ignore[union-attr]
    assert jobs.counts(job_id) == {"canceled": 3}


def test_provider_batches(store: Store) -> None:
    jobs = BulkStore(store)
    job = NewBulkJob(idem_key="pb", sender="twlo", mode="provider_bulk", text="x", total=4)
    job_id, _ = jobs.create_draft(job, (DraftRow(f"+1555222000{n}", None, "{}", "x") for n in range(4)), now=NOW)
    jobs.activate(job_id, now=NOW)
    batch = jobs.take_batch(job_id, "w", size=3, lease=60, now=NOW)
    assert len(batch) == 3 and len(jobs.take_batch(job_id, "w", size=3, lease=60, now=NOW)) == 1
    jobs.finish_batch(job_id, [b.id for b in batch], "sent", provider_job_id="J1", now=NOW)
    assert jobs.get(job_id).provider_job_ids == ["J1"]  # type: ignore[union-attr]
    assert jobs.counts(job_id) == {"sent": 3, "sending": 1}


def test_delivery_events_only_move_forward(store: Store) -> None:
    mid, _ = store.enqueue(msg("d1"), now=NOW)
    store.claim_due("w", now=NOW)
    store.mark_sending(mid, "w", now=NOW)
    store.record_outcome(mid, "sent", provider_message_id="pm-1", delivery="accepted", now=NOW)
    changed, row = store.apply_delivery_event("bird", "pm-1", "delivered", now=NOW + 1)
    assert changed and row is not None and row.delivery == "delivered"
    assert store.apply_delivery_event("bird", "pm-1", "delivered") == (False, None)  # duplicate
    changed, row = store.apply_delivery_event("bird", "pm-1", "sent")
    assert not changed and row is not None and row.delivery == "delivered"  # late, lower rank
    assert store.apply_delivery_event("textus", "pm-1", "failed")[0] is False  # another provider's id


def test_early_events_adopted_and_sender_health(store: Store) -> None:
    delivery = DeliveryQueries(store)
    store.apply_delivery_event("bird", "pm-9", "delivered", now=NOW)  # before the send knew its id
    mid, _ = store.enqueue(msg("d9"), now=NOW)
    store.claim_due("w", now=NOW)
    store.mark_sending(mid, "w", now=NOW)
    row = store.record_outcome(mid, "sent", provider_message_id="pm-9", now=NOW)
    changed, adopted = delivery.adopt_orphans(row)  # type: ignore[arg-type]
    assert changed and adopted is not None and adopted.delivery == "delivered"
    alerts = [delivery.health_failure("bird", "auth", "401") for _ in range(ALERT_AFTER + 1)]
    assert alerts == [None] * (ALERT_AFTER - 1) + [ALERT_AFTER, None]
    assert delivery.health_success("bird") is True and delivery.health("bird")["state"] == "ok"  # type: ignore[index]


def test_newer_schema_is_refused_with_both_versions(store_url: str, store: Store) -> None:
    with store.write() as conn:
        conn.execute("UPDATE schema_version SET version = ?", (LATEST + 1,))
    with pytest.raises(SchemaTooNew) as err:
        open_store(store_url)
    assert f"version {LATEST + 1}" in str(err.value) and f"up to {LATEST}" in str(err.value)


def test_migrations_are_safe_when_processes_start_at_once(open_stores: Callable[[], Store]) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_stores().ping()
        except BaseException as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert open_stores().schema_version() == LATEST


def test_ping(store: Store) -> None:
    assert store.ping() is True


def test_url_parsing() -> None:
    assert sqlite_path("sqlite:///smsbot.db") == "smsbot.db"
    assert sqlite_path("sqlite:////var/lib/s.db") == "/var/lib/s.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:" and sqlite_path("sqlite://") == ":memory:"
    memory = open_store("sqlite:///:memory:")
    assert memory.ping() and memory.dialect == "sqlite"
    memory.close()
    with pytest.raises(ValueError):
        open_store("mysql://x/y")


@pytest.mark.postgres
def test_postgres_scheme_as_platforms_write_it(pg_url: str) -> None:
    store = open_store(pg_url.replace("postgresql://", "postgres://", 1))
    try:
        assert store.dialect == "postgresql" and store.ping()
    finally:
        store.close()


def test_now_defaults_to_the_clock(store: Store) -> None:
    before = time.time()
    assert abs(store.clock() - before) < 5


def test_figures_and_replays_read_alike_on_both_backends(store: Store) -> None:
    from storage.figures import Figures

    figures, delivery = Figures(store), DeliveryQueries(store)
    jobs = BulkStore(store)
    draft, _ = jobs.create_draft(NewBulkJob(idem_key="f1", sender="bird", text="x", total=1),
                                 iter([DraftRow("+15551110001", None, "{}", "x")]), now=NOW)
    running, _ = jobs.create_draft(NewBulkJob(idem_key="f2", sender="bird", text="x", total=1),
                                   iter([DraftRow("+15551110002", None, "{}", "x")]), now=NOW)
    jobs.activate(running, now=NOW)
    assert figures.bulk_jobs_by_status() == {"draft": 1, "running": 1}
    mid, _ = store.enqueue(msg("f3", by="U2"), now=NOW + 10)
    assert figures.count_since(NOW + 5) == 1  # the bulk rows were stored at NOW
    assert figures.count_since(NOW + 5, Viewer(user_id="U1")) == 0 and figures.count_since(0) == 3
    store.claim_due("w", now=NOW + 10)
    store.mark_sending(mid, "w", now=NOW + 10)
    store.record_outcome(mid, "sent", provider_message_id="pm-f", now=NOW + 10)
    store.apply_delivery_event("bird", "pm-f", "delivered", now=NOW + 11)
    store.apply_delivery_event("bird", "pm-stranger", "delivered", now=NOW + 11)
    assert delivery.event_is_ours("bird", "pm-f", "delivered")  # a replay of it is a duplicate
    assert not delivery.event_is_ours("bird", "pm-stranger", "delivered")  # not about our message
    assert not delivery.event_is_ours("bird", "pm-f", "read")  # not received yet
