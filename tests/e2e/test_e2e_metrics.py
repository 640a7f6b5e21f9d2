"""End to end: drive sends, a bulk job and webhooks through the real app over HTTP, then scrape
/metrics and check that each counter moved by exactly what happened, and nothing else did."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.core.sending import SendRequest
from tests.conftest import E2E
from tests.e2e.test_e2e_bulk import confirm, engine, form_values, open_form, submit_form, summary_reply
from tests.e2e.test_e2e_ops import moved, scrape
from tests.e2e.test_e2e_send import outcome_in_thread
from tests.e2e.test_e2e_webhooks import SECRETS, sent_row, sociocs_post, sociocs_status
from tests.fakes.providers import Fault

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def make(e2e_factory: Callable[..., E2E]) -> Callable[..., E2E]:
    return lambda **extra: e2e_factory(**SECRETS, **extra)


def counters(before: Samples, after: Samples, *names: str) -> dict[tuple[str, str], float]:
    """What moved among these counters, keyed (name, "label=value,...") for readable failures."""
    out: dict[tuple[str, str], float] = {}
    for name in names:
        for (sample, labels), delta in moved(before, after, name).items():
            if sample.endswith("_total"):
                out[(sample, ",".join(f"{k}={v}" for k, v in labels))] = delta
    return out


def call_count(samples: Samples, sender: str) -> float:
    return samples[("smsbot_provider_call_seconds_count", (("sender", sender),))]


def test_sends_count_final_statuses_latency_429s_pauses_and_slack_retries(make: Callable[..., E2E]) -> None:
    e2e = make()
    before = scrape(e2e.url)
    e2e.command("send +16175551212 First")
    outcome_in_thread(e2e, "Accepted by Twilio SMS")
    # A 429, then the retry goes through: one 429, one pause, two calls, one sent.
    e2e.providers.script("/message", [Fault(status=429, headers={"Retry-After": "1"},
                                            body={"status": "error", "errors": [{"msg": "Too many requests"}]})])
    e2e.command("send +16175551213 Second")
    e2e.wait(lambda: e2e.rt.store.get(2) and e2e.rt.store.get(2).status == "sent", 8, "the retried send")
    e2e.providers.script("/message", [Fault(status=400, body={"status": "error", "errors": [{"msg": "Bad number"}]})])
    e2e.command("send +16175551214 Third")
    outcome_in_thread(e2e, "Bad number")
    # Slack answers one announcement with a 429: the client's retry handler tries again.
    e2e.slack.fail_next("chat.postMessage", status=429, retry_after=1)
    e2e.command("send --via bird +16175551215 Fourth")
    outcome_in_thread(e2e, "Accepted by Bird", timeout=8)
    e2e.settle()
    after = scrape(e2e.url)
    assert counters(before, after, "smsbot_messages", "smsbot_provider_rate_limited", "smsbot_sender_pauses",
                    "smsbot_slack_api") == {
        ("smsbot_messages_total", "sender=twlo,status=sent"): 2.0,
        ("smsbot_messages_total", "sender=twlo,status=failed"): 1.0,
        ("smsbot_messages_total", "sender=bird,status=sent"): 1.0,
        ("smsbot_provider_rate_limited_total", "sender=twlo"): 1.0,
        ("smsbot_sender_pauses_total", "sender=twlo"): 1.0,
        ("smsbot_slack_api_retries_total", "method=chat.postMessage"): 1.0,
    }
    assert call_count(after, "twlo") - call_count(before, "twlo") == 4.0  # 1 + (429, retry) + 1
    assert call_count(after, "bird") - call_count(before, "bird") == 1.0
    assert after[("smsbot_outbox_messages", (("status", "sent"),))] == 3.0
    assert after[("smsbot_outbox_messages", (("status", "failed"),))] == 1.0


def test_a_slack_call_that_fails_counts_as_an_error_of_its_method(make: Callable[..., E2E]) -> None:
    e2e = make()
    before = scrape(e2e.url)
    e2e.slack.fail_next("chat.postMessage", error="channel_not_found", status=200)
    e2e.command("send +16175551212 Hello", channel_id="C404")
    e2e.wait(lambda: e2e.rt.store.get(1) and e2e.rt.store.get(1).status == "sent", 8, "the send")
    e2e.settle()
    after = scrape(e2e.url)
    errors = counters(before, after, "smsbot_slack_api_errors")
    assert errors == {("smsbot_slack_api_errors_total", "method=chat.postMessage"): 1.0}


def test_a_bulk_job_counts_its_rows_and_its_states(make: Callable[..., E2E]) -> None:
    e2e = make()
    engine(e2e)
    before = scrape(e2e.url)
    form = open_form(e2e)  # Sociocs plain text: one batch call for both recipients
    confirm(e2e, submit_form(e2e, form, form_values(sender="twlo", text="Hello",
                                                    pasted="+16175551212\n+16175551213"))["view"])
    assert "2 sent, 0 failed, 0 unknown" in summary_reply(e2e)["params"]["text"]
    done = ("smsbot_bulk_job_transitions_total", (("state", "done"),))
    # The summary is posted just before the job is marked done and counted.
    after = e2e.wait(lambda: (s := scrape(e2e.url))[done] > before[done] and s, 5, "the job counted done")
    assert counters(before, after, "smsbot_messages", "smsbot_bulk_job_transitions") == {
        ("smsbot_messages_total", "sender=twlo,status=sent"): 2.0,
        ("smsbot_bulk_job_transitions_total", "state=running"): 1.0,
        ("smsbot_bulk_job_transitions_total", "state=done"): 1.0,
    }
    assert after[("smsbot_bulk_jobs", (("status", "done"),))] == 1.0
    assert after[("smsbot_bulk_jobs", (("status", "running"),))] == 0.0


def test_an_exact_webhook_replay_counts_as_duplicate(make: Callable[..., E2E]) -> None:
    e2e = make()
    pid = sent_row(e2e).provider_message_id
    before = scrape(e2e.url)
    event: dict[str, Any] = sociocs_status(pid, "delivered")
    first, again = sociocs_post(e2e, event), sociocs_post(e2e, event)
    assert first.json()["result"] == "applied" and again.json()["result"] == "duplicate or stale"
    assert sociocs_post(e2e, sociocs_status("never-ours", "delivered")).json()["result"] == "ignored"
    after = scrape(e2e.url)
    assert counters(before, after, "smsbot_webhook_events") == {
        ("smsbot_webhook_events_total", "provider=sociocs,result=accepted"): 1.0,
        ("smsbot_webhook_events_total", "provider=sociocs,result=duplicate"): 1.0,
        ("smsbot_webhook_events_total", "provider=sociocs,result=ignored"): 1.0,
    }


def test_a_worker_process_serves_its_own_metrics_on_a_free_port_and_logs_json(
        e2e_factory: Callable[..., E2E], tmp_path: Path) -> None:
    from tests.e2e.test_graceful_stop import Proc

    e2e = e2e_factory(with_worker=False)  # the process under test sends; the app only serves Slack
    proc = Proc("worker", e2e, tmp_path, metrics_port=0, log_format="json")
    try:
        def logged_port() -> int | None:
            for line in proc.log().splitlines():
                record = json.loads(line)  # every line is one JSON object
                if found := re.search(r"metrics on http://[\d.]+:(\d+)/metrics", record["message"]):
                    return int(found.group(1))
            return None

        port = e2e.wait(logged_port, 20, "the worker's metrics port in its log")
        url = f"http://127.0.0.1:{port}"
        before = scrape(url)
        req = SendRequest(sender="bird", to="+16175551212", text="From the worker", idem_key="w:1", source="slack",
                          user_id="U1", user_name="jane", channel_id="C1")
        mid = e2e.rt.service.submit(req)[0]
        e2e.wait(lambda: e2e.rt.store.get(mid).status == "sent", 15, "the worker's send")  # type: ignore[union-attr]
        sent = ("smsbot_messages_total", (("sender", "bird"), ("status", "sent")))
        # The row is stored sent a moment before the final-status hook counts it.
        after = e2e.wait(lambda: (s := scrape(url))[sent] > before[sent] and s, 5, "the worker's counters")
        assert counters(before, after, "smsbot_messages") == {("smsbot_messages_total", "sender=bird,status=sent"): 1.0}
        assert call_count(after, "bird") - call_count(before, "bird") == 1.0
        code, _ = proc.stop()
        assert code == 0
    finally:
        proc.kill()


def test_the_delivery_outbox_counts_its_own_slack_retries(make: Callable[..., E2E]) -> None:
    e2e = make()
    row = sent_row(e2e)
    e2e.settle()
    before = scrape(e2e.url)
    e2e.slack.fail_next("chat.update", error="internal_error", status=500)  # the outbox tries again
    assert sociocs_post(e2e, sociocs_status(row.provider_message_id, "delivered")).status_code == 200
    e2e.slack.wait_for("chat.update", lambda c: c.ok and "elivered" in c["params"].get("text", ""), timeout=10)
    e2e.settle()
    after = scrape(e2e.url)
    assert counters(before, after, "smsbot_slack_api") == {
        ("smsbot_slack_api_errors_total", "method=chat.update"): 1.0,
        ("smsbot_slack_api_retries_total", "method=chat.update"): 1.0,
    }
