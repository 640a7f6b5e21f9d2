"""The dispatcher's outcome policy, one provider answer at a time (no threads, no Slack).

What each provider answer does to the stored row: sent, retried later (only when nothing
can have gone out), failed, or unknown (never retried blindly). `make mutate` leans on
these: the end-to-end tests cover the same rules but are too slow to run per mutant.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app.logs import RedactSecrets
from bot.core.dispatch import Dispatcher, backoff
from bot.core.senders import Senders
from providers.base import (
    NotSent,
    OutboundMessage,
    RateLimited,
    Rejected,
    SendResult,
    UnknownOutcome,
    redact,
)
from providers.sandbox import SandboxProvider
from storage.store import MessageRow, NewMessage, Store


class Scripted(SandboxProvider):
    """The sandbox answering with the scripted exceptions first, then accepting."""

    def __init__(self, *answers: Exception) -> None:
        super().__init__()
        self.answers = list(answers)
        self.calls = 0
        self.sent: list[OutboundMessage] = []
        self.also_redact = ["hunter2-topsecret"]

    def send(self, msg: OutboundMessage) -> SendResult:
        self.calls += 1
        self.sent.append(msg)
        if self.answers:
            raise self.answers.pop(0)
        return SendResult(provider_message_id=f"pm-{self.calls}", status="sent")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(str(tmp_path / "policy.db"))
    yield db
    db.close()


def dispatcher(store: Store, provider: Scripted, max_attempts: int = 3) -> tuple[Dispatcher, list[MessageRow]]:
    worker = Dispatcher(store, Senders({"sandbox": provider}, "sandbox"), None, max_attempts=max_attempts,
                        rates={"sandbox": 0})
    finals: list[MessageRow] = []
    worker.on_final.append(finals.append)
    return worker, finals


def queue(store: Store, sender: str = "sandbox") -> int:
    mid, _ = store.enqueue(NewMessage(idem_key=f"k-{time.time_ns()}", sender=sender, to_number="+16175551212",
                                      payload={"to": "+16175551212", "text": "Hi"}, due_at=time.time() - 1))
    return mid


def attempt(worker: Dispatcher, store: Store) -> MessageRow | None:
    """Claim the row whatever its due time (a retry's wait is not the point here), process it."""
    [row], _ = store.claim_due(worker.owner, now=time.time() + 10_000)
    return worker.process(row)


def test_accepted_is_sent_once_with_the_providers_id_and_reported(store: Store) -> None:
    provider = Scripted()
    worker, finals = dispatcher(store, provider)
    mid = queue(store)
    row = attempt(worker, store)
    assert row is not None and (row.status, row.provider_message_id, row.delivery) == ("sent", "pm-1", "sent")
    assert (row.attempts, row.lease_owner, row.error) == (1, None, None) and row.sent_at is not None
    assert [f.id for f in finals] == [mid] and provider.calls == 1


@pytest.mark.parametrize(("answer", "kind", "wait"), [
    (RateLimited("Too many requests", retry_after=7.0), "rate_limited", 7.0),
    (RateLimited("Too many requests"), "rate_limited", 5.0),  # no Retry-After: 5 s
    (NotSent("Connection refused"), "not_sent", backoff(1)),
])
def test_nothing_went_out_so_it_is_retried_after_the_wait(store: Store, answer: Exception, kind: str,
                                                          wait: float) -> None:
    worker, finals = dispatcher(store, Scripted(answer))
    mid = queue(store)
    before = time.time()
    row = attempt(worker, store)
    after = time.time()
    assert row is not None and row.id == mid
    assert (row.status, row.error, row.error_kind, row.lease_owner) == ("pending", answer.args[0], kind, None)
    assert before + wait <= row.due_at <= after + wait
    assert finals == []  # not final: nobody is told yet
    assert worker.limiter("sandbox").paused() == isinstance(answer, RateLimited)


def test_retries_stop_at_max_attempts_and_say_so(store: Store) -> None:
    provider = Scripted(*(NotSent("Connection refused") for _ in range(3)))
    worker, finals = dispatcher(store, provider, max_attempts=3)
    mid = queue(store)
    statuses = [getattr(attempt(worker, store), "status", None) for _ in range(3)]
    assert statuses == ["pending", "pending", "failed"]
    row = store.get(mid)
    assert row is not None and row.error == "Connection refused Gave up after 3 attempts."
    assert (row.error_kind, row.attempts, provider.calls) == ("not_sent", 3, 3)
    assert [f.status for f in finals] == ["failed"]


@pytest.mark.parametrize(("answer", "status", "error", "kind"), [
    (UnknownOutcome("Timed out after sending"), "unknown", "Timed out after sending", "unknown"),
    (Rejected("Invalid number"), "failed", "Invalid number", "rejected"),
    (RuntimeError("boom"), "unknown", "Unexpected error (RuntimeError).", "unknown"),
])
def test_maybe_sent_or_refused_is_final_at_once_never_retried(store: Store, answer: Exception, status: str,
                                                              error: str, kind: str) -> None:
    provider = Scripted(answer)
    worker, finals = dispatcher(store, provider, max_attempts=5)
    mid = queue(store)
    row = attempt(worker, store)
    assert row is not None and (row.status, row.error, row.error_kind) == (status, error, kind)
    assert store.claim_due(worker.owner, now=time.time() + 10_000) == ([], [])  # nothing to retry
    assert [f.id for f in finals] == [mid] and provider.calls == 1


def test_provider_errors_are_scrubbed_before_they_are_stored(store: Store) -> None:
    worker, _ = dispatcher(store, Scripted(Rejected("bad key hunter2-topsecret")))
    queue(store)
    row = attempt(worker, store)
    assert row is not None and row.error == "bad key ***"


def test_a_sender_no_longer_configured_fails_without_a_call(store: Store) -> None:
    provider = Scripted()
    worker, finals = dispatcher(store, provider)
    mid = queue(store, sender="bird")
    row = attempt(worker, store)
    assert row is not None and (row.status, row.error_kind) == ("failed", "config")
    assert row.error == "Sender 'bird' is no longer configured."
    assert [f.id for f in finals] == [mid] and provider.calls == 0


def test_a_row_canceled_after_the_claim_is_not_sent(store: Store) -> None:
    provider = Scripted()
    worker, finals = dispatcher(store, provider)
    mid = queue(store)
    [row], _ = store.claim_due(worker.owner)
    with store.write() as conn:  # what a cancel that wins the race leaves
        conn.execute("UPDATE messages SET status = 'canceled' WHERE id = ?", (mid,))
    assert worker.process(row) is None
    assert (provider.calls, finals) == (0, [])
    assert store.get(mid).status == "canceled"  # type: ignore[union-attr]


def test_the_call_carries_the_stored_message_and_our_reference(store: Store) -> None:
    provider = Scripted()
    worker, _ = dispatcher(store, provider)
    mid = queue(store)
    attempt(worker, store)
    [msg] = provider.sent
    assert (msg.to, msg.text, msg.reference) == ("+16175551212", "Hi", f"smsbot-{mid}")


def test_a_long_429_pause_hands_the_row_back_instead_of_holding_a_thread(store: Store) -> None:
    provider = Scripted()
    worker, finals = dispatcher(store, provider)
    mid = queue(store)
    worker.limiter("sandbox").pause(2.5)  # longer than the 2 s a worker thread may wait
    started = time.monotonic()
    assert attempt(worker, store) is None
    assert time.monotonic() - started < 2.0  # handed back at once, not after the pause
    got = store.get(mid)
    assert got is not None and (got.status, got.lease_owner, got.attempts) == ("pending", None, 0)
    assert (provider.calls, finals) == (0, [])


class Announcer:
    def __init__(self) -> None:
        self.announced: list[int] = []

    def announce(self, row: MessageRow) -> MessageRow:
        self.announced.append(row.id)
        return row.model_copy(update={"thread_ts": "1.1"})

    def report_outcome(self, row: MessageRow) -> None:
        pass


def test_an_unannounced_single_send_is_announced_before_the_call(store: Store) -> None:
    provider = Scripted()
    notifier = Announcer()
    worker = Dispatcher(store, Senders({"sandbox": provider}, "sandbox"), notifier,  # type: ignore[arg-type]
                        rates={"sandbox": 0})
    first = queue(store)
    attempt(worker, store)
    second = queue(store)
    with store.write() as conn:  # announced already (a thread exists): not again
        conn.execute("UPDATE messages SET thread_ts = '9.9' WHERE id = ?", (second,))
    attempt(worker, store)
    assert notifier.announced == [first] and provider.calls == 2


def test_an_unexpected_error_is_logged_by_id_and_type_only(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    worker, _ = dispatcher(store, Scripted(RuntimeError("hunter2-topsecret inside")))
    mid = queue(store)
    with caplog.at_level(logging.ERROR, logger="smsbot"):
        attempt(worker, store)
    assert [r.getMessage() for r in caplog.records] == [f"unexpected error sending message {mid}: RuntimeError"]


def test_backoff_doubles_from_one_second_and_stops_at_five_minutes() -> None:
    assert [backoff(n) for n in (-1, 0, 1, 2, 3, 8, 9, 50)] == [1.0, 1.0, 2.0, 4.0, 8.0, 256.0, 300.0, 300.0]
    assert all(type(backoff(n)) is float for n in (0, 9))


# -- redaction: the rule every log line, stored error and Slack text goes through


@pytest.mark.parametrize(("text", "secrets", "shown"), [
    ("key abc123secret in text", ["abc123secret"], "key *** in text"),
    ("abcdef and abc", ["abc", "abcdef"], "*** and ***"),  # the longest first: no "***def"
    ("abcdef", ["cde", "abcdef"], "***"),  # by length, not by name: no "ab***f"
    ("user:s3cr3t-half", ["user:s3cr3t-half"], "***"),
    ("only s3cr3t-half leaked", ["user:s3cr3t-half"], "only *** leaked"),  # the secret half alone
    ("only short leaked", ["user:short"], "only short leaked"),  # under 6 characters: too common to scrub
    ("only sixsix leaked", ["user:sixsix"], "only *** leaked"),
    ("user stays", ["user:s3cr3t-half"], "user stays"),
    ("nothing here", [None, ""], "nothing here"),
])
def test_redact(text: str, secrets: list[str | None], shown: str) -> None:
    assert redact(text, secrets) == shown


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("token xoxb-secret-123 refused")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("smsbot", logging.ERROR, __file__, 1, msg, args or None, info)


def test_log_records_lose_their_secrets_and_keep_everything_else() -> None:
    keep = RedactSecrets(["xoxb-secret-123", ""])
    leaky = record("sent with %s to %s", "xoxb-secret-123", "+1617")
    assert keep.filter(leaky) is True
    assert (leaky.getMessage(), leaky.args) == ("sent with *** to +1617", None)
    clean = record("sent to %s", "+1617")
    assert keep.filter(clean) is True
    assert (clean.msg, clean.args) == ("sent to %s", ("+1617",))  # untouched: lazy formatting kept

    failed = record("send failed", exc=True)
    assert keep.filter(failed) is True
    assert failed.exc_text is not None and "ValueError: token *** refused" in failed.exc_text
    assert "xoxb-secret-123" not in logging.Formatter().format(failed)


def test_a_traceback_already_formatted_is_redacted_too() -> None:
    keep = RedactSecrets(["xoxb-secret-123"])
    failed = record("send failed")
    failed.exc_text = "Traceback: xoxb-secret-123"
    assert keep.filter(failed) is True and failed.exc_text == "Traceback: ***"


def test_no_secrets_configured_changes_nothing() -> None:
    failed = record("send failed %s", "x", exc=True)
    assert RedactSecrets([None, ""]).filter(failed) is True  # type: ignore[list-item]
    assert (failed.msg, failed.args, failed.exc_text) == ("send failed %s", ("x",), None)
