"""The dispatcher's metrics hook, one row at a time (no threads, no HTTP): lateness of a
scheduled send, provider call latency, 429s against pauses, final and missed statuses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.dispatch import Dispatcher
from bot.core.metrics import Metrics
from bot.core.senders import Senders
from providers.base import RateLimited
from storage.store import NewMessage, Store
from tests.core.test_metrics import value
from tests.core.test_outcome_policy import Scripted


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(str(tmp_path / "meter.db"))
    yield db
    db.close()


def metered(store: Store, provider: Scripted) -> tuple[Dispatcher, Metrics]:
    metrics = Metrics(senders=["sandbox"])
    worker = Dispatcher(store, Senders({"sandbox": provider}, "sandbox"), None, rates={"sandbox": 0})
    worker.meter.sink = metrics
    worker.on_final.append(worker.meter.final)
    return worker, metrics


def enqueue(store: Store, due: float, scheduled: bool) -> int:
    mid, _ = store.enqueue(NewMessage(idem_key=f"k-{time.time_ns()}", sender="sandbox", to_number="+16175551212",
                                      payload={"to": "+16175551212", "text": "Hi"}, due_at=due,
                                      scheduled=scheduled))
    return mid


def test_a_scheduled_send_picked_up_late_is_observed_with_its_lateness(store: Store) -> None:
    worker, metrics = metered(store, Scripted())
    enqueue(store, time.time() - 42, scheduled=True)
    enqueue(store, time.time() - 600, scheduled=False)  # an immediate send: no lateness
    [first, second], _ = store.claim_due(worker.owner, now=time.time())
    worker.process(first)
    worker.process(second)
    assert value(metrics, "smsbot_schedule_lateness_seconds_count", sender="sandbox") == 1.0
    assert 42 <= value(metrics, "smsbot_schedule_lateness_seconds_sum", sender="sandbox") < 60
    assert value(metrics, "smsbot_schedule_lateness_seconds_bucket", sender="sandbox", le="30.0") == 0.0
    assert value(metrics, "smsbot_schedule_lateness_seconds_bucket", sender="sandbox", le="60.0") == 1.0
    assert value(metrics, "smsbot_provider_call_seconds_count", sender="sandbox") == 2.0
    assert value(metrics, "smsbot_messages_total", sender="sandbox", status="sent") == 2.0


def test_each_429_counts_but_a_pause_only_when_the_sender_was_not_paused(store: Store) -> None:
    worker, metrics = metered(store, Scripted(RateLimited("slow down", retry_after=30.0)))
    mid = enqueue(store, time.time() - 1, scheduled=False)
    [row], _ = store.claim_due(worker.owner, now=time.time())
    worker.process(row)  # 429: paused for 30 s, retried later
    worker.limiter("sandbox").pause(10)  # another 429 while paused (e.g. a bulk batch): no new pause
    assert value(metrics, "smsbot_provider_rate_limited_total", sender="sandbox") == 2.0
    assert value(metrics, "smsbot_sender_pauses_total", sender="sandbox") == 1.0
    assert value(metrics, "smsbot_messages_total", sender="sandbox", status="sent") == 0.0
    assert store.get(mid).status == "pending"  # type: ignore[union-attr]


def test_rows_past_their_misfire_grace_count_as_missed(store: Store) -> None:
    worker, metrics = metered(store, Scripted())
    worker.misfire_grace = 60
    enqueue(store, time.time() - 3600, scheduled=True)
    assert worker.run_once() == 0
    assert value(metrics, "smsbot_messages_total", sender="sandbox", status="missed") == 1.0
    worker.stop(timeout=1)
