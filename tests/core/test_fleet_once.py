"""Several processes on one store: each visible Slack message is posted once, and the
once-per-fleet work (reconciler, dirty redraws, bulk tracker) runs in one process at a time.

Two runtimes (`build_runtime` twice, each with its dispatcher, as two `smsbot worker`s would
be) share one SQLite file and the fake Slack. Before the fix each announced every scheduled
send (issue 12 measured 184 visible messages for 100 sends).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.core.fleet import Leadership
from bot.slack.once import EVENT_TYPE, PostOnce, find_post
from storage import open_store
from storage.store import NewMessage, Store
from tests.conftest import E2E
from tests.fakes.slack import FakeSlack

N = 12


def schedule(store: Store, n: int, due_in: float, channel: str = "C1") -> list[int]:
    ids = []
    for i in range(n):
        to = f"+1617555{1000 + i:04d}"
        mid, _ = store.enqueue(NewMessage(
            idem_key=f"fleet-{i}", sender="twlo", to_number=to, payload={"to": to, "text": f"hello {i}"},
            summary=f"hello {i}", scheduled=True, due_at=time.time() + due_in, created_by="U1",
            channel_id=channel, needs_announce=True,
        ))
        ids.append(mid)
    return ids


def tagged(slack: FakeSlack, channel: str, key: str) -> list[dict[str, Any]]:
    """Messages Slack holds in `channel` (threads included) tagged with `key`."""
    return [m for m in slack.messages(channel)
            if (m.get("metadata") or {}).get("event_payload", {}).get("key") == key]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_announce_each_scheduled_send_once(e2e_factory: Callable[..., E2E]) -> None:
    one, two = e2e_factory(), e2e_factory()  # one store file, two dispatchers
    one.slack.latency = 0.03  # a real Slack's round trip: both workers see each row unannounced
    ids = schedule(one.rt.store, N, due_in=3)
    wait_for(lambda: all(one.rt.store.get(i).status == "sent" for i in ids), what="every send sent")
    one.settle()
    two.settle()
    slack = one.slack
    # What people see: one visible message per send in the channel, not one per worker.
    tops = [m for m in slack.messages("C1") if not m.get("parent_user_id")]
    for i in range(N):
        assert len([m for m in tops if m["text"].endswith(f"hello {i}")]) == 1, f"send {i} shown more than once"
    assert len(tops) == N
    for mid in ids:
        row = one.rt.store.get(mid)
        assert row is not None and row.thread_ts and row.status_ts
        # The visible message once, carrying its row id for a later lookup; one status line.
        [announce] = tagged(slack, "C1", f"announce:{mid}")
        assert announce["metadata"] == {"event_type": EVENT_TYPE,
                                        "event_payload": {"key": f"announce:{mid}", "message_id": mid}}
        assert announce["ts"] == row.thread_ts
        [line] = tagged(slack, "C1", f"status:{mid}")
        assert line["ts"] == row.status_ts and line["thread_ts"] == row.thread_ts


def test_a_crash_between_posting_and_recording_does_not_post_twice(
        e2e_factory: Callable[..., E2E], monkeypatch: pytest.MonkeyPatch) -> None:
    # No dispatcher: its own pass would announce the row first (and take the one crash) when
    # a loaded machine runs it between schedule() and the call below.
    e2e = e2e_factory(with_worker=False)
    store = e2e.rt.store
    [mid] = schedule(store, 1, due_in=3600)
    real = Store.set_thread
    crashed: list[int] = []

    def dies_once(self: Store, message_id: int, *args: Any, **kw: Any) -> None:
        if not crashed:
            crashed.append(message_id)
            raise RuntimeError("the process died before recording the post")
        real(self, message_id, *args, **kw)

    monkeypatch.setattr(Store, "set_thread", dies_once)
    with pytest.raises(RuntimeError):
        e2e.rt.notifier.announce(store.get(mid))  # posted, never recorded
    assert store.get(mid).thread_ts is None and len(tagged(e2e.slack, "C1", f"announce:{mid}")) == 1
    # Another process (its own Notifier) announces it: it finds the tagged post, posts nothing.
    other = open_store(e2e.rt.settings.database_url)
    try:
        from bot.slack.announcer import Notifier

        again = Notifier(e2e.rt.client, other, e2e.rt.senders.label).announce(other.get(mid))
    finally:
        other.close()
    [post] = tagged(e2e.slack, "C1", f"announce:{mid}")
    assert again.thread_ts == post["ts"] and again.thread_channel == "C1"
    history = e2e.slack.calls_to("conversations.history")
    assert history and history[-1]["params"]["include_all_metadata"] in ("1", "true", True)


def test_a_post_whose_first_attempt_failed_in_slack_is_looked_up_then_posted(
        e2e_factory: Callable[..., E2E]) -> None:
    # The lookup finds nothing (the first attempt never reached Slack): it posts, once.
    e2e = e2e_factory()
    store = e2e.rt.store
    assert store.first_time("post-try:test:1")
    seen: list[str] = []
    once = PostOnce(e2e.rt.client, store)
    data = once.post("test:1", "C1",
                     lambda meta: e2e.rt.notifier.post("C1", "a message", metadata=meta),
                     lambda channel, ts: seen.append(ts), lambda: bool(seen))
    assert data and seen == [data["ts"]]
    assert [m["ts"] for m in tagged(e2e.slack, "C1", "test:1")] == seen
    assert find_post(e2e.rt.client, "C1", "test:1") == seen[0]


def test_only_the_leader_reconciles_and_another_takes_over(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    stores = [open_store(url), open_store(url)]
    a, b = (Leadership(s, ttl=1.0) for s in stores)
    gained: list[str] = []
    b.on_gain.append(lambda: gained.append("b"))
    try:
        a.start()
        b.start()
        assert a.leads() and not b.leads()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # through several renewals: never both
            assert not (a.leads() and b.leads())
            time.sleep(0.05)
        assert a.leads() and not b.leads() and not gained
        # The leader dies (stops renewing, never resigns): b leads within ttl + a renewal step.
        a._stop.set()
        a._thread.join(2) if a._thread else None
        wait_for(b.leads, timeout=2.5, what="b taking over")
        assert gained == ["b"]
        assert stores[0].leader("reconciler") == b.owner
    finally:
        b.stop()
        for s in stores:
            s.close()


def test_the_reconciler_loop_runs_only_where_the_lease_is(e2e_factory: Callable[..., E2E]) -> None:
    one = e2e_factory(sms_reconcile_interval=0.05)
    two = e2e_factory(sms_reconcile_interval=0.05)
    passes: dict[str, int] = {"one": 0, "two": 0}
    for name, e2e in (("one", one), ("two", two)):
        engine = e2e.rt.delivery
        assert engine is not None

        def counted(now: float | None = None, name: str = name) -> dict[int, str]:
            passes[name] += 1
            return {}

        engine.reconcile_once = counted  # type: ignore[method-assign]
    time.sleep(0.5)
    assert one.rt.lead is not None and two.rt.lead is not None
    assert one.rt.lead.leads() and not two.rt.lead.leads()
    assert passes["one"] > 0 and passes["two"] == 0
    # The leader stops gracefully: it resigns and the other takes over at its next renewal.
    one.rt.lead.stop()
    wait_for(two.rt.lead.leads, timeout=5, what="takeover")
    before = passes["two"]
    wait_for(lambda: passes["two"] > before, timeout=2, what="the new leader reconciling")


def test_a_bulk_summary_two_processes_finish_is_posted_once(e2e_factory: Callable[..., E2E]) -> None:
    # Two processes holding the same (stale) job both post its summary: one post in the thread.
    from bot.core.bulk.models import BulkSummary, Progress
    from bot.slack.announcer import Notifier
    from bot.slack.bulk_view import SlackBulkView
    from storage.bulk import BulkStore, DraftRow, NewBulkJob

    e2e = e2e_factory()
    jobs = BulkStore(e2e.rt.store)
    job_id, _ = jobs.create_draft(NewBulkJob(idem_key="bulk-once", sender="twlo", text="hi", total=1,
                                             created_by="U1", channel_id="C1"),
                                  [DraftRow("+16175551212", None, '{"to": "+16175551212", "text": "hi"}', "hi")])
    parent = e2e.rt.notifier.post("C1", "bulk progress")
    assert parent is not None
    jobs.begin_confirm(job_id)
    jobs.activate(job_id, "C1", str(parent["ts"]))
    job = jobs.get(job_id)
    assert job is not None
    summary = BulkSummary(job_id=job_id, progress=Progress(total=1, sent=1), label="Twilio SMS", seconds=1.0,
                          canceled=False)
    other = open_store(e2e.rt.settings.database_url)
    try:
        views = [SlackBulkView(e2e.rt.notifier),
                 SlackBulkView(Notifier(e2e.rt.client, other, e2e.rt.senders.label))]
        answers = [view.post_summary(job, summary) for view in views]
    finally:
        other.close()
    replies = [m for m in e2e.slack.messages("C1", thread_ts=str(parent["ts"])) if m["ts"] != parent["ts"]]
    assert len(replies) == 1, "the summary was posted more than once"
    [posted] = tagged(e2e.slack, "C1", f"bulk-summary:{job_id}:")
    assert answers[0] == posted["ts"] and answers[1] is None
    assert posted["thread_ts"] == parent["ts"]
    fresh = jobs.get(job_id)
    assert fresh is not None and fresh.payload.get("summary_ts") == posted["ts"]
