"""One outcome policy (bot.core.outcomes) for the dispatcher and the Sociocs batch runner."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bot.core.bulk.engine import BulkEngine
from bot.core.input.recipients import parse_pasted
from bot.core.outcomes import Outcome, backoff, outcome_of
from bot.core.senders import Senders
from providers.base import (
    BulkRecipient,
    BulkResult,
    NotSent,
    OutboundMessage,
    RateLimited,
    Rejected,
    UnknownOutcome,
)
from providers.sandbox import SandboxProvider
from storage.store import Store


class Plain:
    def scrub(self, text: str) -> str:
        return text.replace("sk_live", "[redacted]")


@pytest.mark.parametrize(("exc", "attempt", "expected"), [
    (RateLimited("Slow down", retry_after=7.0), 1, Outcome("retry", "Slow down", "rate_limited", 7.0, 7.0)),
    (RateLimited("Slow down"), 1, Outcome("retry", "Slow down", "rate_limited", 5.0, 5.0)),
    (RateLimited("Slow down"), 5, Outcome("failed", "Slow down Gave up after 5 attempts.", "rate_limited",
                                          pause=5.0)),
    (NotSent("Refused sk_live"), 3, Outcome("retry", "Refused [redacted]", "not_sent", backoff(3))),
    (NotSent("Refused"), 5, Outcome("failed", "Refused Gave up after 5 attempts.", "not_sent")),
    (UnknownOutcome("Timed out"), 1, Outcome("unknown", "Timed out", "unknown")),
    (Rejected("Bad number"), 1, Outcome("failed", "Bad number", "rejected")),
    (RuntimeError("boom sk_live"), 1, Outcome("unknown", "Unexpected error (RuntimeError).", "unknown")),
])
def test_each_exception_maps_to_one_outcome(exc: Exception, attempt: int, expected: Outcome) -> None:
    assert outcome_of(exc, Plain(), attempt, max_attempts=5) == expected


class FlakyBulk(SandboxProvider):
    """A Sociocs-like sender whose bulk call never gets through."""

    name = "twlo"
    label = "Flaky bulk"

    def __init__(self, exc: Exception) -> None:
        super().__init__()
        self.exc = exc
        self.calls = 0

    def send_bulk(self, recipients: list[BulkRecipient], msg: OutboundMessage,
                  duplicates_allowed: bool = False) -> BulkResult:
        self.calls += 1
        raise self.exc


def run_out(exc: Exception, tmp_path: Path, max_attempts: int = 2) -> tuple[BulkEngine, int, Any]:
    provider = FlakyBulk(exc)
    engine = BulkEngine(Store(str(tmp_path / "o.db")), Senders({"twlo": provider}, "twlo"),
                        max_attempts=max_attempts)
    plan = engine.draft(parse_pasted("+16175551212\n+16175551213\n"), "Hello", "twlo", allow_duplicates=False,
                        when=None, idem_key="o1")
    engine.confirm(plan.job_id, post=False)
    for _ in range(max_attempts):
        engine.store.conn.execute("UPDATE messages SET due_at = ? WHERE status = 'queued'", (time.time() - 1,))
        engine.runner.own_limiter("twlo").paused_until = 0.0
        engine.runner.run_batch(engine.jobs.get(plan.job_id))  # type: ignore[arg-type]
    return engine, plan.job_id, provider


def test_a_batch_that_never_gets_through_gives_up_in_the_dispatchers_words(tmp_path: Path) -> None:
    engine, job_id, provider = run_out(NotSent("Connection refused"), tmp_path)
    assert provider.calls == 2 and engine.store.counts_by_status(job_id) == {"failed": 2}
    assert "Connection refused Gave up after 2 attempts." in engine.failure_csv(job_id).decode()


def test_an_unexpected_batch_error_is_unknown_and_never_retried(tmp_path: Path) -> None:
    engine, job_id, provider = run_out(RuntimeError("boom"), tmp_path)
    assert provider.calls == 1 and engine.store.counts_by_status(job_id) == {"unknown": 2}
    assert "Unexpected error (RuntimeError)." in engine.failure_csv(job_id).decode()


def test_a_rate_limited_batch_pauses_its_sender(tmp_path: Path) -> None:
    engine, job_id, _ = run_out(RateLimited("Slow down", retry_after=30.0), tmp_path, max_attempts=1)
    assert engine.store.counts_by_status(job_id) == {"failed": 2}
    assert engine.runner.own_limiter("twlo").paused()
