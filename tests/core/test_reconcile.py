"""Reconciling unknown outcomes: never `failed` without the provider's word, one day per
Sociocs lookup, and a bulk job's summary corrected when its rows settle."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import E2E
from tests.e2e.test_e2e_bulk import confirm, engine, form_values, open_form, submit_form, summary_reply
from tests.fakes.providers import Fault

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ["+16175551212", "+16175551213", "+16175551214"]


@pytest.fixture
def make(e2e_factory: Callable[..., E2E]) -> Iterator[Callable[..., E2E]]:
    made: list[E2E] = []

    def build(**settings: Any) -> E2E:
        e2e = e2e_factory(**settings)
        made.append(e2e)
        return e2e

    yield build
    for e2e in made:
        e2e.rt.ctx.delivery.stop()


def slack_said(e2e: E2E) -> str:
    return json.dumps([c["params"] for c in e2e.slack.calls]).lower()


def bulk_with_a_lost_answer(e2e: E2E, text: str) -> None:
    """A Sociocs bulk call the provider takes, whose answer never reaches us (client timeout 2 s)."""
    engine(e2e)
    e2e.providers.script("/messages/bulk", [Fault(delay=2.5)])
    form = open_form(e2e)
    confirm(e2e, submit_form(e2e, form, form_values(sender="twlo", text=text, pasted="\n".join(NUMBERS)))["view"])
    summary = summary_reply(e2e)["params"]["text"]
    assert "0 sent, 0 failed, 3 unknown (of 3)" in summary
    e2e.wait(lambda: len(e2e.providers.sociocs_jobs) == 1, 5, "Sociocs took the job")


def test_a_bulk_job_sociocs_took_without_our_knowing_its_id_is_never_marked_failed(make: Callable[..., E2E]) -> None:
    e2e = make()
    bulk_with_a_lost_answer(e2e, "Store closes at 6")
    delivery = e2e.rt.ctx.delivery
    later = time.time() + 3600
    assert delivery.reconcile_once(now=later) == {1: "unknown", 2: "unknown", 3: "unknown"}
    assert delivery.reconcile_once(now=later) == {1: "unknown", 2: "unknown", 3: "unknown"}
    assert delivery.outbox.flush()
    assert e2e.rt.store.counts_by_status(1) == {"unknown": 3}
    row = e2e.rt.store.get(1)
    assert "never learned the job id" in row.error and "check with the provider before sending it again" in row.error
    notes = [c["params"]["text"] for c in e2e.thread_replies() if c["params"]["text"].startswith(":mag: Bulk #1")]
    assert len(notes) == 1 and "stay unknown" in notes[0]
    said = slack_said(e2e)
    assert "you can send it again" not in said and "no record" not in said and "was not sent" not in said


def test_bulk_rows_found_in_the_list_settle_and_the_summary_is_corrected(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.providers.sociocs_bulk_lists_messages = True  # its History shows the job's messages
    bulk_with_a_lost_answer(e2e, "Doors open at 9")
    first = summary_reply(e2e)
    delivery = e2e.rt.ctx.delivery
    assert delivery.reconcile_once() == {1: "sent", 2: "sent", 3: "sent"}
    assert e2e.rt.store.counts_by_status(1) == {"sent": 3}
    edited = e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == first["response"]["ts"])[-1]
    assert "3 sent, 0 failed, 0 unknown (of 3)" in edited["params"]["text"]
    assert "updated after the provider was checked" in edited["params"]["text"]
    progress = e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == first["params"]["thread_ts"])
    assert "sent 3 · failed 0 · unknown 0" in json.dumps(progress[-1]["params"], ensure_ascii=False)


def test_sends_found_on_a_later_page_get_their_real_status(make: Callable[..., E2E]) -> None:
    e2e = make()
    fake = e2e.providers
    fake.sociocs_list_limit = 1  # no documented paging: each answer holds one message at most
    fake.script("/message", [Fault(status=503, body="down")] * 2)
    e2e.command("send +16175551212 First", user_id="U1", channel_id="C1")
    e2e.command("send +16175551213 Second", user_id="U1", channel_id="C1")
    e2e.wait(lambda: e2e.rt.store.counts_by_status().get("unknown") == 2, 5, "two unknown sends")
    two_days_ago = time.time() - 2 * 86400
    with e2e.rt.store.write() as conn:  # the first attempt was two days ago
        conn.execute("UPDATE messages SET created_at = ?, updated_at = ? WHERE id = 1", (two_days_ago, two_days_ago))
    old = fake.sociocs_record("+16175551212", "First", at=two_days_ago + 5, status="delivered")
    new = fake.sociocs_record("+16175551213", "Second", status="failed")
    delivery = e2e.rt.ctx.delivery
    assert delivery.reconcile_once() == {1: "sent", 2: "sent"}
    first, second = e2e.rt.store.get(1), e2e.rt.store.get(2)
    assert (first.status, first.delivery, first.provider_message_id) == ("sent", "delivered", old)
    assert (second.status, second.delivery, second.provider_message_id) == ("sent", "failed", new)
    days = [r.query for r in fake.requests if r.method == "GET" and r.path == "/messages"]
    assert all(d["start_date"] == d["end_date"] and len(d["start_date"]) == 10 for d in days)
    assert len(days) <= 5  # bounded: only the days around each attempt
    mention = e2e.wait(lambda: [c for c in e2e.thread_replies() if "<@U1>" in c["params"]["text"]
                                and "Second" not in c["params"]["text"]], 5, "told of the failure")
    assert "was not delivered" in mention[-1]["params"]["text"]


def test_a_bird_404_for_its_own_message_id_is_no_proof(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.providers.script("/workspaces/", [Fault(status=502, body="bad gateway")])
    e2e.command("send --via bird +16175551212 Hi", user_id="U1", channel_id="C1")
    e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status == "unknown" and r.status_ts, 5, "unknown")
    with e2e.rt.store.write() as conn:  # as if Bird's id had been learned, and Bird now answers 404 for it
        conn.execute("UPDATE messages SET provider_message_id = 'gone-id' WHERE id = 1")
    delivery = e2e.rt.ctx.delivery
    assert delivery.reconcile_once(now=time.time() + 3600) == {1: "no lookup"}
    assert e2e.rt.store.get(1).status == "unknown"
    assert delivery.outbox.flush()
    said = slack_said(e2e)
    assert "bird answers 404" in said and "no such message" not in said


def test_nothing_tells_people_they_can_send_again() -> None:
    """The phrase that invited double sends stays out of the code and docs people read."""
    for folder in ("bot", "providers", "storage", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md"):
                assert "you can send it again" not in path.read_text().lower(), path
    assert "you can send it again" not in (ROOT / "README.md").read_text().lower()


@pytest.mark.parametrize(("bird_status", "status", "delivery"), [("rejected", "failed", None),
                                                                  ("delivery_failed", "sent", "failed")])
def test_bird_settles_on_its_own_word(make: Callable[..., E2E], bird_status: str, status: str,
                                      delivery: str | None) -> None:
    e2e = make()
    e2e.command("send --via bird +16175551212 Hi", user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status == "sent" and r.provider_message_id and r, 5, "sent")
    with e2e.rt.store.write() as conn:  # as if the answer had been lost after Bird gave the id
        conn.execute("UPDATE messages SET status = 'unknown', delivery = NULL WHERE id = 1")
    e2e.providers.set_bird_status(row.provider_message_id, bird_status, "Carrier said no")
    assert e2e.rt.ctx.delivery.reconcile_once() == {1: status}
    fresh = e2e.rt.store.get(1)
    assert (fresh.status, fresh.delivery) == (status, delivery)
    assert "Carrier said no" in (fresh.error or "")
