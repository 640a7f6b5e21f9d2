"""The bulk engine without Slack: drafts, confirmation, controls, Sociocs batches at most once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bot.core.bulk.engine import BulkEngine
from bot.core.input.recipients import parse_pasted
from bot.core.senders import Senders
from bot.core.sending import UserError
from providers.sandbox import SandboxProvider
from providers.sociocs import SociocsProvider
from storage.store import Store
from tests.conftest import CHANNEL_KEYS, SOCIOCS_KEY
from tests.fakes.providers import FakeProviders, Fault


@pytest.fixture
def engine(tmp_path: Path, fake_providers: FakeProviders) -> BulkEngine:
    client = httpx.Client(timeout=httpx.Timeout(1.0, connect=1.0))
    twlo = SociocsProvider("twlo", SOCIOCS_KEY, CHANNEL_KEYS["twlo"], base_url=fake_providers.url, client=client)
    senders = Senders({"twlo": twlo, "sandbox": SandboxProvider()}, "twlo")
    return BulkEngine(Store(str(tmp_path / "b.db")), senders, batch_size=2)


NUMBERS = "+16175551212, Ann\n+16175551213, Bo\n+16175551214\n"


def draft(engine: BulkEngine, text: str = "Hello", pasted: str = NUMBERS, **kw: object) -> int:
    plan = engine.draft(parse_pasted(pasted), text, "twlo", allow_duplicates=False, when=None,
                        idem_key=f"k{time.time_ns()}", **kw)
    return plan.job_id


def bulk_calls(fake: FakeProviders) -> list:
    return [r for r in fake.requests if r.path == "/messages/bulk"]


def test_draft_rows_are_invisible_to_the_worker_until_confirmed(engine: BulkEngine) -> None:
    job_id = draft(engine, text="Hi {name}")
    assert engine.jobs.get(job_id).mode == "per_recipient"  # personalised: one row each
    claimed, _ = engine.store.claim_due("w", limit=10)
    assert claimed == [] and engine.store.counts_by_status() == {"draft": 3}
    assert engine.confirm(job_id, post=False) is not None
    assert engine.store.counts_by_status(job_id) == {"pending": 3}
    assert engine.confirm(job_id, post=False) is None  # a second click starts nothing
    rows, _ = engine.store.claim_due("w", limit=10)
    assert sorted((r.payload["to"], r.payload["text"], r.priority) for r in rows) == [
        ("+16175551212", "Hi Ann", 1), ("+16175551213", "Hi Bo", 1), ("+16175551214", "Hi", 1)]


def test_same_submission_twice_makes_one_draft(engine: BulkEngine) -> None:
    first = engine.draft(parse_pasted(NUMBERS), "Hello", "twlo", allow_duplicates=False, when=None, idem_key="v1")
    again = engine.draft(parse_pasted(NUMBERS), "Hello", "twlo", allow_duplicates=False, when=None, idem_key="v1")
    assert first == again and engine.store.counts_by_status() == {"draft": 3}


def test_empty_render_is_an_invalid_row_and_bad_sender_a_field_error(engine: BulkEngine) -> None:
    plan = engine.draft(parse_pasted(NUMBERS), "{name}", "twlo", allow_duplicates=False, when=None, idem_key="e")
    assert plan.valid == 2 and plan.problems[-1].line == 3 and "empty" in plan.problems[-1].reason
    with pytest.raises(UserError) as err:
        engine.draft(parse_pasted(NUMBERS), "Hi", "bird", allow_duplicates=False, when=None, idem_key="f")
    assert err.value.field == "sender"


def test_batches_go_out_once_each_with_job_ids(engine: BulkEngine, fake_providers: FakeProviders) -> None:
    job_id = draft(engine)
    engine.confirm(job_id, post=False)
    while engine.runner.run_batch(engine.jobs.get(job_id)):
        pass
    assert [len(r.json["recipients"]) for r in bulk_calls(fake_providers)] == [2, 1]
    assert engine.store.counts_by_status(job_id) == {"sent": 3}
    assert engine.jobs.get(job_id).provider_job_ids == list(fake_providers.sociocs_jobs._items)


def test_a_batch_whose_answer_is_lost_is_unknown_and_never_resent(engine: BulkEngine,
                                                                  fake_providers: FakeProviders) -> None:
    fake_providers.script("/messages/bulk", [Fault(delay=1.5), Fault(status=503, body="down")])
    job_id = draft(engine)
    engine.confirm(job_id, post=False)
    while engine.runner.run_batch(engine.jobs.get(job_id)):
        pass
    assert engine.store.counts_by_status(job_id) == {"unknown": 3}
    assert len(bulk_calls(fake_providers)) == 2
    report = engine.failure_csv(job_id).decode()
    assert "may or may not have been sent" in report and report.count("unknown") == 3


def test_a_refused_batch_fails_with_the_providers_reason(engine: BulkEngine, fake_providers: FakeProviders) -> None:
    fake_providers.script("/messages/bulk", [Fault(status=400, body={"status": "error",
                                                                     "errors": [{"msg": "Bad recipients."}]})])
    job_id = draft(engine)
    engine.confirm(job_id, post=False)
    while engine.runner.run_batch(engine.jobs.get(job_id)):
        pass
    assert engine.store.counts_by_status(job_id) == {"failed": 2, "sent": 1}
    assert "Bad recipients." in engine.failure_csv(job_id).decode()


def test_cancel_takes_claimed_rows_too_so_the_worker_cannot_send_them(engine: BulkEngine) -> None:
    job_id = draft(engine, text="Hi {name}")
    engine.confirm(job_id, post=False)
    claimed, _ = engine.store.claim_due("w", limit=1)
    assert "3 recipients will not get it" in engine.cancel(job_id)
    assert engine.store.mark_sending(claimed[0].id, "w") is False
    assert engine.store.counts_by_status(job_id) == {"canceled": 3}
    assert engine.tracker.tick() >= 0 and engine.jobs.get(job_id).status == "done"
    assert "already done" in engine.cancel(job_id)


def test_pause_and_resume_move_rows_out_of_and_back_into_the_queue(engine: BulkEngine) -> None:
    job_id = draft(engine)  # provider_bulk: rows wait as `queued`
    engine.confirm(job_id, post=False)
    assert "3 recipients wait" in engine.pause(job_id)
    assert engine.runner.run_batch(engine.jobs.get(job_id)) is False
    assert engine.store.counts_by_status(job_id) == {"paused": 3}
    engine.resume(job_id)
    assert engine.store.counts_by_status(job_id) == {"queued": 3}


def test_the_job_finishes_once_however_many_trackers_look(engine: BulkEngine, tmp_path: Path) -> None:
    job_id = draft(engine)
    engine.confirm(job_id, post=False)
    while engine.runner.run_batch(engine.jobs.get(job_id)):
        pass
    other = BulkEngine(Store(str(tmp_path / "b.db")), engine.senders)
    finished: list[int] = []
    for e in (engine, other):
        e.finish = lambda job, e=e: finished.append(job.id)  # type: ignore[method-assign]
        e.tracker.tick()
    assert finished == [job_id]


def test_stale_drafts_are_discarded(engine: BulkEngine) -> None:
    job_id = draft(engine)
    assert engine.jobs.discard_stale_drafts(older_than=-1) == 1
    assert engine.jobs.get(job_id).status == "discarded" and engine.store.counts_by_status() == {}
