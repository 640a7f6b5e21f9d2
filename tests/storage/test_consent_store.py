"""Consent statements (storage/consent.py) and the claim-time check: SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from storage.bulk import BulkStore, DraftRow, NewBulkJob
from storage.consent import ConsentQueries
from storage.store import NewMessage, Store

NOW = 1_800_000_000.0  # Fri 15 Jan 2027
A, B = "+16175551212", "+16175550000"


def msg(key: str, to: str = A, family: str | None = "sms", exempt: bool = False) -> NewMessage:
    return NewMessage(idem_key=key, sender="twlo", to_number=to, payload={"to": to, "text": "hi"},
                      due_at=NOW - 1, consent_family=family, consent_exempt=exempt)


def test_opt_out_then_in_keeps_the_whole_history(store: Store) -> None:
    q = ConsentQueries(store)
    assert q.opt_out(A, "sms", source="keyword_STOP", by_recipient=True, now=NOW) is True
    assert q.opt_out(A, "sms", source="keyword_STOP", by_recipient=True, now=NOW + 1) is False  # no change
    state = q.state(A, "sms")
    assert state is not None and state.opted_out and state.by_recipient and state.source == "keyword_STOP"
    assert state.words() == "opted out on 15 Jan via STOP reply"
    assert q.state(A, "whatsapp") is None
    assert q.opt_in(A, "sms", source="keyword_START", by_recipient=True, now=NOW + 2) == "opted_in"
    assert q.opt_in(A, "sms", source="keyword_START", by_recipient=True, now=NOW + 3) == "not_opted_out"
    assert [(e.action, e.source) for e in q.history(A)] == [("opt_out", "keyword_STOP"), ("opt_in", "keyword_START")]
    assert q.opted_out([A]) == {}


def test_a_manual_opt_in_never_lifts_the_recipients_own(store: Store) -> None:
    q = ConsentQueries(store)
    q.opt_out(A, "sms", source="keyword_STOP", by_recipient=True, now=NOW)
    assert q.opt_in(A, "sms", source="manual", by_recipient=False, actor="U1", now=NOW + 1) == "recipient_only"
    assert q.state(A, "sms").opted_out  # type: ignore[union-attr]
    # A manual opt-out over the recipient's changes nothing; the recipient's over a manual one takes over.
    assert q.opt_out(A, "sms", source="manual", by_recipient=False, actor="U1", now=NOW + 2) is False
    q.opt_out(B, "sms", source="manual", by_recipient=False, actor="U1", reason="asked by phone", now=NOW)
    q.opt_out(B, "sms", source="textus_event", by_recipient=True, now=NOW + 1)
    assert q.opt_in(B, "sms", source="manual", by_recipient=False, now=NOW + 2) == "recipient_only"
    actions = [e.action for e in q.history(A)]
    assert actions == ["opt_out", "opt_in_refused"]


def test_the_confirmation_is_claimed_once_per_opt_out(store: Store) -> None:
    q = ConsentQueries(store)
    assert q.claim_confirmation(A, "sms", NOW) is False  # not opted out
    q.opt_out(A, "sms", source="keyword_STOP", by_recipient=True, now=NOW)
    assert q.claim_confirmation(A, "sms", NOW) is True
    assert q.claim_confirmation(A, "sms", NOW) is False
    q.opt_in(A, "sms", source="keyword_START", by_recipient=True, now=NOW + 1)
    q.opt_out(A, "sms", source="keyword_STOP", by_recipient=True, now=NOW + 2)
    assert q.claim_confirmation(A, "sms", NOW + 2) is True  # a new opt-out, a new confirmation


def test_page_lists_newest_first_with_a_total(store: Store) -> None:
    q = ConsentQueries(store)
    for i in range(5):
        q.opt_out(f"+1617555000{i}", "sms", source="import", by_recipient=False, now=NOW + i)
    rows, total = q.page(limit=2, offset=0)
    assert total == 5 and [r.number for r in rows] == ["+16175550004", "+16175550003"]
    assert q.opted_out_numbers("sms") == frozenset(f"+1617555000{i}" for i in range(5))
    assert q.opted_out_numbers("whatsapp") == frozenset()


def test_the_claim_stops_opted_out_rows_in_its_transaction(store: Store) -> None:
    q = ConsentQueries(store)
    ids = [store.enqueue(m, now=NOW)[0] for m in (
        msg("a-sms"), msg("a-wa", family="whatsapp"), msg("a-any", family=None), msg("a-exempt", exempt=True),
        msg("b", to=B))]
    q.opt_out(A, "sms", source="keyword_STOP", by_recipient=True, now=NOW)
    sending, others, _ = store.claim_sending("w1", limit=10, lease=30, now=NOW)
    assert sorted(r.id for r in sending) == [ids[1], ids[3], ids[4]]
    stopped = {r.id: r for r in others}
    assert set(stopped) == {ids[0], ids[2]}
    for mid in (ids[0], ids[2]):
        row = store.get(mid)
        assert row is not None and row.status == "failed" and row.error_kind == "opted_out"
        assert row.error == "opted out on 15 Jan via STOP reply" and stopped[mid].status == "failed"
        assert row.attempts == 0  # never marked sending


def test_claim_one_then_mark_sending_checks_again(store: Store) -> None:
    q = ConsentQueries(store)
    mid = store.enqueue(msg("cli"), now=NOW)[0]
    assert store.claim_one(mid, "cli", now=NOW) is not None
    q.opt_out(A, "sms", source="manual", by_recipient=False, now=NOW)  # between claim and send
    assert store.mark_sending(mid, "cli", now=NOW) is False
    row = store.get(mid)
    assert row is not None and row.status == "failed" and row.error == "opted out on 15 Jan via a manual opt-out"


@pytest.mark.parametrize("family", ["sms", None])
def test_a_sociocs_batch_skips_opted_out_rows(store: Store, family: str | None) -> None:
    jobs = BulkStore(store)
    job = NewBulkJob(idem_key="j", sender="twlo", mode="provider_bulk", text="hi", consent_family=family)
    job_id, _ = jobs.create_draft(job, [DraftRow(n, None, '{"text":"hi"}', "hi") for n in (A, B)], now=NOW)
    jobs.activate(job_id, now=NOW)
    ConsentQueries(store).opt_out(A, "sms", source="keyword_STOP", by_recipient=True, now=NOW)
    batch = jobs.take_batch(job_id, "b1", 10, 30, now=NOW + 1)
    assert [r.to for r in batch] == [B]
    counts = jobs.counts(job_id, now=NOW + 1)
    assert counts["failed"] == 1 and counts["_opted_out"] == 1 and counts["sending"] == 1


def test_draft_rows_held_for_quiet_hours_keep_their_own_due_time(store: Store) -> None:
    jobs = BulkStore(store)
    job_id, _ = jobs.create_draft(NewBulkJob(idem_key="q", sender="twlo", text="hi"),
                                  [DraftRow(A, None, "{}", "hi", NOW + 3600), DraftRow(B, None, "{}", "hi")], now=NOW)
    jobs.activate(job_id, now=NOW)
    counts = jobs.counts(job_id, now=NOW)
    assert counts["_quiet_waiting"] == 1 and counts["_quiet_until"] == int(NOW + 3600)
    claimed, _, _ = store.claim_sending("w", limit=10, lease=30, now=NOW)
    assert [r.to_number for r in claimed] == [B]
    claimed, _, _ = store.claim_sending("w", limit=10, lease=30, now=NOW + 3600)
    assert [r.to_number for r in claimed] == [A]
