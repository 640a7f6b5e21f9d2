"""`smsbot migrate --from sqlite:///...`: every table copied into PostgreSQL, once; the old store stops sending."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from storage import copy_store, open_store
from storage.bulk import BulkStore, DraftRow, NewBulkJob
from storage.consent import ConsentQueries
from storage.conversations import ConversationQueries, NewInbound
from storage.copy import redact_url
from storage.delivery import DeliveryQueries
from storage.store import NewMessage, Store
from tests.cli.runner import last, run

pytestmark = pytest.mark.postgres
NOW = 1_800_000_000.0


def _fill(store: Store) -> dict[str, int]:
    """A store with a bit of everything; returns the row count of each table."""
    for n in range(3):
        store.enqueue(NewMessage(idem_key=f"m{n}", sender="bird", to_number=f"+1555000000{n}",
                                 payload={"text": "é ✓"}, due_at=NOW + n, scheduled=True), now=NOW)
    mid, _ = store.enqueue(NewMessage(idem_key="sent", sender="bird", to_number="+15550009999",
                                      payload={}, due_at=NOW), now=NOW)
    store.claim_one(mid, "w", now=NOW)
    store.mark_sending(mid, "w", now=NOW)
    store.record_outcome(mid, "sent", provider_message_id="p1", now=NOW)
    store.apply_delivery_event("bird", "p1", "delivered", now=NOW)
    store.first_time("slack:evt1")
    DeliveryQueries(store).health_failure("textus", "auth", "401")
    job = NewBulkJob(idem_key="b", sender="bird", text="x", total=2)
    BulkStore(store).create_draft(job, (DraftRow(f"+1555111000{n}", None, "{}", "x") for n in range(2)), now=NOW)
    store.pause_sender("bird", NOW + 60)
    store.try_lead("reconcile", "old", ttl=5)
    conversations = ConversationQueries(store)  # issue 13: a customer's message and its conversation
    row, _ = conversations.add_inbound(NewInbound(provider="bird", provider_message_id="in1", sender="bird",
                                                  channel="sms", from_number="+15550009999", text="hi",
                                                  received_at=NOW))
    conversations.link_inbound(row.id, conversations.on_inbound("+15550009999", "bird", name=None, text="hi",
                                                                at=NOW, whatsapp=False, now=NOW).id)
    consent = ConsentQueries(store)
    consent.opt_out("+15550000001", "sms", source="keyword_STOP", by_recipient=True, now=NOW)
    consent.opt_in("+15550000001", "sms", source="keyword_START", by_recipient=True, now=NOW + 1)
    consent.opt_out("+15550000002", "whatsapp", source="manual", by_recipient=False, actor="U1", now=NOW)
    return {"messages": 6, "delivery_events": 1, "seen_requests": 1, "sender_health": 1, "bulk_jobs": 1,
            "sender_limits": 1, "leases": 1, "conversations": 1, "inbound_messages": 1, "consent_state": 2,
            "consent_log": 3}


def test_copy_is_complete_idempotent_and_stops_the_old_store(tmp_path: Path, pg_url: str) -> None:
    src_url = f"sqlite:///{tmp_path / 'old.db'}"
    src = open_store(src_url)
    expected = _fill(src)
    src.close()

    assert copy_store(src_url, pg_url) == expected
    assert copy_store(src_url, pg_url) == {table: 0 for table in expected}  # a second run adds nothing

    dst = open_store(pg_url)
    try:
        sent = dst.by_provider_id("p1")
        assert sent is not None and sent.status == "sent" and sent.delivery == "delivered"
        assert [r.payload for r in dst.pending()] == [{"text": "é ✓"}] * 3
        new_id, created = dst.enqueue(NewMessage(idem_key="new", sender="bird", to_number="+1", payload={},
                                                 due_at=NOW))
        assert created and new_id == 7  # the sequence continues after the copied ids
        assert dst.migrated_to is None
    finally:
        dst.close()

    old = open_store(src_url)
    try:
        assert old.migrated_to == redact_url(pg_url)
        assert old.claim_due("w", now=NOW + 10) == ([], [])  # its pending rows now belong to PostgreSQL
        assert old.claim_one(1, "w", now=NOW) is None
        assert old.count_pending() == 3  # still readable
    finally:
        old.close()


def test_copy_refuses_other_directions(tmp_path: Path, pg_url: str) -> None:
    with pytest.raises(ValueError):
        copy_store(pg_url, f"sqlite:///{tmp_path / 'x.db'}")


def test_redacted_url_hides_the_password() -> None:
    assert redact_url("postgresql://app:s3cret@db:5432/smsbot") == "postgresql://app:***@db:5432/smsbot"
    assert redact_url("postgresql://app@db/smsbot") == "postgresql://app@db/smsbot"


def test_smsbot_migrate_command(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    src_url = f"sqlite:///{tmp_path / 'old.db'}"
    src = open_store(src_url)
    _fill(src)
    src.close()
    monkeypatch.setenv("DATABASE_URL", pg_url)
    assert run("migrate", "--from", src_url) == 0
    out = last().stdout
    assert "schema at version" in out and "messages: 6 row(s) copied" in out and "marked as migrated" in out


def test_smsbot_refuses_a_newer_schema_in_one_line(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    open_store(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = version + 1")
    monkeypatch.setenv("DATABASE_URL", pg_url)
    assert run("migrate") == 2
    err = last().stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("smsbot: The database schema is version")
